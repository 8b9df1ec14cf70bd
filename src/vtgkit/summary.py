"""Pick a video summary from per-clip saliency under a duration budget.

Two rules, both returning time-ordered :class:`~vtgkit.structures.Moment` segments whose total length is at most the
budget:

* ``"clips"`` (default): clips are the units. The highest-saliency clips are taken, best first, while they fit;
  adjacent picked clips are then joined into one segment. All units have the same length, so this greedy choice is
  also the exact 0/1-knapsack optimum.
* ``"segments"``: caller-given segments (e.g. shots from a scene detector, or fixed chunks) are the units, as in the
  TVSum/SumMe evaluation protocol (KTS shots, then a 0/1 knapsack with value = mean saliency of the shot's clips and
  weight = its length; Zhang et al. 2016 "vsLSTM", Zhou et al. 2018 "DR-DSN"). Solved exactly by dynamic programming
  over clip counts. Saliency is shifted to be non-negative first (ranking unchanged) so that shots with negative raw
  scores (cosine similarities, logits) can still fill the budget.

The default budget is 15 % of the video, the TVSum/SumMe convention. Clip ``i`` covers
``[i * clip_len, min((i + 1) * clip_len, duration))``; a shorter last clip still counts as a whole clip against the
budget, so the budget is never exceeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from vtgkit.structures import Moment

DEFAULT_BUDGET_FRACTION = 0.15  # TVSum / SumMe: summaries are 15 % of the video


def summary_budget(duration: float, budget: float | None = None, fraction: float = DEFAULT_BUDGET_FRACTION) -> float:
    """The budget in seconds: ``budget`` when given, else ``fraction`` of ``duration``."""
    if budget is not None:
        if not budget > 0:
            raise ValueError(f"summary budget must be > 0 seconds, got {budget}")
        return float(budget)
    if not 0 < fraction <= 1:
        raise ValueError(f"summary budget fraction must be in (0, 1], got {fraction}")
    return fraction * duration


def select_summary(
    saliency: np.ndarray | Sequence[float],
    clip_len: float,
    budget: float | None = None,
    *,
    duration: float | None = None,
    fraction: float = DEFAULT_BUDGET_FRACTION,
    method: Literal["clips", "segments"] = "clips",
    segments: Sequence[tuple[int, int]] | None = None,
) -> list[Moment]:
    """Choose summary segments.

    Args:
        saliency: (T,) per-clip scores, higher = more summary-worthy.
        clip_len: seconds per clip.
        budget: maximum total length in seconds; default ``fraction`` of the duration.
        duration: video length in seconds; default ``T * clip_len``.
        fraction: budget as a share of the duration when ``budget`` is None.
        method: ``"clips"`` or ``"segments"`` (see the module docstring).
        segments: for ``"segments"``, (start_clip, end_clip) pairs, end exclusive, covering clips without overlap.

    Returns:
        Segments in time order; ``score`` is the mean saliency of their clips.
    """
    scores = np.asarray(saliency, dtype=np.float64).reshape(-1)
    num_clips = scores.shape[0]
    if num_clips == 0:
        raise ValueError("cannot summarise an empty saliency sequence")
    if not np.all(np.isfinite(scores)):
        raise ValueError("saliency contains NaN or infinite values")
    if not clip_len > 0:
        raise ValueError(f"clip_len must be > 0, got {clip_len}")
    total = num_clips * clip_len if duration is None else float(duration)
    seconds = summary_budget(total, budget, fraction)
    capacity = math.floor(seconds / clip_len + 1e-9)  # whole clips that fit
    if capacity < 1:
        raise ValueError(f"summary budget {seconds:.3g} s is shorter than one clip ({clip_len:g} s)")
    if method == "clips":
        picked = _pick_clips(scores, capacity)
    elif method == "segments":
        if segments is None:
            raise ValueError("method 'segments' needs segments=[(start_clip, end_clip), ...]")
        picked = _pick_segments(scores, _checked_segments(segments, num_clips), capacity)
    else:
        raise ValueError(f"unknown summary method {method!r}; use 'clips' or 'segments'")
    return _runs_to_moments(picked, scores, clip_len, total)


def _pick_clips(scores: np.ndarray, capacity: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")  # ties: earlier clip first, reproducible
    picked = np.zeros(scores.shape[0], dtype=bool)
    picked[order[:capacity]] = True
    return picked


def _checked_segments(segments: Sequence[tuple[int, int]], num_clips: int) -> list[tuple[int, int]]:
    checked = sorted((int(start), int(end)) for start, end in segments)
    previous_end = 0
    for start, end in checked:
        if not 0 <= start < end <= num_clips:
            raise ValueError(f"segment ({start}, {end}) must satisfy 0 <= start < end <= {num_clips} clips")
        if start < previous_end:
            raise ValueError(f"segment ({start}, {end}) overlaps the previous segment ending at clip {previous_end}")
        previous_end = end
    return checked


def _pick_segments(scores: np.ndarray, segments: list[tuple[int, int]], capacity: int) -> np.ndarray:
    shifted = scores - scores.min()
    values = [float(shifted[start:end].mean()) for start, end in segments]
    weights = [end - start for start, end in segments]
    chosen = knapsack(values, weights, capacity)
    picked = np.zeros(scores.shape[0], dtype=bool)
    for index in chosen:
        start, end = segments[index]
        picked[start:end] = True
    return picked


def knapsack(values: Sequence[float], weights: Sequence[int], capacity: int) -> list[int]:
    """Exact 0/1 knapsack by dynamic programming; returns the chosen item indices in increasing order.

    >>> knapsack([3.0, 4.0, 5.0], [2, 3, 4], 5)
    [0, 1]
    """
    num_items = len(values)
    best = np.zeros((num_items + 1, capacity + 1), dtype=np.float64)  # best[i, c]: items < i, capacity c
    for item in range(num_items):
        weight, value = int(weights[item]), float(values[item])
        best[item + 1] = best[item]
        if weight <= capacity:
            with_item = best[item, : capacity + 1 - weight] + value
            best[item + 1, weight:] = np.maximum(best[item, weight:], with_item)
    chosen: list[int] = []
    remaining = capacity
    for item in range(num_items, 0, -1):
        if best[item, remaining] != best[item - 1, remaining]:
            chosen.append(item - 1)
            remaining -= int(weights[item - 1])
    return sorted(chosen)


def _runs_to_moments(picked: np.ndarray, scores: np.ndarray, clip_len: float, duration: float) -> list[Moment]:
    moments = []
    index = 0
    while index < picked.shape[0]:
        if not picked[index]:
            index += 1
            continue
        end = index
        while end < picked.shape[0] and picked[end]:
            end += 1
        start_s = index * clip_len
        end_s = min(end * clip_len, duration)
        if end_s > start_s:  # a clip past the annotated duration has no length
            moments.append(Moment(start_s, end_s, float(scores[index:end].mean())))
        index = end
    return moments
