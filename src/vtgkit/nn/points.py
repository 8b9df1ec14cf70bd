"""Anchor points of the temporal pyramid (spec r2-tuning.md §3.3, flashvtg.md §3.8)."""

from __future__ import annotations

import math

import torch
from torch import nn


def regression_ranges(strides: tuple[int, ...]) -> list[tuple[float, float]]:
    """Regression range of each level in clip units: [s_i, s_{i+1}] from consecutive strides, the first level
    starting at 0 and the last one open-ended (e.g. (1,2,4,8) → [0,2], [2,4], [4,8], [8,∞))."""
    ranges = []
    for index, _ in enumerate(strides):
        low = 0.0 if index == 0 else float(strides[index])
        high = float(strides[index + 1]) if index + 1 < len(strides) else math.inf
        ranges.append((low, high))
    return ranges


class PointGenerator(nn.Module):
    """Per-level point tables with rows (t, range_low, range_high, stride); t = j·s in clip units (no half-stride
    offset). ``buffer_size`` caps the number of points per level, as the official cached tables do."""

    def __init__(self, strides: tuple[int, ...], buffer_size: int = 1024) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.buffer_size = buffer_size
        for index, (stride, (low, high)) in enumerate(zip(self.strides, regression_ranges(self.strides), strict=True)):
            position = torch.arange(buffer_size, dtype=torch.float32) * stride
            table = torch.stack(
                (position, torch.full_like(position, low), torch.full_like(position, high),
                 torch.full_like(position, float(stride))),
                dim=1,
            )  # (buffer_size, 4)
            # Not saved: the official checkpoints do not hold them (spec §11.2).
            self.register_buffer(f"table_{index}", table, persistent=False)

    def level_points(self, level: int, num_points: int) -> torch.Tensor:
        """Rows of one level. Returns (num_points, 4)."""
        if num_points > self.buffer_size:
            raise ValueError(
                f"pyramid level {level} has {num_points} points, more than buffer_size={self.buffer_size} "
                "(the longest video the model supports; raise buffer_size in the config)"
            )
        return getattr(self, f"table_{level}")[:num_points]

    def forward(self, level_lengths: list[int]) -> torch.Tensor:
        """Concatenate the points of every present level (length > 0) in level order. Returns (N, 4)."""
        rows = [self.level_points(level, n) for level, n in enumerate(level_lengths) if n > 0]
        return torch.cat(rows, dim=0)
