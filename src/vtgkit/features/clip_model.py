"""Frozen CLIP ViT (OpenAI layout and parameter names) that returns per-layer token sequences.

A compact re-implementation of the OpenAI CLIP vision/text transformers (ViT-B/32, ViT-B/16, ViT-L/14,
ViT-L/14@336px and any other size): parameter names equal the OpenAI / open_clip state dicts, so their weights load
unchanged. What R²-Tuning needs (spec r2-tuning.md §10.2, §14.2) is the list of hidden states
[ln_pre output, block 1, ..., block N] (text: [embedding, block 1, ..., block N]) before ``ln_post``/``ln_final``;
FlashVTG's CLIP features are the pooled, projected embeddings.

Letters: B images or texts, P tokens per image (1 + grid²), L text positions, K kept layers, D width, E embed dim.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.errors import CheckpointError


@dataclass(frozen=True)
class CLIPConfig:
    """Dimensions of a CLIP ViT, read from a state dict's key shapes as the OpenAI ``build_model`` does."""

    embed_dim: int = 512
    image_resolution: int = 224
    vision_layers: int = 12
    vision_width: int = 768
    vision_patch_size: int = 32
    context_length: int = 77
    vocab_size: int = 49408
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12

    @property
    def vision_heads(self) -> int:
        return self.vision_width // 64

    @property
    def grid_size(self) -> int:
        return self.image_resolution // self.vision_patch_size

    @property
    def tokens_per_image(self) -> int:
        return self.grid_size**2 + 1

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> CLIPConfig:
        """The OpenAI rule: widths from weight shapes, layer counts from key names, heads = width // 64."""
        try:
            conv = state_dict["visual.conv1.weight"]
            vision_layers = len(
                {k.split(".")[3] for k in state_dict if k.startswith("visual.transformer.resblocks.")}
            )
            grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            width = state_dict["ln_final.weight"].shape[0]
            text_layers = len({k.split(".")[2] for k in state_dict if k.startswith("transformer.resblocks.")})
            return cls(
                embed_dim=state_dict["text_projection"].shape[1],
                image_resolution=conv.shape[-1] * grid,
                vision_layers=vision_layers,
                vision_width=conv.shape[0],
                vision_patch_size=conv.shape[-1],
                context_length=state_dict["positional_embedding"].shape[0],
                vocab_size=state_dict["token_embedding.weight"].shape[0],
                transformer_width=width,
                transformer_heads=width // 64,
                transformer_layers=text_layers,
            )
        except KeyError as error:
            raise CheckpointError(f"not a CLIP ViT state dict: key {error} missing") from error


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as OpenAI's CLIP does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, on batch-first input.

    Batch-first projections avoid the expand+bmm copy that ``nn.MultiheadAttention`` hits under CPU autocast
    (cpu-performance.md §2.1).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape  # (B, L, D)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # (B, H, L, D/H)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, width * 4), gelu=QuickGELU(), c_proj=nn.Linear(width * 4, width))
        )
        self.ln_2 = LayerNorm(width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def hidden_states(self, x: torch.Tensor, num_kept: int, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The last ``num_kept`` of [input, block 1 output, ..., block N output], stacked: (B, K, L, D)."""
        depth = len(self.resblocks)
        if not 1 <= num_kept <= depth + 1:
            raise ValueError(f"num_kept must be in 1..{depth + 1} (embedding + {depth} blocks), got {num_kept}")
        kept = [x] if num_kept == depth + 1 else []
        for index, block in enumerate(self.resblocks):
            x = block(x, attn_mask)
            if index >= depth - num_kept:
                kept.append(x)
        return torch.stack(kept, dim=1)


class VisionTransformer(nn.Module):
    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        width = config.vision_width
        self.input_resolution = config.image_resolution
        self.conv1 = nn.Conv2d(3, width, config.vision_patch_size, config.vision_patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(config.tokens_per_image, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, config.vision_layers, config.vision_heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, config.embed_dim))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, R, R) -> ``ln_pre`` output (B, P, D)."""
        x = self.conv1(images.to(self.conv1.weight.dtype))  # (B, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g², D)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)


class CLIP(nn.Module):
    """OpenAI CLIP ViT with per-layer outputs. Build with :func:`build_clip` from a state dict."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(config)
        self.transformer = Transformer(config.transformer_width, config.transformer_layers, config.transformer_heads)
        self.token_embedding = nn.Embedding(config.vocab_size, config.transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.transformer_width))
        self.ln_final = LayerNorm(config.transformer_width)
        self.text_projection = nn.Parameter(torch.empty(config.transformer_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.register_buffer("causal_mask", self._causal_mask(config.context_length), persistent=False)

    @staticmethod
    def _causal_mask(length: int) -> torch.Tensor:
        return torch.full((length, length), float("-inf")).triu_(1)  # -inf above the diagonal

    # --- image tower ---------------------------------------------------------------------------------------------
    def encode_image_layers(self, images: torch.Tensor, num_layers: int) -> torch.Tensor:
        """Hidden states of the last ``num_layers`` of [ln_pre, block 1..N], all tokens, before ``ln_post``.

        Args:
            images: (B, 3, R, R) normalised.
        Returns:
            (B, K, P, D), layers in ascending depth; token 0 is the class token.
        """
        return self.visual.transformer.hidden_states(self.visual.embed(images), num_layers)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Projected image embedding ``ln_post(CLS) @ proj``: (B, E), not L2-normalised."""
        last = self.encode_image_layers(images, 1)[:, 0, 0]  # (B, D)
        return self.visual.ln_post(last) @ self.visual.proj

    # --- text tower ----------------------------------------------------------------------------------------------
    def _embed_text(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        mask = self.causal_mask[:length, :length].to(x.dtype)
        return x, mask

    def encode_text_layers(self, tokens: torch.Tensor, num_layers: int) -> torch.Tensor:
        """Hidden states of the last ``num_layers`` of [embedding, block 1..N], before ``ln_final``.

        The causal mask makes position i depend only on positions ≤ i, so ``tokens`` may be cut after the longest
        end-of-text of the batch without changing the kept positions.

        Args:
            tokens: (B, L) ids, L ≤ context length.
        Returns:
            (B, K, L, D).
        """
        x, mask = self._embed_text(tokens)
        return self.transformer.hidden_states(x, num_layers, mask)

    def encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every position projected: ``ln_final(x) @ text_projection``, (B, L, E)."""
        last = self.encode_text_layers(tokens, 1)[:, 0]  # (B, L, D)
        return self.ln_final(last) @ self.text_projection

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected text embedding at the end-of-text token (the highest id): (B, E)."""
        projected = self.encode_text_tokens(tokens)
        return projected[torch.arange(tokens.shape[0]), tokens.argmax(dim=-1)]


_IGNORED_KEYS = {"input_resolution", "context_length", "vocab_size"}


def build_clip(state_dict: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> CLIP:
    """A frozen, eval-mode CLIP in ``dtype`` (float32 by default, as the official pipeline runs it on CPU).

    Missing or unexpected keys raise ``CheckpointError`` naming them (OpenAI's bookkeeping entries
    ``input_resolution``/``context_length``/``vocab_size`` are dropped, as ``clip.model.build_model`` does).
    """
    state_dict = {k: v for k, v in state_dict.items() if k not in _IGNORED_KEYS}
    model = CLIP(CLIPConfig.from_state_dict(state_dict))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"CLIP state dict does not fit the ViT layout: missing {missing[:8]}, "
                              f"unexpected {unexpected[:8]}")
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            found = tuple(state_dict[key].shape)
            raise CheckpointError(f"CLIP key {key}: shape {found}, expected {tuple(value.shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()})
    model = model.to(dtype).eval()
    model.requires_grad_(False)
    return model
