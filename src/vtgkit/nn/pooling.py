"""Attention pooling of query tokens into one vector (spec r2-tuning.md §3.4, flashvtg.md §3.11)."""

from __future__ import annotations

import torch
from torch import nn


class AdaPooling(nn.Module):
    """Softmax-weighted sum of tokens with weights from a bias-free Linear(D → 1); padded tokens get weight 0."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.att = nn.Linear(dims, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x (B, L, D); mask (B, L) 1 valid / 0 padding. Returns (B, 1, D)."""
        logits = self.att(x)  # (B, L, 1)
        if mask is not None:
            logits = logits.masked_fill(mask.unsqueeze(-1) == 0, float("-inf"))
        weights = logits.softmax(dim=1)
        return torch.matmul(weights.transpose(1, 2), x)  # (B, 1, D)
