"""Run a model on videos longer than it was trained on: overlapping windows of clips, merged back.

How it works:

1. :func:`plan_windows` cuts the clip sequence ``0 … T-1`` into windows of ``window_clips`` clips (the length the
   model was trained on, e.g. 75 two-second clips = 150 s for QVHighlights) that start every
   ``window_clips - overlap_clips`` clips. The last window is moved back so that it ends at clip ``T`` instead of
   being short: every window the model sees has the training length, unless the whole video is shorter, in which
   case there is one window holding all of it.
2. The model runs on each window separately; window-local times start at 0.
3. :func:`merge_saliency` puts every window's per-clip saliency back on the video's timeline and averages the
   windows that cover a clip (plain mean: all windows are scored against the same query with the same weights).
4. :func:`merge_moments` shifts each window's moments by the window's start time, pools them and removes
   duplicates found by two windows with greedy non-maximum suppression: moments are taken best first and a
   moment is dropped when its temporal IoU with an already kept one is at least ``iou_threshold``. Unlike the
   official evaluation NMS (which keeps suppressed rows with score 0, vtgkit.evaluation.postprocess), duplicates
   are removed, since a user-facing list should not repeat a moment.

Clip ``i`` covers ``[i * clip_len, (i + 1) * clip_len)`` seconds. Shapes: T clips of the whole video, N moments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vtgkit.spans import temporal_iou_cross


@dataclass(frozen=True)
class Window:
    """Clips ``start_clip`` (inclusive) to ``end_clip`` (exclusive) of a video."""

    start_clip: int
    end_clip: int

    @property
    def num_clips(self) -> int:
        return self.end_clip - self.start_clip

    def offset_seconds(self, clip_len: float) -> float:
        """Start of the window on the video's timeline."""
        return self.start_clip * clip_len


def default_overlap(window_clips: int) -> int:
    """A third of the window (25 of 75 clips = 50 s for QVHighlights), enough for most annotated moments to lie
    whole inside at least one window."""
    return window_clips // 3


def plan_windows(num_clips: int, window_clips: int, overlap_clips: int | None = None) -> list[Window]:
    """Cover clips ``0 … num_clips-1`` with windows of ``window_clips`` clips overlapping by ``overlap_clips``.

    >>> plan_windows(10, 4, 1)
    [Window(start_clip=0, end_clip=4), Window(start_clip=3, end_clip=7), Window(start_clip=6, end_clip=10)]
    >>> plan_windows(3, 75)
    [Window(start_clip=0, end_clip=3)]
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if window_clips < 1:
        raise ValueError(f"window_clips must be >= 1, got {window_clips}")
    overlap = default_overlap(window_clips) if overlap_clips is None else overlap_clips
    if not 0 <= overlap < window_clips:
        raise ValueError(f"overlap_clips must be in [0, window_clips={window_clips}), got {overlap}")
    if num_clips <= window_clips:
        return [Window(0, num_clips)]
    stride = window_clips - overlap
    starts = list(range(0, num_clips - window_clips, stride))
    starts.append(num_clips - window_clips)  # last window aligned to the end, full length
    return [Window(start, start + window_clips) for start in starts]


def merge_saliency(window_saliency: Sequence[np.ndarray], windows: Sequence[Window], num_clips: int) -> np.ndarray:
    """Average per-clip saliency over the windows covering each clip.

    Args:
        window_saliency: one array (window.num_clips,) per window.
        windows: the windows, as planned by :func:`plan_windows`.
        num_clips: T, clips of the whole video.

    Returns:
        (T,) float64 saliency on the video's timeline.
    """
    _check_pairs(window_saliency, windows)
    total = np.zeros(num_clips, dtype=np.float64)
    count = np.zeros(num_clips, dtype=np.int64)
    for scores, window in zip(window_saliency, windows, strict=True):
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (window.num_clips,):
            raise ValueError(f"saliency of {window} has shape {scores.shape}, expected ({window.num_clips},)")
        if window.end_clip > num_clips:
            raise ValueError(f"{window} reaches beyond num_clips={num_clips}")
        total[window.start_clip : window.end_clip] += scores
        count[window.start_clip : window.end_clip] += 1
    uncovered = np.flatnonzero(count == 0)
    if uncovered.size:
        raise ValueError(f"clips {uncovered[:5].tolist()}... are covered by no window")
    return total / count


def merge_moments(
    window_moments: Sequence[np.ndarray],
    windows: Sequence[Window],
    clip_len: float,
    iou_threshold: float = 0.7,
    top_k: int | None = None,
) -> np.ndarray:
    """Shift window-local moments to the video's timeline, pool them and drop cross-window duplicates.

    Args:
        window_moments: one (N_w, 3) array of [start_s, end_s, score] per window, times relative to the window start.
        windows: the windows, as planned by :func:`plan_windows`.
        clip_len: seconds per clip.
        iou_threshold: a moment overlapping a better kept one with IoU >= this is dropped.
        top_k: keep at most this many moments (after suppression).

    Returns:
        (N, 3) [start_s, end_s, score] best first.
    """
    _check_pairs(window_moments, windows)
    shifted = []
    for moments, window in zip(window_moments, windows, strict=True):
        moments = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
        offset = window.offset_seconds(clip_len)
        shifted.append(moments + np.array([offset, offset, 0.0]))
    pooled = np.concatenate(shifted, axis=0) if shifted else np.zeros((0, 3))
    order = np.argsort(-pooled[:, 2], kind="stable")  # stable: ties keep window order, so results are reproducible
    keep = suppress_duplicates(pooled[order, :2], iou_threshold)
    merged = pooled[order][keep]
    return merged[:top_k] if top_k is not None else merged


def suppress_duplicates(spans: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on (N, 2) spans already sorted best first; returns the indices kept, in order.

    >>> suppress_duplicates(np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]]), 0.7).tolist()
    [0, 2]
    """
    kept: list[int] = []
    for index in range(len(spans)):
        if not kept:
            kept.append(index)
            continue
        # NaN (two zero-length spans) never suppresses, as in the official NMS (spec metrics.md §1).
        iou = temporal_iou_cross(spans[index : index + 1], spans[kept])[0]
        if not np.any(iou >= iou_threshold):
            kept.append(index)
    return np.asarray(kept, dtype=np.int64)


def _check_pairs(per_window: Sequence[object], windows: Sequence[Window]) -> None:
    if len(per_window) != len(windows):
        raise ValueError(f"got results for {len(per_window)} windows, but {len(windows)} windows were planned")
