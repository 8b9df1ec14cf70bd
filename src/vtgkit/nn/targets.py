"""Point-to-window target assignment of the anchor-point detectors (spec r2-tuning.md §6.1, flashvtg.md §4)."""

from __future__ import annotations

import torch


def assign_point_targets(
    points: torch.Tensor, windows: torch.Tensor, sample_radius: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classification and regression targets of every point for one sample.

    A window is eligible for a point when the point lies in its centre region [max(c − r·s, g0), min(c + r·s, g1)]
    (r = ``sample_radius``; with r = 0 inside the window) and max(d0, d1) lies in the level's regression range
    (both inclusive). The matched window is the shortest eligible one (first on ties; index 0 when none is
    eligible). Padding windows (+inf) are never eligible.

    Args:
        points: (N, 4) rows (t, range_low, range_high, stride) in clip units.
        windows: (W, 2) ground truth [g0, g1] in clip units (seconds × fps), +inf rows for padding.
        sample_radius: centre-sampling radius in strides.

    Returns:
        cls_target: (N,) 1.0 for positive points, else 0.0.
        reg_target: (N, 2) distances (t − g0, g1 − t) of the matched window, in units of the point's stride.
    """
    cls_target, reg_target = _assign(points, windows[None], sample_radius)
    return cls_target[0], reg_target[0]


def _assign(points: torch.Tensor, windows: torch.Tensor, sample_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`assign_point_targets` of B samples at once (windows (B, W, 2) in clip units): the same elementwise
    arithmetic with a leading batch dimension, so each sample's targets are bitwise those of the one-sample call.
    Returns (B, N), (B, N, 2)."""
    batch, num_windows = windows.shape[:2]
    num_points = points.size(0)
    position = points[None, :, 0, None]  # (1, N, 1)
    stride = points[None, :, 3, None]
    shape = (batch, num_points, num_windows)
    lengths = (windows[..., 1] - windows[..., 0])[:, None, :].expand(shape)  # (B, N, W)
    start = windows[:, None, :, 0].expand(shape)
    end = windows[:, None, :, 1].expand(shape)
    distances = torch.stack((position - start, end - position), dim=-1)  # (B, N, W, 2)
    if sample_radius > 0:
        center = (start + end) / 2
        low = torch.maximum(center - stride * sample_radius, start)
        high = torch.minimum(center + stride * sample_radius, end)
        inside = torch.minimum(position - low, high - position) >= 0
    else:
        inside = distances.min(dim=-1).values >= 0
    reach = distances.max(dim=-1).values
    in_range = (reach >= points[None, :, 1, None]) & (reach <= points[None, :, 2, None])
    # inf - inf = NaN for padding rows; they are never eligible (their centre test fails), so they become +inf.
    lengths = lengths.masked_fill(~(inside & in_range), float("inf"))
    min_length, matched = lengths.min(dim=2)  # (B, N)
    cls_target = torch.isfinite(min_length).to(points.dtype)
    index = matched[:, :, None, None].expand(batch, num_points, 1, 2)
    reg_target = distances.gather(2, index)[:, :, 0] / stride
    return cls_target, reg_target


def assign_batch_targets(
    points: torch.Tensor, windows: torch.Tensor, fps: torch.Tensor, sample_radius: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`assign_point_targets` for each sample of a batch.

    Args:
        points: (N, 4).
        windows: (B, W, 2) seconds, +inf padding rows.
        fps: (B,) clips per second.

    Returns:
        cls_target (B, N), reg_target (B, N, 2).
    """
    # One batched call instead of a per-sample loop (~25 small ops per sample).
    return _assign(points, windows * fps[:, None, None], sample_radius)
