"""Span conversions, the two IoU formulas and NMS (spec metrics.md §2.5, r2-tuning.md §5)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import vtgkit.spans as spans


def test_doctests() -> None:
    assert doctest.testmod(spans).failed == 0


def test_conversions_round_trip() -> None:
    windows = torch.tensor([[0.0, 10.0], [2.5, 3.0], [4.0, 4.0]])
    assert torch.equal(spans.span_cxw_to_xx(spans.span_xx_to_cxw(windows)), windows)


def test_cross_iou_matches_definition_and_nan_for_two_points() -> None:
    iou = spans.temporal_iou_cross(
        np.array([[0.0, 8.0], [21.0, 30.0], [0.0, 10.0]]), np.array([[0.0, 10.0], [20.0, 30.0]])
    )
    np.testing.assert_array_equal(iou, [[0.8, 0.0], [0.0, 0.9], [1.0, 0.0]])
    assert np.isnan(spans.temporal_iou_cross(np.array([[1.0, 1.0]]), np.array([[1.0, 1.0]])))[0, 0]


def test_cross_iou_broadcasts_over_batches() -> None:
    a = np.random.default_rng(0).uniform(0, 10, (4, 3, 2))
    a.sort(-1)
    b = np.random.default_rng(1).uniform(0, 10, (4, 5, 2))
    b.sort(-1)
    batched = spans.temporal_iou_cross(a, b)
    for i in range(4):
        np.testing.assert_array_equal(batched[i], spans.temporal_iou_cross(a[i], b[i]))


def test_paired_iou_uses_the_hull() -> None:
    # Disjoint windows: 0 (not a negative number); overlapping: the true IoU; zero hull: 0.
    iou = spans.temporal_iou_paired(
        np.array([[0.0, 1.0], [18.0, 28.0], [5.0, 5.0]]), np.array([[2.0, 3.0], [20.0, 30.0], [5.0, 5.0]])
    )
    np.testing.assert_array_equal(iou, [0.0, 8.0 / 12.0, 0.0])


def test_nms_normal_keeps_suppressed_rows_with_zero_score() -> None:
    rows = torch.tensor([[0.0, 10.0, 0.5], [0.0, 9.0, 0.9], [20.0, 30.0, 0.7]])
    out = spans.nms(rows, "normal", 0.7)
    assert out.shape == (3, 3)
    assert out[:, 2].tolist() == pytest.approx([0.9, 0.7, 0.0])
    assert out[2, :2].tolist() == [0.0, 10.0]
    assert torch.equal(rows[:, 2], torch.tensor([0.5, 0.9, 0.7]))  # input untouched


def test_nms_swaps_instead_of_shifting() -> None:
    # Row 2 is the best: it is swapped with row 0, so the old row 0 moves to position 2, not 1.
    rows = torch.tensor([[0.0, 1.0, 0.1], [10.0, 11.0, 0.2], [20.0, 21.0, 0.9], [30.0, 31.0, 0.05]])
    out = spans.nms(rows, "normal", 0.7)
    assert out[:, 2].tolist() == pytest.approx([0.9, 0.2, 0.1, 0.05])


def test_nms_linear_and_gaussian_scale_later_scores() -> None:
    rows = torch.tensor([[0.0, 10.0, 0.9], [5.0, 15.0, 0.8]], dtype=torch.float64)
    iou = 5.0 / 15.0
    assert spans.nms(rows, "linear")[1, 2].item() == pytest.approx(0.8 * (1 - iou))
    assert spans.nms(rows, "gaussian", sigma=0.3)[1, 2].item() == pytest.approx(0.8 * np.exp(-(iou**2) / 0.3))


def test_nms_normal_threshold_is_inclusive() -> None:
    rows = torch.tensor([[0.0, 10.0, 0.9], [0.0, 7.0, 0.8]], dtype=torch.float64)  # IoU exactly 0.7
    assert spans.nms(rows, "normal", 0.7)[1, 2].item() == 0.0


def test_nms_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="NMS method"):
        spans.nms(torch.zeros(1, 3), "soft")  # type: ignore[arg-type]
