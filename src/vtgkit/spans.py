"""Time windows: (start, end) <-> (center, width), temporal IoU and non-maximum suppression.

Letters in shape comments: N and M numbers of windows. Times are in seconds (or any unit, as long as both sides agree).

Two IoU formulas exist in the official evaluators and are *not* interchangeable at the last bit (spec metrics.md
§1, §2.5): the *cross* IoU ``inter / (len1 + len2 - inter)`` (AP matching, choice of the GT window, NMS) and the
*paired* IoU ``inter / hull`` (the final R1/R5/mIoU values), where the hull ``max(end) - min(start)`` equals the union
whenever the windows overlap. Both are float64 in numpy here, exactly in the official operation order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the torch functions: the numpy evaluators stay torch-free and fast
    import torch

NMSMethod = Literal["normal", "linear", "gaussian"]


def span_xx_to_cxw(spans: torch.Tensor) -> torch.Tensor:
    """Convert ``(..., 2)`` windows [start, end] to [center, width].

    >>> import torch
    >>> span_xx_to_cxw(torch.tensor([[2.0, 6.0]]))
    tensor([[4., 4.]])
    """
    import torch

    center = (spans[..., 0] + spans[..., 1]) * 0.5
    width = spans[..., 1] - spans[..., 0]
    return torch.stack([center, width], dim=-1)


def span_cxw_to_xx(spans: torch.Tensor) -> torch.Tensor:
    """Convert ``(..., 2)`` windows [center, width] to [start, end].

    >>> import torch
    >>> span_cxw_to_xx(torch.tensor([[4.0, 4.0]]))
    tensor([[2., 6.]])
    """
    import torch

    start = spans[..., 0] - 0.5 * spans[..., 1]
    end = spans[..., 0] + 0.5 * spans[..., 1]
    return torch.stack([start, end], dim=-1)


def temporal_iou_cross(windows1: np.ndarray, windows2: np.ndarray) -> np.ndarray:
    """IoU of every window of ``windows1`` (..., N, 2) with every window of ``windows2`` (..., M, 2) -> (..., N, M).

    float64, ``inter / (len1 + len2 - inter)`` without a zero guard: two zero-length windows give NaN, as in the
    official evaluator (spec metrics.md §1; a NaN passes the AP matcher's ``iou < t`` test). Leading dimensions
    broadcast, so a batch of queries is one call.

    >>> temporal_iou_cross(np.array([[0.0, 8.0], [18.0, 28.0]]), np.array([[0.0, 10.0], [20.0, 30.0]])).round(4)
    array([[0.8   , 0.    ],
           [0.    , 0.6667]])
    >>> temporal_iou_cross(np.array([[3.0, 3.0]]), np.array([[3.0, 3.0]]))
    array([[nan]])
    """
    windows1 = np.asarray(windows1, dtype=np.float64)
    windows2 = np.asarray(windows2, dtype=np.float64)
    lengths1 = windows1[..., 1] - windows1[..., 0]  # (..., N)
    lengths2 = windows2[..., 1] - windows2[..., 0]  # (..., M)
    left = np.maximum(windows1[..., :, None, 0], windows2[..., None, :, 0])  # (..., N, M)
    right = np.minimum(windows1[..., :, None, 1], windows2[..., None, :, 1])
    inter = np.clip(right - left, 0, None)
    union = lengths1[..., :, None] + lengths2[..., None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def temporal_iou_paired(windows1: np.ndarray, windows2: np.ndarray) -> np.ndarray:
    """IoU of row i of ``windows1`` (N, 2) with row i of ``windows2`` (N, 2) -> (N,), divided by the hull.

    The official R1/R5/mIoU formula: ``inter / (max(end) - min(start))``, 0 where the hull is 0. It equals the true
    IoU when the windows overlap and is 0 otherwise, but rounds differently (spec metrics.md §2.5).

    >>> temporal_iou_paired(np.array([[18.0, 28.0], [0.0, 1.0]]), np.array([[20.0, 30.0], [2.0, 3.0]]))
    array([0.66666667, 0.        ])
    """
    windows1 = np.asarray(windows1, dtype=np.float64)
    windows2 = np.asarray(windows2, dtype=np.float64)
    inter = np.maximum(0, np.minimum(windows1[:, 1], windows2[:, 1]) - np.maximum(windows1[:, 0], windows2[:, 0]))
    hull = np.maximum(windows1[:, 1], windows2[:, 1]) - np.minimum(windows1[:, 0], windows2[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def temporal_iou_torch(window: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """IoU of one window (2,) with windows (M, 2) in their own dtype: ``inter / (len1 + len2 - inter)``; 0/0 is NaN.

    >>> import torch
    >>> temporal_iou_torch(torch.tensor([0.0, 10.0]), torch.tensor([[5.0, 15.0], [20.0, 30.0]]))
    tensor([0.3333, 0.0000])
    """
    import torch

    start = torch.maximum(window[0], windows[:, 0])
    end = torch.minimum(window[1], windows[:, 1])
    inter = (end - start).clamp(0)
    return inter / ((window[1] - window[0]) + (windows[:, 1] - windows[:, 0]) - inter)


def nms(
    boundaries: torch.Tensor,
    method: NMSMethod = "normal",
    threshold: float = 0.7,
    sigma: float = 0.5,
) -> torch.Tensor:
    """Temporal NMS that keeps every row and lowers scores, then sorts by score, descending.

    The loop of the official code (spec r2-tuning.md §5, flashvtg.md §6): for i = 0 … N−1 the highest-scored row
    among i … N−1 (first on ties) is *swapped* with row i, then every later row's score is set to 0 when its IoU with
    row i is ≥ ``threshold`` ("normal"), multiplied by ``1 − IoU`` ("linear", no threshold) or by
    ``exp(−IoU² / sigma)`` ("gaussian"). Suppressed rows stay in the list. The final sort is PyTorch's default
    (non-stable on CPU beyond 16 rows) descending ``sort``, as in the official code, so equal-score rows come out in
    the order that call gives.

    Args:
        boundaries: (N, 3) rows [start, end, score]; not modified.
        method: "normal", "linear" or "gaussian".
        threshold: IoU threshold of "normal".
        sigma: width of "gaussian".

    Returns:
        (N, 3) rows in the new order with the new scores, same dtype.

    >>> import torch
    >>> rows = torch.tensor([[0.0, 10.0, 0.9], [1.0, 10.0, 0.8], [20.0, 30.0, 0.5]])
    >>> nms(rows, "normal", 0.7)
    tensor([[ 0.0000, 10.0000,  0.9000],
            [20.0000, 30.0000,  0.5000],
            [ 1.0000, 10.0000,  0.0000]])
    >>> nms(rows, "linear")[:, 2]
    tensor([0.9000, 0.5000, 0.0800])
    """
    if method not in ("normal", "linear", "gaussian"):
        raise ValueError(f"NMS method must be 'normal', 'linear' or 'gaussian'; got {method!r}")
    if boundaries.dim() != 2 or boundaries.shape[-1] != 3:
        raise ValueError(f"boundaries must have shape (N, 3) [start, end, score]; got {tuple(boundaries.shape)}")
    rows = boundaries.clone()
    for i in range(rows.shape[0]):
        best = i + int(rows[i:, 2].argmax(dim=0))
        if best != i:
            rows[[i, best]] = rows[[best, i]]
        iou = temporal_iou_torch(rows[i, :2], rows[i + 1 :, :2])
        if method == "normal":
            rows[i + 1 :, 2][iou >= threshold] = 0
        elif method == "linear":
            rows[i + 1 :, 2] *= 1 - iou
        else:
            rows[i + 1 :, 2] *= (-iou.pow(2) / sigma).exp()
    # spec r2-tuning.md §13: default (non-stable) torch.sort on purpose, to reproduce the official tie order.
    _, order = rows[:, 2].sort(descending=True)
    return rows[order]
