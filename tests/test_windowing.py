from __future__ import annotations

import doctest

import numpy as np
import pytest

from vtgkit import windowing
from vtgkit.windowing import Window, merge_moments, merge_saliency, plan_windows


def test_doctests() -> None:
    assert doctest.testmod(windowing).failed == 0


@pytest.mark.parametrize(
    ("num_clips", "window_clips", "overlap"),
    [(1, 75, 25), (75, 75, 25), (76, 75, 25), (150, 75, 25), (1000, 75, 25), (17, 4, 0), (9, 4, 3)],
)
def test_windows_cover_every_clip_with_training_length(num_clips: int, window_clips: int, overlap: int) -> None:
    windows = plan_windows(num_clips, window_clips, overlap)
    covered = np.zeros(num_clips, dtype=int)
    for window in windows:
        covered[window.start_clip : window.end_clip] += 1
        assert window.num_clips == min(window_clips, num_clips)
    assert covered.min() >= 1
    assert windows[0].start_clip == 0 and windows[-1].end_clip == num_clips
    starts = [window.start_clip for window in windows]
    assert starts == sorted(set(starts))
    # Consecutive windows overlap by at least the requested number of clips.
    for left, right in zip(windows, windows[1:], strict=False):
        assert left.end_clip - right.start_clip >= overlap


def test_plan_windows_hand_case() -> None:
    assert plan_windows(200, 75, 25) == [Window(0, 75), Window(50, 125), Window(100, 175), Window(125, 200)]
    assert plan_windows(200, 75) == plan_windows(200, 75, 25)  # default overlap: a third


@pytest.mark.parametrize(("num_clips", "window_clips", "overlap"), [(0, 75, 0), (10, 0, 0), (10, 4, 4), (10, 4, -1)])
def test_plan_windows_rejects_bad_arguments(num_clips: int, window_clips: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        plan_windows(num_clips, window_clips, overlap)


def test_merge_saliency_averages_overlaps() -> None:
    windows = plan_windows(10, 4, 1)  # [0,4) [3,7) [6,10)
    scores = [np.array([1.0, 1.0, 1.0, 3.0]), np.array([5.0, 2.0, 2.0, 4.0]), np.array([6.0, 0.0, 0.0, 0.0])]
    merged = merge_saliency(scores, windows, 10)
    np.testing.assert_allclose(merged, [1, 1, 1, 4, 2, 2, 5, 0, 0, 0])


def test_merge_saliency_identity_for_one_window() -> None:
    scores = np.random.rand(7)
    np.testing.assert_allclose(merge_saliency([scores], plan_windows(7, 75), 7), scores)


def test_merge_saliency_checks_shapes() -> None:
    windows = plan_windows(10, 4, 1)
    with pytest.raises(ValueError, match="shape"):
        merge_saliency([np.zeros(4), np.zeros(3), np.zeros(4)], windows, 10)
    with pytest.raises(ValueError, match="windows"):
        merge_saliency([np.zeros(4)], windows, 10)


def test_merge_moments_shifts_and_removes_cross_window_duplicates() -> None:
    windows = [Window(0, 75), Window(50, 125)]
    clip_len = 2.0
    first = np.array([[110.0, 130.0, 0.9], [10.0, 20.0, 0.5]])  # video time 110-130 and 10-20
    second = np.array([[12.0, 30.0, 0.8], [60.0, 70.0, 0.3]])  # video time 112-130 (duplicate) and 160-170
    merged = merge_moments([first, second], windows, clip_len, iou_threshold=0.7)
    np.testing.assert_allclose(merged, [[110, 130, 0.9], [10, 20, 0.5], [160, 170, 0.3]])
    # With a strict threshold nothing is a duplicate; best first is kept.
    everything = merge_moments([first, second], windows, clip_len, iou_threshold=1.01)
    assert everything.shape == (4, 3) and np.all(np.diff(everything[:, 2]) <= 0)
    assert merge_moments([first, second], windows, clip_len, top_k=2).shape == (2, 3)


def test_merge_moments_empty_windows() -> None:
    windows = plan_windows(10, 4, 1)
    merged = merge_moments([np.zeros((0, 3))] * 3, windows, 1.0)
    assert merged.shape == (0, 3)


def test_zero_length_moments_do_not_suppress() -> None:
    kept = windowing.suppress_duplicates(np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]]), 0.7)
    assert kept.tolist() == [0, 1, 2]
