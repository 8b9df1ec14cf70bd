"""Moment retrieval + highlight detection on QVHighlights-format files (QVHighlights, Charades-STA, TACoS, Ego4D-NLQ).

Reproduces the official ``eval_submission`` / ``vtg_eval`` flow (spec metrics.md §1, §4): equal qid sets, MR iff the
first prediction has ``pred_relevant_windows``, HD iff it has ``pred_saliency_scores`` (R²-Tuning additionally
needs a list ``saliency_scores`` in the first GT row), ``brief`` first, then the other dicts in sorted key order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vtgkit.errors import AnnotationError
from vtgkit.evaluation.highlight_detection import CLIP_LENGTH, HighlightQuery, evaluate_highlights, gt_score_table
from vtgkit.evaluation.io import (
    Records,
    check_same_ids,
    qid_index,
    require_field,
    require_number,
    score_list,
    windows_array,
)
from vtgkit.evaluation.moment_retrieval import (
    MOMENT_PROTOCOLS,
    EmptyBucketError,
    MomentQuery,
    evaluate_moments,
)


def evaluate_grounding(
    predictions: Records, ground_truth: Records, protocol: str, notes: list[str] | None = None
) -> dict[str, Any]:
    """The official metrics dict for one prediction file against one ground-truth file."""
    if protocol not in MOMENT_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(MOMENT_PROTOCOLS)}")
    pred_index = qid_index(predictions)
    gt_index = qid_index(ground_truth)
    check_same_ids(pred_index, gt_index, predictions.source, ground_truth.source)
    first = predictions.rows[0]
    run_moments = "pred_relevant_windows" in first
    run_highlights = "pred_saliency_scores" in first
    if run_highlights and protocol == "r2tuning":
        # R²-Tuning's gate (spec metrics.md §1): HD only when the first GT row has a list 'saliency_scores'.
        run_highlights = isinstance(ground_truth.rows[0].get("saliency_scores"), list)
        if not run_highlights and notes is not None:
            notes.append("highlight detection skipped: the ground truth has no 'saliency_scores' (as R²-Tuning does)")
    if not run_moments and not run_highlights:
        raise AnnotationError(
            f"{predictions.where(0)}: neither 'pred_relevant_windows' nor 'pred_saliency_scores'; the first prediction "
            "decides which metrics run"
        )
    # Validate everything before computing anything, so a bad line is reported whatever the metrics.
    moment_queries = (
        [
            MomentQuery(
                qid,
                windows_array(predictions, index, "pred_relevant_windows", 3),
                windows_array(ground_truth, gt_index[qid], "relevant_windows", 2),
            )
            for qid, index in pred_index.items()
        ]
        if run_moments
        else []
    )
    highlight_queries = (
        [_highlight_query(predictions, index, ground_truth, gt_index[qid], notes) for qid, index in pred_index.items()]
        if run_highlights
        else []
    )
    metrics: dict[str, Any] = {}
    brief: dict[str, Any] = {}
    if run_moments:
        try:
            per_bucket, moment_brief = evaluate_moments(moment_queries, MOMENT_PROTOCOLS[protocol])
        except EmptyBucketError as error:
            raise AnnotationError(f"{ground_truth.source}: {error}") from None
        metrics.update(per_bucket)
        brief.update(moment_brief)
    if run_highlights:
        per_level, highlight_brief = evaluate_highlights(highlight_queries)
        metrics.update(per_level)
        brief.update(highlight_brief)
    return {"brief": brief, **dict(sorted(metrics.items()))}


def _highlight_query(
    predictions: Records, index: int, ground_truth: Records, gt_row: int, notes: list[str] | None
) -> HighlightQuery:
    scores = score_list(predictions, index, "pred_saliency_scores")
    row = ground_truth.rows[gt_row]
    for field in ("duration", "relevant_clip_ids", "saliency_scores"):
        if field not in row:
            raise AnnotationError(
                f"{ground_truth.where(gt_row, field)} is missing; highlight detection needs it (a benchmark without "
                "saliency labels, e.g. Charades-STA, is evaluated without 'pred_saliency_scores', as FlashVTG does)"
            )
    duration = require_number(ground_truth, gt_row, "duration", row["duration"])
    num_clips = int(duration / CLIP_LENGTH)
    if num_clips < 1:
        raise AnnotationError(f"{ground_truth.where(gt_row, 'duration')}: {duration} s has no 2-s clip")
    clip_ids = require_field(ground_truth, gt_row, "relevant_clip_ids")
    ratings = row["saliency_scores"]
    ids = np.asarray(clip_ids) if isinstance(clip_ids, list) and clip_ids else np.zeros((0,))
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= num_clips:
        raise AnnotationError(
            f"{ground_truth.where(gt_row, 'relevant_clip_ids')}: expected clip indices in [0, {num_clips}), found "
            f"{str(clip_ids)[:80]}"
        )
    table = np.asarray(ratings, dtype=np.float64) if isinstance(ratings, list) else np.zeros((0,))
    if table.shape != (len(clip_ids), 3):
        raise AnnotationError(
            f"{ground_truth.where(gt_row, 'saliency_scores')}: expected {len(clip_ids)} rows of 3 rater scores, "
            f"found shape {table.shape}"
        )
    gt_scores = gt_score_table(duration, clip_ids, table)
    if len(scores) != num_clips and notes is not None:
        notes.append(
            f"{predictions.where(index, 'pred_saliency_scores')}: {len(scores)} scores for {num_clips} clips "
            "(cut or padded with 0.0 for AP, argmax over the full list for Hit1, as the official evaluator does)"
        )
    return HighlightQuery(predictions.rows[index]["qid"], scores, gt_scores)
