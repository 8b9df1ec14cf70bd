"""Frames and query texts → the arrays each official cache stores (the CLIP forward passes of extraction).

R²-Tuning (spec r2-tuning.md §10.2): video rows (K, P, D) = the last K of [ln_pre, block 1..N] hidden states, all
tokens; query (L, K, D) = the last K text hidden states of the first L positions, L = number of non-zero token ids.
FlashVTG: one pooled projected image embedding (E,) per clip; text ``last_hidden_state`` (L, E) =
``ln_final(x) @ text_projection`` at positions SOT..EOT and ``pooler_output`` (E,) at EOT.
Stored as float16 (``.half()`` of the float32 result, as the official code saves).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from vtgkit.errors import ConfigError
from vtgkit.features.clip_model import CLIP
from vtgkit.features.tokenizer import CLIPTokenizer

PRECISIONS = ("fp32", "bf16")


class ClipEncoder:
    """Runs a frozen CLIP for one cache layout.

    Args:
        model: from :func:`vtgkit.features.clip_weights.load_clip` (float32).
        layout: ``"r2tuning"`` or ``"flashvtg"``.
        num_layers: K (R²-Tuning).
        precision: ``"fp32"`` (exact, the default and what reproduces the official files) or ``"bf16"``
            (CPU autocast, ~1 % relative error; ~3× faster on CPUs with native bf16 (AVX-512 BF16 / AMX,
            cpu-performance.md §2.1) but ~6× *slower* without them: measured on an AVX2-only CPU, so refused there).
    """

    def __init__(self, model: CLIP, layout: str, num_layers: int = 4, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
        if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise ConfigError("bf16 needs a CPU with native bf16 (AVX-512 BF16 or AMX); this one would emulate it "
                              "several times slower than fp32: use --precision fp32")
        depth = model.config.vision_layers
        if layout == "r2tuning" and not 1 <= num_layers <= min(depth, model.config.transformer_layers) + 1:
            raise ConfigError(f"--layers {num_layers}: this CLIP has {depth} vision and "
                              f"{model.config.transformer_layers} text blocks (K ≤ blocks + 1)")
        self.model = model
        self.layout = layout
        self.num_layers = num_layers
        self.precision = precision

    def _autocast(self):  # noqa: ANN202
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    @property
    def video_row_shape(self) -> tuple[int, ...]:
        config = self.model.config
        if self.layout == "r2tuning":
            return (self.num_layers, config.tokens_per_image, config.vision_width)
        return (config.embed_dim,)

    @property
    def query_row_shape(self) -> tuple[int, ...]:
        config = self.model.config
        if self.layout == "r2tuning":
            return (self.num_layers, config.transformer_width)
        return (config.embed_dim,)

    def encode_frames(self, images: torch.Tensor) -> np.ndarray:
        """Normalised (B, 3, R, R) → float16 rows: (B, K, P, D) or (B, E)."""
        with torch.inference_mode(), self._autocast():
            if self.layout == "r2tuning":
                out = self.model.encode_image_layers(images, self.num_layers)
            else:
                out = self.model.encode_image(images)
        return out.float().half().numpy()

    def encode_queries(self, tokenizer: CLIPTokenizer, texts: list[str]) -> list[dict[str, np.ndarray]]:
        """One dict of float16 arrays per text (keys: ``features`` for R²-Tuning; FlashVTG's two keys)."""
        context = self.model.config.context_length
        tokens = tokenizer.tokenize(texts, context_length=context, truncate=True)  # (B, 77)
        end = int(tokens.argmax(dim=-1).max()) + 1
        # The causal mask makes positions < end independent of the cut-off padding (same values, less work).
        tokens = tokens[:, :end]
        results: list[dict[str, np.ndarray]] = []
        with torch.inference_mode(), self._autocast():
            if self.layout == "r2tuning":
                layers = self.model.encode_text_layers(tokens, self.num_layers).float()  # (B, K, L, D)
                for row, ids in zip(layers, tokens, strict=True):
                    # spec r2-tuning.md §10.2: the official code keeps the FIRST count_nonzero(ids) positions (so a
                    # token with id 0, "!", shortens the kept range instead of being removed); reproduced.
                    length = int((ids != 0).sum())
                    results.append({"features": row[:, :length].permute(1, 0, 2).half().numpy()})  # (L, K, D)
            else:
                projected = self.model.encode_text_tokens(tokens).float()  # (B, L, E)
                for row, ids in zip(projected, tokens, strict=True):
                    eot = int(ids.argmax())
                    results.append({"last_hidden_state": row[: eot + 1].half().numpy(),
                                    "pooler_output": row[eot].half().numpy()})
        return results
