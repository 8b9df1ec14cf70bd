"""YouTube Highlights per-domain mAP and TVSum per-category top-5 mAP, as the official code computes them.

Definitions: spec metrics.md §6 (YouTube) and §7 (TVSum). Two official variants:

* "r2tuning" (R²-Tuning / UMT ``evaluate``): a video without positives counts as AP 0; means are Python
  ``sum / len``; a prediction must not be longer than the labels (the official code would crash; its YouTube dataset
  even asserts equal lengths, but its ``evaluate`` ranks a shorter list).
* "flashvtg" (FlashVTG ``compute_hl_results``): a YouTube video without positives is dropped; means are ``np.mean``;
  predictions are cut to the label length.

Clips are ranked with ``torch.argsort(descending=True)`` like the official code (ties have no defined order there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

from vtgkit.errors import AnnotationError

SummarizationProtocol = Literal["r2tuning", "flashvtg"]
TVSUM_TOP_K = 5
TVSUM_NUM_USERS = 20


@dataclass
class SummarizationVideo:
    """One evaluated video: its domain, predicted scores and labels ((N,) 0/1 for YouTube, (N, 20) for TVSum)."""

    vid: str
    domain: str
    scores: list[float]
    labels: np.ndarray
    where: str  # "file line N" of the prediction, for error messages


def trapezoid_ap(ranked_labels: Sequence[float]) -> float:
    """The UMT trapezoid AP over a ranked label list (spec metrics.md §6), in Python floats; 0 without positives.

    >>> round(trapezoid_ap([1.0, 0.0, 1.0, 0.0]), 6)
    0.791667
    >>> trapezoid_ap([0.0, 0.0])
    0
    """
    num_gt = sum(ranked_labels)
    if num_gt == 0:
        return 0
    hits = ap = recall = 0
    precision = 1
    for rank, label in enumerate(ranked_labels):
        hits += label
        new_recall = hits / num_gt
        new_precision = hits / (rank + 1)
        ap += (new_recall - recall) * (precision + new_precision) / 2
        recall, precision = new_recall, new_precision
    return ap


def _ranking(scores: Sequence[float]) -> torch.Tensor:
    import torch

    return torch.argsort(torch.tensor(scores, dtype=torch.float64), descending=True)


def _check_length(video: SummarizationVideo, protocol: SummarizationProtocol) -> list[float]:
    """Both official evaluators rank only the predicted clips when the list is shorter than the labels; a longer list
    is cut by FlashVTG (``pred[:len(label)]``) and makes R²-Tuning's label indexing fail."""
    num_labels = len(video.labels)
    scores = video.scores
    if protocol == "flashvtg":
        return scores[:num_labels]
    if len(scores) > num_labels:
        raise AnnotationError(
            f"{video.where}: field 'pred_saliency_scores' has {len(scores)} values, expected at most {num_labels} "
            f"(one per clip/segment of {video.vid}); R²-Tuning's evaluation fails on a longer list"
        )
    return scores


def youtube_video_ap(video: SummarizationVideo, protocol: SummarizationProtocol) -> float | None:
    """AP over the whole ranking; None when FlashVTG would drop the video (no positive among the ranked segments)."""
    import torch

    scores = _check_length(video, protocol)
    ranked = torch.tensor(video.labels, dtype=torch.float32)[_ranking(scores)].tolist()
    if protocol == "flashvtg" and sum(ranked) == 0:
        return None
    return trapezoid_ap(ranked)


def tvsum_user_aps(video: SummarizationVideo, protocol: SummarizationProtocol) -> list[float]:
    """Top-5 AP for each of the 20 users (label = score > the user's lower median over *all* clips)."""
    import torch

    scores = _check_length(video, protocol)
    order = _ranking(scores)
    table = torch.tensor(video.labels, dtype=torch.float32)  # (N, 20)
    result = []
    for user in range(table.shape[1]):
        column = table[:, user]
        labels = torch.where(column > column.median(), 1.0, 0.0)
        result.append(trapezoid_ap(labels[order].tolist()[:TVSUM_TOP_K]))
    return result


def domain_map(videos: Sequence[SummarizationVideo], benchmark: str, protocol: SummarizationProtocol) -> float:
    """Unrounded mAP of one domain's videos (spec metrics.md §6, §7)."""
    if benchmark == "youtube_highlights":
        aps = [youtube_video_ap(video, protocol) for video in videos]
        if protocol == "flashvtg":
            kept = [[ap] for ap in aps if ap is not None]
            if not kept:
                raise AnnotationError(
                    f"domain {videos[0].domain!r}: no video has a positive segment (FlashVTG's mean would be empty)"
                )
            return float(np.mean(kept))
        return sum(aps) / len(aps)
    per_video = [tvsum_user_aps(video, protocol) for video in videos]  # (V, 20)
    if protocol == "flashvtg":
        return float(np.mean(per_video))
    per_user = [sum(row[user] for row in per_video) / len(per_video) for user in range(len(per_video[0]))]
    return sum(per_user) / len(per_user)


def evaluate_summarization(
    videos: Sequence[SummarizationVideo], benchmark: str, protocol: SummarizationProtocol
) -> dict[str, Any]:
    """``{domain: {"mAP": round(mAP, 5)}, ..., "average": {"mAP": ...}}`` in first-seen domain order.

    The average is the mean of the rounded per-domain values, rounded to 5 decimals (papers' "Avg." column).
    """
    by_domain: dict[str, list[SummarizationVideo]] = {}
    for video in videos:
        by_domain.setdefault(video.domain, []).append(video)
    result: dict[str, Any] = {}
    for domain, members in by_domain.items():
        value = domain_map(members, benchmark, protocol)
        # FlashVTG rounds the numpy float np.mean returns (numpy's rounding), R²-Tuning a Python float.
        rounded = float(round(np.float64(value), 5)) if protocol == "flashvtg" else round(value, 5)
        result[domain] = {"mAP": rounded}
    values = [entry["mAP"] for entry in result.values()]
    result["average"] = {"mAP": round(sum(values) / len(values), 5)}
    return result
