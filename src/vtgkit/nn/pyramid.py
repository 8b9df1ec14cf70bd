"""Temporal feature pyramid with one independent convolution branch per stride (spec r2-tuning.md §3.2,
flashvtg.md §3.7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.transpose import Transpose


def _num_halvings(stride: int) -> int:
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"pyramid strides must be powers of two (1, 2, 4, ...); got {stride}")
    return stride.bit_length() - 1


def pyramid_level_lengths(num_clips: int, strides: tuple[int, ...]) -> list[int]:
    """Number of points of each level for a sequence of ``num_clips`` clips; 0 for a level that is dropped.

    spec §3.2: a level exists only when the sequence is at least as long as its stride; its length is ⌊T / s⌋
    (repeated halving with kernel 2, stride 2, no padding).
    """
    return [num_clips // stride if num_clips >= stride else 0 for stride in strides]


class ConvPyramid(nn.Module):
    """Multi-scale temporal features: branch s applies log2(s) stages [Conv1d(k=2, s=2) → LayerNorm → ReLU].

    State-dict keys follow the official layout: ``blocks.<level>.<5·stage + 1>`` is the conv and
    ``blocks.<level>.<5·stage + 3>`` the LayerNorm of a stage (the stages' transposes and ReLU fill the other
    indices).

    Faithful quirks (spec r2-tuning.md §3.2, §15.1–2): the stride-1 branch is an **in-place** ReLU, so the
    caller's tensor becomes ReLU(x) and every later branch (and every later use of x by the caller) sees the
    ReLU'd features; branches do not share weights or cascade; levels with stride > T are dropped.
    """

    def __init__(self, dims: int, strides: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.strides = tuple(strides)
        blocks = []
        for stride in self.strides:
            halvings = _num_halvings(stride)
            if halvings == 0:
                blocks.append(nn.ReLU(inplace=True))
                continue
            layers: list[nn.Module] = []
            for _ in range(halvings):
                layers += [Transpose(1, 2), nn.Conv1d(dims, dims, 2, stride=2), Transpose(1, 2), nn.LayerNorm(dims),
                           nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Build the levels present for the padded length T.

        Args:
            x: (B, T, D); modified in place when stride 1 is configured (spec §3.2).
            mask: optional (B, T) 1/0 clip mask.

        Returns:
            levels: list of (B, ⌊T/s⌋, D), one per present level, in stride order.
            masks: list of (B, ⌊T/s⌋) point masks (stride s: max-pool of the clip mask over windows of s), or None.
        """
        num_clips = x.size(1)
        levels, masks = [], []
        for stride, block in zip(self.strides, self.blocks, strict=True):
            if num_clips < stride:
                continue
            levels.append(block(x))
            if mask is not None:
                if stride == 1:
                    masks.append(mask)
                else:
                    pooled = F.max_pool1d(mask.unsqueeze(1).float(), stride, stride).squeeze(1)
                    masks.append(pooled.to(mask.dtype))
        return levels, (masks if mask is not None else None)
