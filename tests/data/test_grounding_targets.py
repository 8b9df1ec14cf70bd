"""Official boundary repairs, saliency vectors and positive-clip draws (spec r2-tuning.md §8.2), hand-computed."""

from __future__ import annotations

import random

import pytest
import torch

from vtgkit.data.grounding_targets import (
    draw_positive_clip,
    repair_windows,
    saliency_from_scores,
    saliency_from_windows,
)
from vtgkit.errors import AnnotationError


def test_repairs_clamp_swap_and_widen() -> None:
    # T = 9 clips at 0.5 fps -> features end at 18 s (annotated windows may go beyond).
    repaired = repair_windows([(4, 10), (16, 17), (30, 36), (12, 6), (0, 18.6), (-3, 1)], num_clips=9, fps=0.5)
    assert repaired.dtype == torch.float32
    assert repaired.tolist() == [
        [4, 10],  # untouched
        [15.5, 17.5],  # 1 s < one clip (2 s): widened around its centre 16.5
        [16, 18],  # [30, 36] clamps to [18, 18], then widened with the centre clamped to 18 - 1 = 17
        [6, 12],  # reversed -> swapped
        [0, 18],  # end clamped to T / fps
        [0, 2],  # [-3, 1] -> [0, 1] -> centre 0.5 clamped to 1 -> [0, 2]
    ]


def test_repairs_at_one_fps() -> None:
    repaired = repair_windows([(24.3, 24.3), (5.0, 7.5)], num_clips=30, fps=1.0)
    assert repaired[0].tolist() == pytest.approx([23.8, 24.8])
    assert repaired[1].tolist() == [5.0, 7.5]


def test_saliency_from_scores_scales_and_cuts() -> None:
    # duration 18.6 s at 0.5 fps -> int(9.3) = 9 score slots for T = 9 clips
    saliency = saliency_from_scores([2, 3, 8], [[1, 1, 1], [4, 3, 1], [2, 2, 2]], 18.6, 0.5, 9, 12, "q")
    expected = torch.zeros(9)
    expected[2], expected[3], expected[8] = 3 / 12, 8 / 12, 6 / 12
    assert torch.equal(saliency, expected)
    # 11 slots for 8 clips: allowed (< 5 longer) and cut to 8
    assert saliency_from_scores([0], [[4, 4, 4]], 22, 0.5, 8, 12, "q").tolist() == [1] + [0] * 7


@pytest.mark.parametrize(("duration", "num_clips", "clip_id", "expected"), [
    (16, 9, 0, r"int\(duration \* fps\) = 8 clips but the features have 9"),
    (28, 9, 0, r"= 14 clips but the features have 9"),
    (18, 9, 9, r"'relevant_clip_ids' has clip 9, beyond"),
])
def test_saliency_from_scores_length_checks(duration: float, num_clips: int, clip_id: int, expected: str) -> None:
    with pytest.raises(AnnotationError, match=expected) as info:
        saliency_from_scores([clip_id], [[1, 1, 1]], duration, 0.5, num_clips, 12, "qid 5 (vid 'v')")
    assert "qid 5" in str(info.value)


def test_saliency_from_windows_uses_ceil() -> None:
    boundaries = torch.tensor([[1.5, 3.2], [6.0, 7.0]])
    # fps 1: clips ceil(1.5)=2 .. ceil(3.2)-1=3, and 6 .. 6
    assert saliency_from_windows(boundaries, 1.0, 10, "q").nonzero()[:, 0].tolist() == [2, 3, 6]
    with pytest.raises(AnnotationError, match="no clip lies inside"):
        saliency_from_windows(torch.tensor([[2.0, 2.0]]), 1.0, 10, "q")


def test_positive_clip_follows_python_random() -> None:
    candidates = [1, 4, 6, 7]
    random.seed(3)
    expected = [random.sample(candidates, 1)[0] for _ in range(5)]
    random.seed(3)
    assert [draw_positive_clip(candidates, "q") for _ in range(5)] == expected
    with pytest.raises(AnnotationError, match="no clip qualifies"):
        draw_positive_clip([], "qid 1")
