"""Official evaluation of the six benchmarks, post-processing and submission writing.

``evaluate(dataset, predictions, ground_truth, protocol=...)`` returns the dict the official evaluator would write,
key by key and value by value (spec metrics.md). Predictions are evaluated as given: no sorting, deduplication,
clamping or cutting that the official code does not do; ``vtgkit.evaluation.postprocess`` is the separate step that
turns raw model rows into a submission.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtgkit.errors import AnnotationError
from vtgkit.evaluation.grounding import evaluate_grounding
from vtgkit.evaluation.io import Records, as_records
from vtgkit.evaluation.moment_retrieval import MOMENT_PROTOCOLS
from vtgkit.evaluation.summarization import SummarizationVideo, evaluate_summarization
from vtgkit.evaluation.summarization_labels import load_summarization_labels, prediction_scores

__all__ = ["DATASETS", "DEFAULT_PROTOCOL", "PROTOCOLS", "evaluate"]

GROUNDING_DATASETS = ("qvhighlights", "charades_sta", "tacos", "ego4d_nlq")
SUMMARIZATION_DATASETS = ("youtube_highlights", "tvsum")
DATASETS = GROUNDING_DATASETS + SUMMARIZATION_DATASETS

DEFAULT_PROTOCOL = {
    "qvhighlights": "moment_detr",  # the QVHighlights server's standalone_eval
    "charades_sta": "r2tuning",
    "tacos": "r2tuning",
    "ego4d_nlq": "r2tuning",
    "youtube_highlights": "r2tuning",
    "tvsum": "r2tuning",
}
PROTOCOLS = {
    **{name: tuple(MOMENT_PROTOCOLS) for name in GROUNDING_DATASETS},
    **{name: ("r2tuning", "flashvtg") for name in SUMMARIZATION_DATASETS},
}


def evaluate(
    dataset: str,
    predictions: str | Path | Records | list[dict[str, Any]],
    ground_truth: str | Path | Records | list[dict[str, Any]],
    protocol: str | None = None,
    splits: str | Path | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a prediction file (or list of dicts) the way the official code does.

    Args:
        dataset: one of ``DATASETS``.
        predictions: JSON-lines path or list of prediction dicts (QVHighlights submission format; for YouTube/TVSum
            ``{"qid" or "vid", "pred_saliency_scores"}`` per video).
        ground_truth: annotation JSON-lines path or list of dicts; for YouTube/TVSum also R²-Tuning's annotation
            object (with ``splits``).
        protocol: which official evaluator to reproduce (``PROTOCOLS[dataset]``); default ``DEFAULT_PROTOCOL``.
        splits: R²-Tuning's split table when ``ground_truth`` is its annotation object (YouTube/TVSum).
        notes: if given, receives human-readable notes (e.g. saliency lists of another length than the clip count,
            skipped domains) that do not belong in the official JSON.

    Returns:
        QVHighlights-style benchmarks: ``{"brief": {...}, "HL-min-*": ..., "full": ..., ...}``;
        YouTube/TVSum: ``{domain: {"mAP": value}, ..., "average": {"mAP": value}}``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    protocol = protocol or DEFAULT_PROTOCOL[dataset]
    if protocol not in PROTOCOLS[dataset]:
        raise ValueError(
            f"protocol {protocol!r} is not available for {dataset}; choose from {list(PROTOCOLS[dataset])}"
        )
    pred_records = as_records(predictions, "predictions")
    if dataset in GROUNDING_DATASETS:
        if splits is not None:
            raise ValueError(f"--splits applies to youtube_highlights/tvsum only, not {dataset}")
        return evaluate_grounding(pred_records, as_records(ground_truth, "ground truth"), protocol, notes)
    return _evaluate_summarization(dataset, pred_records, ground_truth, protocol, splits, notes)


def _evaluate_summarization(
    dataset: str,
    predictions: Records,
    ground_truth: Any,
    protocol: str,
    splits: str | Path | None,
    notes: list[str] | None,
) -> dict[str, Any]:
    labels, gt_source = load_summarization_labels(dataset, ground_truth, splits)
    key = "qid" if "qid" in predictions.rows[0] else "vid"
    scores = prediction_scores(predictions, key)
    extra = [vid for vid in scores if vid not in labels]
    if extra:
        raise AnnotationError(
            f"{len(extra)} video(s) of {predictions.source} are not evaluated videos of {gt_source}: {extra[:10]}"
        )
    covered = {labels[vid][0] for vid in scores}
    videos = []
    for vid, (domain, table) in labels.items():
        if domain not in covered:
            continue
        if vid not in scores:
            raise AnnotationError(
                f"{predictions.source} has no prediction for video {vid!r} of domain {domain!r} in {gt_source} "
                "(every evaluated video of a predicted domain needs one)"
            )
        values, where = scores[vid]
        if len(values) != len(table) and notes is not None:
            notes.append(
                f"{where}: {len(values)} scores for {len(table)} clips/segments of {vid!r} (a shorter list ranks only "
                "the predicted clips; a longer one is cut by FlashVTG's protocol, an error in R²-Tuning's)"
            )
        videos.append(SummarizationVideo(str(vid), domain, values, table, where))
    skipped = sorted({domain for domain, _ in labels.values()} - covered)
    if skipped and notes is not None:
        notes.append(f"domains without predictions (not evaluated): {', '.join(skipped)}")
    return evaluate_summarization(videos, dataset, protocol)  # type: ignore[arg-type]
