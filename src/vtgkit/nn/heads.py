"""Convolutional prediction head shared by all pyramid levels (spec r2-tuning.md §3.5, flashvtg.md §3.9)."""

from __future__ import annotations

import torch
from torch import nn

from vtgkit.nn.transpose import Transpose


class ConvHead(nn.Module):
    """Conv1d(k) → ReLU → Conv1d(k) over time, zero-padded at both ends, no normalisation.

    Keys match the official ``module.1`` / ``module.3`` (the transposes are at indices 0 and 4).
    """

    def __init__(self, in_dims: int, out_dims: int, hidden_dims: int | None = None, kernel_size: int = 3) -> None:
        super().__init__()
        hidden_dims = in_dims if hidden_dims is None else hidden_dims
        padding = kernel_size // 2
        self.module = nn.Sequential(
            Transpose(1, 2),
            nn.Conv1d(in_dims, hidden_dims, kernel_size, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden_dims, out_dims, kernel_size, padding=padding),
            Transpose(1, 2),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            x: (B, T, C_in).
            mask: optional (B, T) 1/0. When given, rows beyond each sample's length are zeroed before each conv, so
                a padded batch gives every sample what it gets alone (zero padding right after its last row).

        Returns:
            (B, T, C_out).
        """
        if mask is None:
            return self.module(x)
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        to_channels, conv1, relu, conv2, to_time = self.module
        hidden = relu(conv1(to_channels(x) * keep))
        return to_time(conv2(hidden * keep))
