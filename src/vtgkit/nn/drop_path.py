"""Stochastic depth: drop a residual branch for whole samples during training."""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero ``x`` for a random subset of samples (probability ``p``), scale the kept ones by 1 / (1 − p).

    Args:
        x: (B, ...) residual branch output.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`; identity in eval mode."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
