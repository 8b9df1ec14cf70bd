"""Parameter-free layout change, kept as a module so official Sequential indices (and state-dict keys) line up."""

from __future__ import annotations

import torch
from torch import nn


class Transpose(nn.Module):
    """Swap two dimensions, e.g. (B, T, C) ↔ (B, C, T) around a Conv1d."""

    def __init__(self, dim0: int = 1, dim1: int = 2) -> None:
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)
