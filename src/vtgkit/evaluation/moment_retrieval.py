"""Moment-retrieval metrics (mAP, R1, R5, mIoU per length bucket) exactly as the official evaluators compute them.

Definitions: spec metrics.md §2 (and §10's easy mistakes). The official code loops in Python per query and per
prediction; here the same arithmetic runs vectorised over queries, in float64, in the official operation order, and
every reduction that could change a last bit (the per-query AP sum, the mean over queries) is done by the same numpy
call on an array of the same length and order. Letters: Q queries, P predicted windows (≤ 10), M GT windows,
T IoU thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vtgkit.spans import temporal_iou_cross, temporal_iou_paired

MAP_MAX_PREDICTIONS = 10  # spec metrics.md §2.1: the first 10 windows in list order
R5_MAX_PREDICTIONS = 5


def official_thresholds(start: float, stop: float, num: int) -> tuple[float, ...]:
    """``float(f"{t:.2f}")`` of ``np.linspace(start, stop, num)`` (spec metrics.md §1)."""
    return tuple(float(f"{value:.2f}") for value in np.linspace(start, stop, num))


MAP_THRESHOLDS = official_thresholds(0.5, 0.95, 10)


def percent(value: float) -> float:
    """The official formatting of every QVH-style metric: ``float(f"{100 * v:.2f}")`` (spec metrics.md §1)."""
    return float(f"{100 * value:.2f}")


@dataclass(frozen=True)
class Bucket:
    """GT-window length range (lo, hi]; ``unfiltered`` reproduces the official 'full' shortcut (no filtering)."""

    name: str
    low: float
    high: float
    unfiltered: bool = False


@dataclass(frozen=True)
class MomentProtocol:
    """One official evaluator's moment-retrieval variant (spec metrics.md §2.6, §4, §8).

    Attributes:
        name: protocol name.
        r1_thresholds: IoU thresholds of R1 (and R5).
        with_miou: report ``MR-mIoU`` per bucket.
        with_r5: report ``MR-R5`` per bucket (R²-Tuning).
        buckets: length buckets in the official order.
        empty_bucket: what the official code does when no GT window falls in a bucket: "error" (it crashes),
            "full" (R²-Tuning evaluates the whole set instead) or "zeros" (FlashVTG's dummy dict of zeros).
        brief_keys: the ``brief`` entries as (key, bucket, metric, threshold-key or None).
    """

    name: str
    r1_thresholds: tuple[float, ...]
    with_miou: bool
    with_r5: bool
    buckets: tuple[Bucket, ...]
    empty_bucket: Literal["error", "full", "zeros"]
    brief_keys: tuple[tuple[str, str, str, str | None], ...]


_QVH_BRIEF = (
    ("MR-full-mAP", "full", "MR-mAP", "average"),
    ("MR-full-mAP@0.5", "full", "MR-mAP", "0.5"),
    ("MR-full-mAP@0.75", "full", "MR-mAP", "0.75"),
    ("MR-short-mAP", "short", "MR-mAP", "average"),
    ("MR-middle-mAP", "middle", "MR-mAP", "average"),
    ("MR-long-mAP", "long", "MR-mAP", "average"),
    ("MR-full-R1@0.5", "full", "MR-R1", "0.5"),
    ("MR-full-R1@0.7", "full", "MR-R1", "0.7"),
)
_MIOU_FULL_R1_03 = (
    ("MR-full-mIoU", "full", "MR-mIoU", None),
    ("MR-full-R1@0.3", "full", "MR-R1", "0.3"),
)
_R2_EXTRA = (
    ("MR-short-mIoU", "short", "MR-mIoU", None),
    ("MR-middle-mIoU", "middle", "MR-mIoU", None),
    ("MR-long-mIoU", "long", "MR-mIoU", None),
    *_MIOU_FULL_R1_03,
    ("MR-full-R5@0.3", "full", "MR-R5", "0.3"),
    ("MR-full-R5@0.5", "full", "MR-R5", "0.5"),
    ("MR-full-R5@0.7", "full", "MR-R5", "0.7"),
)
_QVH_BUCKETS = (
    Bucket("short", 0, 10),
    Bucket("middle", 10, 30),
    Bucket("long", 30, 150),
    Bucket("full", 0, 150, unfiltered=True),
)

MOMENT_PROTOCOLS: dict[str, MomentProtocol] = {
    # jayleicn/moment_detr standalone_eval: the QVHighlights server's evaluator.
    "moment_detr": MomentProtocol(
        "moment_detr", official_thresholds(0.5, 0.95, 10), False, False, _QVH_BUCKETS, "error", _QVH_BRIEF
    ),
    # yeliudev/R2-Tuning vtg_eval.
    "r2tuning": MomentProtocol(
        "r2tuning",
        official_thresholds(0.3, 0.95, 14),
        True,
        True,
        (
            Bucket("short", 0, 10),
            Bucket("middle", 10, 30),
            Bucket("long", 30, float("inf")),
            Bucket("full", 0, float("inf"), unfiltered=True),
        ),
        "full",
        _QVH_BRIEF + _R2_EXTRA,
    ),
    # Zhuo-Cao/FlashVTG standalone_eval eval_submission.
    "flashvtg": MomentProtocol(
        "flashvtg",
        official_thresholds(0.3, 0.95, 14),
        True,
        False,
        _QVH_BUCKETS,
        "zeros",
        _QVH_BRIEF + _MIOU_FULL_R1_03,
    ),
    # line/lighthouse training/standalone_eval: one 'full' range (0, 1500], filtered (spec metrics.md §2.6).
    "lighthouse": MomentProtocol(
        "lighthouse",
        official_thresholds(0.5, 0.95, 10),
        False,
        False,
        (Bucket("full", 0, 1500),),
        "error",
        tuple(entry for entry in _QVH_BRIEF if entry[1] == "full"),
    ),
}


@dataclass
class MomentQuery:
    """One query's inputs: predicted rows (N, 3) in list order and GT windows (M, 2), both float64."""

    qid: Any
    predictions: np.ndarray
    ground_truth: np.ndarray


def average_precision(queries: Sequence[MomentQuery], thresholds: Sequence[float] = MAP_THRESHOLDS) -> np.ndarray:
    """Per-query interpolated AP at each IoU threshold -> (Q, T), bit-identical to the official loop.

    Steps of spec metrics.md §2.1: first 10 rows in list order, stable sort by score, greedy matching per threshold
    visiting GT windows in reversed ``argsort`` order of the cross IoU (NaN first), VOC-2011 interpolation.
    """
    thresholds_array = np.asarray(thresholds, dtype=np.float64)
    result = np.zeros((len(queries), len(thresholds_array)))
    # Group by the number of GT windows so that ``argsort`` sees exactly the official row (tie order, spec §2.1.3).
    groups: dict[int, list[int]] = {}
    for index, query in enumerate(queries):
        groups.setdefault(len(query.ground_truth), []).append(index)
    for num_gt, members in groups.items():
        result[members] = _average_precision_group([queries[i] for i in members], num_gt, thresholds_array)
    return result


def _average_precision_group(queries: list[MomentQuery], num_gt: int, thresholds: np.ndarray) -> np.ndarray:
    num_queries, num_thresholds = len(queries), len(thresholds)
    counts = np.array([min(len(q.predictions), MAP_MAX_PREDICTIONS) for q in queries])
    width = int(counts.max())
    rows = np.zeros((num_queries, width, 3))  # (Q, P, 3)
    for index, query in enumerate(queries):
        rows[index, : counts[index]] = query.predictions[: counts[index]]
    valid = np.arange(width)[None, :] < counts[:, None]  # (Q, P)
    # Python's stable sort by -score (spec metrics.md §2.1.2); padding goes last.
    order = np.argsort(np.where(valid, -rows[..., 2], np.inf), axis=1, kind="stable")
    rows = np.take_along_axis(rows, order[..., None], axis=1)
    gt = np.stack([q.ground_truth for q in queries])  # (Q, M, 2)
    iou = temporal_iou_cross(rows[..., :2], gt)  # (Q, P, M)
    visit = np.argsort(iou, axis=-1)[..., ::-1]  # official: tiou_arr.argsort()[::-1]
    visited_iou = np.take_along_axis(iou, visit, axis=-1)
    # In visiting order the IoUs are NaN first, then non-increasing, so the windows passing "not iou < t" are a prefix.
    candidate = (visited_iou[:, :, None, :] >= thresholds[None, None, :, None]) | np.isnan(visited_iou)[:, :, None, :]
    locked = np.zeros((num_queries, num_thresholds, num_gt), dtype=bool)  # (Q, T, M)
    true_positive = np.zeros((num_queries, num_thresholds, width), dtype=bool)  # (Q, T, P)
    query_index = np.arange(num_queries)[:, None]
    threshold_index = np.arange(num_thresholds)[None, :]
    for rank in range(width):
        visit_rank = np.broadcast_to(visit[:, rank, None, :], (num_queries, num_thresholds, num_gt))
        available = candidate[:, rank] & ~np.take_along_axis(locked, visit_rank, axis=-1) & valid[:, rank, None, None]
        hit = available.any(axis=-1)  # (Q, T)
        chosen = np.take_along_axis(visit_rank, available.argmax(axis=-1)[..., None], axis=-1)[..., 0]
        locked[query_index, threshold_index, chosen] |= hit
        true_positive[:, :, rank] = hit
    false_positive = valid[:, None, :] & ~true_positive
    tp_cumsum = np.cumsum(true_positive, axis=-1).astype(float)
    fp_cumsum = np.cumsum(false_positive, axis=-1).astype(float)
    # Padding ranks repeat the last real point (no TP/FP added), which changes neither the running max nor the
    # recall steps below, so the padded layout gives the official terms.
    recall = tp_cumsum / float(num_gt)
    precision = tp_cumsum / (tp_cumsum + fp_cumsum)
    zeros = np.zeros((num_queries, num_thresholds, 1))
    mprecision = np.concatenate([zeros, precision, zeros], axis=-1)
    mrecall = np.concatenate([zeros, recall, zeros + 1], axis=-1)
    mprecision = np.maximum.accumulate(mprecision[..., ::-1], axis=-1)[..., ::-1]
    steps = mrecall[..., 1:] != mrecall[..., :-1]
    terms = (mrecall[..., 1:] - mrecall[..., :-1]) * mprecision[..., 1:]
    return sum_selected(terms.reshape(-1, terms.shape[-1]), steps.reshape(-1, steps.shape[-1])).reshape(
        num_queries, num_thresholds
    )


def sum_selected(values: np.ndarray, selected: np.ndarray, mean: bool = False) -> np.ndarray:
    """Row-wise ``np.sum`` (or ``np.mean``) of ``values[selected]`` as if each row's selection were its own 1-D array.

    numpy's pairwise summation groups terms by position, so padding with zeros would change last bits; rows are
    therefore compacted and reduced in groups of equal length (a row-wise reduction of an (R, k) array equals the
    1-D reduction of each row). Rows with nothing selected give 0 (sum) or NaN (mean).
    """
    counts = selected.sum(axis=1)
    rows, columns = np.nonzero(selected)  # row-major: the selected entries of each row in their order
    compact = np.zeros(values.shape)
    compact[rows, np.cumsum(selected, axis=1)[rows, columns] - 1] = values[rows, columns]
    result = np.full(len(values), np.nan if mean else 0.0)
    for count in np.unique(counts):
        if count == 0:
            continue
        members = np.nonzero(counts == count)[0]
        block = compact[members, :count]
        result[members] = block.mean(axis=1) if mean else block.sum(axis=1)
    return result


def _first_window_ious(queries: Sequence[MomentQuery], count: int) -> np.ndarray:
    """Paired IoU of the official R1 (count=1) or R5 (count=5) choice of (prediction, GT) pair per query -> (Q,)."""
    max_gt = max(len(q.ground_truth) for q in queries)
    preds = np.zeros((len(queries), count, 2))
    gts = np.zeros((len(queries), max_gt, 2))
    pred_valid = np.zeros((len(queries), count), dtype=bool)
    gt_valid = np.zeros((len(queries), max_gt), dtype=bool)
    for index, query in enumerate(queries):
        head = query.predictions[:count, :2]
        preds[index, : len(head)] = head
        pred_valid[index, : len(head)] = True
        gts[index, : len(query.ground_truth)] = query.ground_truth
        gt_valid[index, : len(query.ground_truth)] = True
    iou = temporal_iou_cross(preds, gts)  # (Q, count, M)
    if count > 1:
        iou = np.nan_to_num(iou, nan=0.0, posinf=np.inf, neginf=-np.inf)  # R2's R5 sets NaN to 0
    iou = np.where(pred_valid[:, :, None] & gt_valid[:, None, :], iou, -np.inf)
    # np.argmax: first maximum in row-major order; for R1 a NaN counts as the maximum, as in the official argmax.
    flat = iou.reshape(len(queries), -1).argmax(axis=1)
    pred_index, gt_index = np.divmod(flat, max_gt)
    rows = np.arange(len(queries))
    return temporal_iou_paired(preds[rows, pred_index], gts[rows, gt_index])


def recall_at(queries: Sequence[MomentQuery], thresholds: Sequence[float], count: int = 1) -> dict[str, float]:
    """R1 (count=1, the first window in list order) or R2's R5 (count=5) in percent per threshold key."""
    iou = _first_window_ious(queries, count)
    return {str(t): float(f"{np.mean(iou >= t) * 100:.2f}") for t in thresholds}


def mean_iou(queries: Sequence[MomentQuery]) -> float:
    """100 × mean paired IoU of the first window (R2 / FlashVTG ``MR-mIoU``)."""
    return float(f"{np.mean(_first_window_ious(queries, 1)) * 100:.2f}")


def mean_average_precision(queries: Sequence[MomentQuery]) -> dict[str, float]:
    """``MR-mAP``: per-threshold means over queries and their average, in percent (spec metrics.md §2.2)."""
    ap = average_precision(queries, MAP_THRESHOLDS)
    per_threshold = ap.mean(0)
    values: dict[str, Any] = dict(zip([str(t) for t in MAP_THRESHOLDS], per_threshold, strict=True))
    values["average"] = np.mean(per_threshold)
    return {key: percent(value) for key, value in values.items()}


def select_bucket(queries: Sequence[MomentQuery], bucket: Bucket) -> list[MomentQuery]:
    """Keep per query only its GT windows with length in (low, high]; drop queries left without any (order kept)."""
    if bucket.unfiltered:
        return list(queries)
    counts = np.array([len(q.ground_truth) for q in queries])
    windows = np.concatenate([q.ground_truth for q in queries])  # (sum M, 2)
    lengths = windows[:, 1] - windows[:, 0]
    inside = (lengths > bucket.low) & (lengths <= bucket.high)
    owner = np.repeat(np.arange(len(queries)), counts)
    kept_per_query = np.bincount(owner, weights=inside, minlength=len(queries)).astype(int)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    kept = []
    for index in np.nonzero(kept_per_query)[0]:
        query = queries[index]
        if kept_per_query[index] == counts[index]:
            kept.append(query)
        else:
            mask = inside[offsets[index] : offsets[index + 1]]
            kept.append(MomentQuery(query.qid, query.predictions, query.ground_truth[mask]))
    return kept


def _zeros_dict() -> dict[str, float]:
    # FlashVTG's dummy for an empty bucket: keys are the floats of np.linspace(0.5, 0.95, 19) (spec metrics.md §2.6).
    dummy = {repr(float(value)): 0.0 for value in np.linspace(0.5, 0.95, 19)}
    dummy["average"] = 0.0
    return dummy


class EmptyBucketError(ValueError):
    """No GT window falls in a length bucket of a protocol whose official code crashes on it."""


def evaluate_moments(queries: Sequence[MomentQuery], protocol: MomentProtocol) -> tuple[dict[str, Any], dict[str, Any]]:
    """All buckets of ``protocol`` -> (per-bucket metrics, brief entries), in the official structure."""
    per_bucket: dict[str, Any] = {}
    for bucket in protocol.buckets:
        subset = select_bucket(queries, bucket)
        if not subset:
            if protocol.empty_bucket == "full":
                subset = list(queries)
            elif protocol.empty_bucket == "zeros":
                dummy = _zeros_dict()
                per_bucket[bucket.name] = {"MR-mAP": dummy, "MR-R1": dict(dummy)}
                continue
            else:
                raise EmptyBucketError(
                    f"no ground-truth window has a length in ({bucket.low}, {bucket.high}] (bucket {bucket.name!r}); "
                    f"the official {protocol.name} evaluator crashes on an empty bucket — use --protocol r2tuning "
                    "or flashvtg, whose code handles it"
                )
        metrics: dict[str, Any] = {}
        if protocol.with_miou:
            metrics["MR-mIoU"] = mean_iou(subset)
        metrics["MR-mAP"] = mean_average_precision(subset)
        metrics["MR-R1"] = recall_at(subset, protocol.r1_thresholds, 1)
        if protocol.with_r5:
            metrics["MR-R5"] = recall_at(subset, protocol.r1_thresholds, R5_MAX_PREDICTIONS)
        per_bucket[bucket.name] = metrics
    brief = {}
    for key, bucket_name, metric, sub_key in protocol.brief_keys:
        value = per_bucket[bucket_name][metric]
        brief[key] = value if sub_key is None else value[sub_key]
    return per_bucket, dict(sorted(brief.items()))
