"""Run a frozen SlowFast over a video's clips: uint8 clips in, float16 (n_clips, 2304) rows out, as HERO saves them."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vtgkit.features.prefetch import prefetch
from vtgkit.features.slowfast.model import SlowFast
from vtgkit.features.slowfast.sampling import iter_video_clips, slowfast_inputs


class SlowFastEncoder:
    """Batches clips through the model (float32, as HERO runs it) and casts the features to float16.

    Args:
        model: from :func:`vtgkit.features.slowfast.weights.load_slowfast`.
        batch_size: clips per forward pass (BN runs in inference mode, so clips never mix; only float
            rounding of the convolution kernels can differ with the batch size).
    """

    def __init__(self, model: SlowFast, batch_size: int = 4) -> None:
        self.model = model.eval()
        self.batch_size = batch_size

    @property
    def row_shape(self) -> tuple[int]:
        return (self.model.config.feature_dim,)

    @property
    def crop_size(self) -> int:
        return self.model.config.crop_size

    def encode_clips(self, clips: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 (B, T, 3, S, S) → float16 (B, feature_dim)."""
        slow, fast = slowfast_inputs(torch.as_tensor(clips), self.model.config.alpha)
        with torch.inference_mode():
            return self.model(slow, fast).half().numpy()

    def encode_video(self, path: str | Path, clip_len: Fraction,
                     on_clips: Callable[[int], object] | None = None) -> np.ndarray:
        """Features of every clip of one video (decoding overlaps with the model in a background thread);
        ``on_clips(n)`` is called after each batch of ``n`` clips (progress bars)."""
        rows: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        for clip in prefetch(iter_video_clips(path, clip_len, self.crop_size), max_items=2 * self.batch_size):
            batch.append(clip)
            if len(batch) == self.batch_size:
                rows.append(self.encode_clips(np.stack(batch)))
                batch = []
                if on_clips is not None:
                    on_clips(len(rows[-1]))
        if batch:
            rows.append(self.encode_clips(np.stack(batch)))
            if on_clips is not None:
                on_clips(len(rows[-1]))
        return np.concatenate(rows)
