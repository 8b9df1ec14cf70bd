"""QVHighlights highlight-detection metrics (HL-mAP, HL-Hit1 at Fair/Good/VeryGood), as the official code computes them.

Definitions: spec metrics.md §3. The official code calls scikit-learn's ``precision_recall_curve`` once per (query,
rater) in a process pool; the same points are computed here for all queries at once: tied scores form one threshold,
precision is interpolated by a running max from the high-recall end, recall is compared in float32 (as the official
``recall.astype(np.float32)``), and AP is the plain mean of the interpolated precision at each recall step, taken with
the same numpy reduction (same length, same order) so the last bit agrees. Letters: Q queries, N clips, R = 3 raters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtgkit.evaluation.moment_retrieval import percent, sum_selected

CLIP_LENGTH = 2  # seconds per QVHighlights clip
SALIENCY_LEVELS = (("Fair", 2), ("Good", 3), ("VeryGood", 4))  # minimum rater score of a positive clip


@dataclass
class HighlightQuery:
    """One query's inputs: predicted per-clip scores (as given) and the GT score table (num_clips, 3) in 0–4."""

    qid: Any
    scores: np.ndarray
    gt_scores: np.ndarray


def gt_score_table(duration: float, relevant_clip_ids: Sequence[int], saliency_scores: Sequence[Sequence[float]]):
    """(int(duration / 2), 3) table: rated clips get their three scores, every other clip 0 (spec metrics.md §3.1–2)."""
    table = np.zeros((int(duration / CLIP_LENGTH), 3))
    table[np.asarray(relevant_clip_ids, dtype=np.int64)] = np.asarray(saliency_scores, dtype=np.float64)
    return table


def _padded_scores(queries: Sequence[HighlightQuery]) -> tuple[np.ndarray, np.ndarray]:
    """Scores cut or zero-padded to each query's clip count (spec metrics.md §3.4), padded with -inf to (Q, N)."""
    counts = np.array([len(q.gt_scores) for q in queries])
    width = int(counts.max())
    scores = np.full((len(queries), width), -np.inf)
    for index, query in enumerate(queries):
        num_clips = counts[index]
        head = query.scores[:num_clips]
        scores[index, :num_clips] = 0.0
        scores[index, : len(head)] = head
    return scores, counts


def average_precision_per_rater(queries: Sequence[HighlightQuery], min_score: int) -> np.ndarray:
    """Official ``get_ap`` for every (query, rater) at one level -> (Q, 3)."""
    return average_precision_levels(queries, (min_score,))[0]


def average_precision_levels(queries: Sequence[HighlightQuery], min_scores: Sequence[int]) -> np.ndarray:
    """Official ``get_ap`` for every (level, query, rater) -> (len(min_scores), Q, 3); one sort serves all levels."""
    scores, counts = _padded_scores(queries)
    num_queries, width = scores.shape
    columns = 3 * len(min_scores)
    gt = np.zeros((num_queries, width, 3))
    for index, query in enumerate(queries):
        gt[index, : counts[index]] = query.gt_scores
    labels = np.concatenate([(gt >= level).astype(np.float64) for level in min_scores], axis=2)  # (Q, N, 3L)
    labels[np.arange(width)[None, :] >= counts[:, None]] = 0.0  # padded clips are never positive
    # Descending scores; the order inside a tie group does not matter (only group ends are thresholds).
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)  # (Q, N)
    sorted_labels = np.take_along_axis(labels, order[..., None], axis=1)  # (Q, N, 3L)
    true_positives = np.cumsum(sorted_labels, axis=1)  # (Q, N, 3L)
    positions = np.arange(width)
    group_end = np.ones((num_queries, width), dtype=bool)
    group_end[:, :-1] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    group_start = np.maximum.accumulate(np.where(_starts(sorted_scores), positions, 0), axis=1)  # (Q, N)
    precision = true_positives / (positions + 1.0)[None, :, None]
    # Padding clips (-inf) sort last and only add lower-precision points at full recall, which the interpolation and
    # the recall-step selection ignore, exactly like sklearn's points below the first full-recall threshold.
    precision = np.where(group_end[..., None], precision, 0.0)
    interpolated = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    total = true_positives[:, -1:, :]  # (Q, 1, 3L)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = (true_positives / total).astype(np.float32)  # official: recall.astype(np.float32)
    previous_index = np.broadcast_to(np.maximum(group_start - 1, 0)[..., None], recall.shape)
    previous = np.where((group_start > 0)[..., None], np.take_along_axis(recall, previous_index, axis=1), 0)
    step = group_end[..., None] & (recall != previous)
    # sklearn lists points from the lowest threshold up, so the mean runs over the steps in reverse position order.
    values = interpolated[:, ::-1, :].transpose(0, 2, 1).reshape(-1, width)
    selected = step[:, ::-1, :].transpose(0, 2, 1).reshape(-1, width)
    ap = sum_selected(values, selected, mean=True).reshape(num_queries, columns)
    # get_ap's special cases: all-negative labels -> 0, all-positive -> 1 (over the video's clips).
    positives = labels.sum(axis=1)  # (Q, 3L)
    ap[positives == 0] = 0.0
    ap[positives == counts[:, None]] = 1.0
    return ap.reshape(num_queries, len(min_scores), 3).transpose(1, 0, 2)


def _starts(sorted_scores: np.ndarray) -> np.ndarray:
    starts = np.ones(sorted_scores.shape, dtype=bool)
    starts[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    return starts


def hit_at_one(queries: Sequence[HighlightQuery], min_score: int) -> float:
    """HL-Hit1: the argmax of the *uncut* score list, positive for any rater (spec metrics.md §3.7)."""
    return _hits(queries, [int(np.argmax(q.scores)) for q in queries], min_score)


def _hits(queries: Sequence[HighlightQuery], best: Sequence[int], min_score: int) -> float:
    hits = np.zeros((len(queries), 3))
    for index, query in enumerate(queries):
        if best[index] < len(query.gt_scores):
            hits[index] = query.gt_scores[best[index]] >= min_score
    return float(f"{100 * np.mean(np.max(hits, 1)):.2f}")


def evaluate_highlights(queries: Sequence[HighlightQuery]) -> tuple[dict[str, Any], dict[str, float]]:
    """``HL-min-<Level>`` dicts and their brief entries, in the official order."""
    per_level: dict[str, Any] = {}
    brief: dict[str, float] = {}
    best = [int(np.argmax(q.scores)) for q in queries]  # first maximum, like np.argmax on the list
    aps = average_precision_levels(queries, [min_score for _, min_score in SALIENCY_LEVELS])
    for (name, min_score), ap in zip(SALIENCY_LEVELS, aps, strict=True):
        hit1 = _hits(queries, best, min_score)
        mean_ap = percent(np.mean(ap))
        per_level[f"HL-min-{name}"] = {"HL-mAP": mean_ap, "HL-Hit1": hit1}
        brief[f"HL-min-{name}-mAP"] = mean_ap
        brief[f"HL-min-{name}-Hit1"] = hit1
    return per_level, brief
