"""Frames and query texts → the arrays each official cache stores (the CLIP forward passes of extraction).

R²-Tuning (spec r2-tuning.md §10.2): video rows (K, P, D) = the last K of [ln_pre, block 1..N] hidden states, all
tokens; query (L, K, D) = the last K text hidden states of the first L positions, L = number of non-zero token ids.
FlashVTG (the Moment-DETR family's CLIP features): one pooled projected image embedding (E,) per clip, float16
(HERO_Video_Feature_Extractor ``clip/extract.py``); text as Moment-DETR's ``run_on_video/clip/model.py``
``encode_text`` returns it (Lighthouse's ``clip_t.py`` agrees): ``last_hidden_state`` (L, D) = ``ln_final(x)``,
*not* projected, of the first L = count_nonzero(ids) positions, and ``pooler_output`` (E,) = ``ln_final(x)[EOT] @
text_projection``, both float32 as in the released ``clip_text_features`` (for ViT-B/32, D = E = 512).
R²-Tuning arrays are stored as float16 (``.half()`` of the float32 result, as the official code saves).
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
        return (config.transformer_width,)  # FlashVTG last_hidden_state rows are un-projected

    @property
    def query_dtype(self) -> str:
        """Stored dtype of query features: float16 (R²-Tuning), float32 (FlashVTG, like the released files)."""
        return "float16" if self.layout == "r2tuning" else "float32"

    def encode_frames(self, images: torch.Tensor) -> np.ndarray:
        """Normalised (B, 3, R, R) → float16 rows: (B, K, P, D) or (B, E)."""
        with torch.inference_mode(), self._autocast():
            if self.layout == "r2tuning":
                out = self.model.encode_image_layers(images, self.num_layers)
            else:
                out = self.model.encode_image(images)
        return out.float().half().numpy()

    def encode_queries(self, tokenizer: CLIPTokenizer, texts: list[str]) -> list[dict[str, np.ndarray]]:
        """One dict of arrays per text (``features`` float16 for R²-Tuning; FlashVTG's two keys, float32)."""
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
                hidden = self.model.ln_final(self.model.encode_text_layers(tokens, 1)[:, 0]).float()  # (B, L, D)
                for row, ids in zip(hidden, tokens, strict=True):
                    # Moment-DETR keeps the first count_nonzero(ids) positions, like R²-Tuning (a token id 0 shortens
                    # the range); the pooled output is the projected end-of-text row.
                    length, eot = int((ids != 0).sum()), int(ids.argmax())
                    pooled = row[eot] @ self.model.text_projection.float()  # (E,)
                    results.append({"last_hidden_state": row[:length].numpy(), "pooler_output": pooled.numpy()})
        return results
