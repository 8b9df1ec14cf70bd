"""Fixed sinusoidal positional encoding over clip positions (spec r2-tuning.md §3.1)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_encoding(
    num_positions: int,
    dims: int,
    temperature: float = 10000.0,
    normalize: bool = True,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Interleaved sin/cos encoding of positions 1..T.

    Positions are p = 1..T; with ``normalize`` they become p / (T + eps) · scale. Channel c uses the divisor
    temperature^(2⌊c/2⌋ / dims); even channels take the sine, odd channels the cosine.

    Returns:
        (T, dims) float32.
    """
    position = torch.arange(1, num_positions + 1, dtype=torch.float32, device=device)  # (T,)
    if normalize:
        # spec r2-tuning.md §3.1: normalised by the (padded) length, as a cumulative sum of an all-ones mask would be.
        position = position / (position[-1:] + eps) * scale
    channel = torch.arange(dims, dtype=torch.float32, device=device)
    divisor = temperature ** (2 * torch.div(channel, 2, rounding_mode="floor") / dims)  # (D,)
    angle = position[:, None] / divisor  # (T, D)
    encoding = torch.stack((angle[:, 0::2].sin(), angle[:, 1::2].cos()), dim=2)  # (T, D/2, 2)
    return encoding.flatten(1)


class PositionalEncoding(nn.Module):
    """Parameter-free sinusoidal encoding for a (B, T, D) sequence.

    ``forward`` encodes the padded length T for every sample, which is the official behaviour (spec §3.1, §15.5).
    ``for_lengths`` encodes each sample over its own true length (positions beyond it are zero), which makes a
    padded batch give the same result as running each sample alone.
    """

    def __init__(self, dims: int, temperature: float = 10000.0, normalize: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.dims = dims
        self.temperature = temperature
        self.normalize = normalize
        self.eps = eps

    def _encode(self, length: int, device: torch.device) -> torch.Tensor:
        return sinusoidal_encoding(
            length, self.dims, self.temperature, self.normalize, eps=self.eps, device=device
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, T, D). Returns (B, T, D) float32."""
        batch, length = x.shape[:2]
        return self._encode(length, x.device).unsqueeze(0).expand(batch, -1, -1)

    def for_lengths(self, lengths: list[int], max_length: int, device: torch.device) -> torch.Tensor:
        """Per-sample encoding over each true length. Returns (B, max_length, D), zero beyond each length."""
        out = torch.zeros(len(lengths), max_length, self.dims, device=device)
        for index, length in enumerate(lengths):
            if length > 0:
                out[index, :length] = self._encode(length, device)
        return out


def masked_sinusoidal_encoding(
    mask: torch.Tensor, dims: int, temperature: float = 10000.0, scale: float = 2 * math.pi, eps: float = 1e-6
) -> torch.Tensor:
    """Interleaved sin/cos encoding of the cumulative count of valid clips (spec flashvtg.md §2, DETR style).

    Position p = cumsum(mask), normalised by its value at the last (padded) index: p / (p[:, -1] + eps) · scale,
    so padded clips repeat the last valid position. Channels as in :func:`sinusoidal_encoding`.

    Args:
        mask: (B, T) 1 valid / 0 padding.

    Returns:
        (B, T, dims) float32.
    """
    position = mask.float().cumsum(1)  # (B, T)
    position = position / (position[:, -1:] + eps) * scale
    channel = torch.arange(dims, dtype=torch.float32, device=mask.device)
    divisor = temperature ** (2 * torch.div(channel, 2, rounding_mode="floor") / dims)  # (D,)
    angle = position[:, :, None] / divisor  # (B, T, D)
    return torch.stack((angle[:, :, 0::2].sin(), angle[:, :, 1::2].cos()), dim=3).flatten(2)
