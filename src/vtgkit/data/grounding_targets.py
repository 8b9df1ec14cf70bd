"""Training targets of one grounding item, computed as the official R²-Tuning dataset does (spec r2-tuning.md §8.2).

All arithmetic is float32 torch, like the official ``torch.Tensor`` code, so targets match it bit for bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch

from vtgkit.errors import AnnotationError

MAX_SALIENCY_LENGTH_EXCESS = 5  # official: the score vector may exceed the feature length by fewer than 5 clips


def repair_windows(windows: Sequence[tuple[float, float]], num_clips: int, fps: float) -> torch.Tensor:
    """Ground-truth windows made valid for a video of ``num_clips`` feature clips.

    Official repairs, in order (spec r2-tuning.md §8.2): clamp to [0, T / fps] — the feature length, not the
    annotated duration —; swap reversed windows; replace a window shorter than one clip by one clip around its centre,
    the centre clamped to [0.5 / fps, T / fps - 0.5 / fps].

    Returns:
        (W, 2) float32 seconds.
    """
    max_time = num_clips / fps
    half_clip = 0.5 / fps
    boundaries = torch.tensor(windows, dtype=torch.float32).clamp(min=0, max=max_time)  # (W, 2)
    reversed_rows = boundaries[:, 1] - boundaries[:, 0] < 0
    boundaries[reversed_rows] = boundaries[reversed_rows].flip(1)
    short_rows = (boundaries[:, 1] - boundaries[:, 0] < 1 / fps).nonzero()[:, 0].tolist()
    for row in short_rows:
        centre = (boundaries[row].sum() / 2).clamp(min=half_clip, max=max_time - half_clip)
        boundaries[row, 0] = centre - half_clip
        boundaries[row, 1] = centre + half_clip
    return boundaries


def saliency_from_scores(
    clip_ids: Sequence[int],
    scores: Sequence[Sequence[float]],
    duration: float,
    fps: float,
    num_clips: int,
    max_saliency: float,
    where: str,
) -> torch.Tensor:
    """QVHighlights rater scores -> (T,) float32: zeros except ``saliency[id] = sum(scores) / max_saliency``.

    The vector has ``int(duration * fps)`` clips (official), which must cover the T feature clips and exceed them by
    fewer than 5; it is then cut to T.
    """
    length = int(duration * fps)
    saliency = torch.zeros(length)
    for clip_id, clip_scores in zip(clip_ids, scores, strict=True):
        if clip_id >= length:
            raise AnnotationError(f"{where}: 'relevant_clip_ids' has clip {clip_id}, beyond the "
                                  f"int(duration * fps) = {length} clips of the video")
        saliency[clip_id] = sum(clip_scores) / max_saliency
    if not (length >= num_clips and length - num_clips < MAX_SALIENCY_LENGTH_EXCESS):
        raise AnnotationError(f"{where}: int(duration * fps) = {length} clips but the features have {num_clips}; "
                              f"the official dataset needs {num_clips} <= {length} < {num_clips} + "
                              f"{MAX_SALIENCY_LENGTH_EXCESS} (features and duration disagree)")
    return saliency[:num_clips]


def saliency_from_windows(boundaries: torch.Tensor, fps: float, num_clips: int, where: str) -> torch.Tensor:
    """(T,) float32: 1 on clips ``ceil(start * fps) .. ceil(end * fps) - 1`` of each repaired window, else 0."""
    positive: list[int] = []
    for start, end in (boundaries * fps).tolist():
        positive += range(math.ceil(start), math.ceil(end))
    if not positive:
        raise AnnotationError(f"{where}: no clip lies inside the ground-truth windows after repair "
                              f"({boundaries.tolist()} s at {fps} clips/s)")
    if max(positive) >= num_clips:
        raise AnnotationError(f"{where}: window clip {max(positive)} is beyond the {num_clips} feature clips")
    saliency = torch.zeros(num_clips)
    saliency[positive] = 1
    return saliency


def draw_positive_clip(candidates: list[int], where: str, rng: random.Random | None = None) -> int:
    """One clip drawn uniformly with Python ``random`` (``random.sample(candidates, 1)``, as the official code)."""
    if not candidates:
        raise AnnotationError(f"{where}: no clip qualifies as a positive clip for the saliency losses "
                              "(all saliency targets are 0 or none is above the threshold)")
    return (rng or random).sample(candidates, 1)[0]
