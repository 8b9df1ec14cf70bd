"""Validation during training: predict a split, post-process officially, score with the official evaluator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vtgkit.evaluation import evaluate
from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_boundaries, postprocess_saliency
from vtgkit.structures import Batch


@torch.no_grad()
def predict_records(
    model: torch.nn.Module,
    dataset: Any,
    collate_fn: Callable[[list[Any]], Batch],
    postprocess: PostprocessConfig,
    *,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """QVHighlights-format prediction dicts for every item of ``dataset``, in dataset order.

    Boundaries go through the benchmark's official post-processing; saliency is cut to each video's clip count.
    """
    was_training = model.training
    model.eval()
    records: list[dict[str, Any]] = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    try:
        for batch in loader:
            batch = batch.to(device)
            output = model(batch)
            lengths = batch.video_mask.sum(dim=1).long().tolist()
            for row, sample in enumerate(batch.samples):
                record: dict[str, Any] = {"qid": sample.qid, "query": sample.query, "vid": sample.vid}
                if output.boundaries is not None:
                    rows = output.boundaries[row]  # (N, 3)
                    if output.boundary_mask is not None:
                        rows = rows[output.boundary_mask[row]]
                    duration = float(sample.duration) if sample.duration is not None else lengths[row] / float(
                        batch.fps[row])
                    record["pred_relevant_windows"] = postprocess_boundaries(rows, duration, postprocess)
                record["pred_saliency_scores"] = postprocess_saliency(output.saliency[row], postprocess, lengths[row])
                records.append(record)
    finally:
        model.train(was_training)
    return records


def evaluate_records(dataset_name: str, predictions: list[dict[str, Any]], ground_truth: Any,
                     protocol: str | None = None, splits: str | Path | None = None) -> dict[str, Any]:
    """The official evaluator's full JSON for QVHighlights-format predictions (``vtgkit evaluate`` output).

    ``ground_truth`` is a list of annotation records, or (with ``splits``) R²-Tuning's TVSum / YouTube annotation
    object file, whose ``val`` videos of the predicted domains are scored as R²-Tuning does (spec metrics.md §6).
    """
    return evaluate(dataset_name, predictions, ground_truth, protocol=protocol, splits=splits)


def flatten_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The values the best-checkpoint metric is looked up in: the evaluator's ``brief`` dict, or its top level."""
    if isinstance(result.get("brief"), dict):
        return dict(result["brief"])
    if isinstance(result.get("average"), dict):  # YouTube / TVSum: {"average": {"mAP": ...}}
        return dict(result["average"])
    return {key: value for key, value in result.items() if isinstance(value, int | float)}
