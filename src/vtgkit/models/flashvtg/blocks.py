"""FlashVTG-only building blocks (spec flashvtg.md §2, §3.1–3.5, §3.10).

Blocks shared with R²-Tuning (pyramid, points, pooling, ConvHead, losses) live in :mod:`vtgkit.nn`.
Shapes: B batch, T clips, L query tokens, S = num_dummies + L keys, D hidden size, H heads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vtgkit.nn.drop_path import DropPath


class LinearLayer(nn.Module):
    """LayerNorm → Dropout → Linear (→ ReLU); official keys ``LayerNorm.*``, ``net.1.*`` (spec §2)."""

    def __init__(self, in_dim: int, out_dim: int, relu: bool, dropout: float) -> None:
        super().__init__()
        self.relu = relu
        self.LayerNorm = nn.LayerNorm(in_dim)
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.net(self.LayerNorm(x))
        return F.relu(x, inplace=True) if self.relu else x


def input_projection(in_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> nn.Sequential:
    """``num_layers`` LinearLayers: in→D then D→D; every layer but the last ends with ReLU (spec §3.1)."""
    layers = [
        LinearLayer(in_dim if i == 0 else hidden_dim, hidden_dim, relu=i < num_layers - 1, dropout=dropout)
        for i in range(num_layers)
    ]
    return nn.Sequential(*layers)


class EncoderLayer(nn.Module):
    """Post-norm self-attention layer with a PReLU FFN and DropPath residuals (spec §2, "EncL")."""

    def __init__(self, hidden_dim: int, num_heads: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(hidden_dim, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(hidden_dim, feedforward_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_dim, hidden_dim)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.drop_path1 = DropPath(dropout)
        self.drop_path2 = DropPath(dropout)
        self.activation = nn.PReLU()

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x, pos: (S, B, D) sequence-first; padding_mask: (B, S) bool, True = ignore."""
        qk = x + pos
        attn = self.self_attn(qk, qk, value=x, key_padding_mask=padding_mask, need_weights=False)[0]
        x = self.norm1(x + self.drop_path1(attn))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.norm2(x + self.drop_path2(ffn))


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` without a final norm; official keys ``layers.{i}.*``."""

    def __init__(self, num_layers: int, hidden_dim: int, num_heads: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_dim, num_heads, feedforward_dim, dropout) for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, padding_mask, pos)
        return x


class DummyAttention(nn.Module):
    """Projection-free multi-head attention of ACA; only ``out_proj`` has weights (spec §3.4).

    The dummy keys take part in the softmax, but their columns are dropped before the weighted sum (without
    renormalising), so the mass given to dummies is lost.
    """

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.out_proj = nn.Linear(hidden_dim, hidden_dim)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_dummies: int, blocked: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, D); key, value (B, S, D); blocked (B, H, T, S) bool, True = −inf.

        Returns the attention output (B, T, D) and the head-averaged softmax weights (B, T, S).
        """
        batch, num_queries, dim = query.shape
        head_dim = dim // self.num_heads
        q = (query * head_dim**-0.5).view(batch, num_queries, self.num_heads, head_dim).transpose(1, 2)  # (B, H, T, d)
        k = key.view(batch, -1, self.num_heads, head_dim).transpose(1, 2)  # (B, H, S, d)
        v = value.view(batch, -1, self.num_heads, head_dim).transpose(1, 2)  # (B, H, S, d)
        logits = (q @ k.transpose(-1, -2)).masked_fill(blocked, float("-inf"))  # (B, H, T, S)
        weights = logits.softmax(-1)
        mean_weights = weights.sum(1) / self.num_heads  # (B, T, S), before dropout, as the official sum / H
        weights = F.dropout(weights, self.dropout, self.training)
        out = weights[..., num_dummies:] @ v[:, :, num_dummies:]  # (B, H, T, d): dummy columns dropped
        out = out.transpose(1, 2).reshape(batch, num_queries, dim)
        return self.out_proj(out), mean_weights


class CrossAttentionLayer(nn.Module):
    """One Adaptive Cross Attention layer: updates video tokens only (spec §3.4)."""

    def __init__(self, hidden_dim: int, num_heads: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = DummyAttention(hidden_dim, num_heads, dropout)
        self.linear1 = nn.Linear(hidden_dim, feedforward_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_dim, hidden_dim)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.drop_path1 = DropPath(dropout)
        self.drop_path2 = DropPath(dropout)
        self.activation = nn.PReLU()

    def forward(
        self, video: torch.Tensor, video_pos: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
        num_dummies: int, blocked: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attn, weights = self.self_attn(video + video_pos, key, value, num_dummies, blocked)
        hidden = video + self.drop_path1(attn)
        # spec §3.4: the FFN reads norm1(h) but its residual adds to the un-normalised h.
        ffn = self.linear2(self.dropout(self.activation(self.linear1(self.norm1(hidden)))))
        return self.norm2(hidden + self.drop_path2(ffn)), weights


class CrossAttentionEncoder(nn.Module):
    """``t2v_encoder``: a stack of :class:`CrossAttentionLayer`; returns the layer-averaged attention weights."""

    def __init__(self, num_layers: int, hidden_dim: int, num_heads: int, feedforward_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, num_heads, feedforward_dim, dropout) for _ in range(num_layers)
        )

    def blocked_keys(
        self, video_mask: torch.Tensor, key_mask: torch.Tensor, official_layout: bool
    ) -> torch.Tensor:
        """(B, H, T, S) bool: padded keys, plus keys that are padding where the query clip is padding.

        Args:
            video_mask: (B, T) 1 valid / 0 padding.
            key_mask: (B, S) 1 valid / 0 padding (dummies always valid).
            official_layout: spec §3.4 — the official code expands the (B, T, S) mask with ``repeat(H, 1, 1)``,
                so head h of item b receives item (b·H + h) mod B's mask. False gives every head its own item's.
        """
        batch = video_mask.shape[0]
        key_padding = ~key_mask.bool()  # (B, S)
        both_padding = (~video_mask.bool())[:, :, None] & key_padding[:, None, :]  # (B, T, S)
        heads = torch.arange(self.num_heads, device=video_mask.device)
        items = torch.arange(batch, device=video_mask.device)[:, None]
        source = (items * self.num_heads + heads) % batch if official_layout else items.expand(-1, self.num_heads)
        return both_padding[source] | key_padding[:, None, None, :]  # (B, H, T, S)

    def forward(
        self, video: torch.Tensor, video_pos: torch.Tensor, video_mask: torch.Tensor, dummies: torch.Tensor,
        dummy_pos: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, official_layout: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """video, video_pos (B, T, D); dummies, dummy_pos (B, nd, D); text (B, L, D); masks 1/0.

        Returns the updated video (B, T, D) and the attention weights averaged over layers (B, T, nd + L).
        """
        num_dummies = dummies.shape[1]
        key = torch.cat([dummies + dummy_pos, text], dim=1)  # text positions are zero (spec §3.1)
        value = torch.cat([dummies, text], dim=1)
        key_mask = torch.cat([text_mask.new_ones(text_mask.shape[0], num_dummies), text_mask], dim=1)
        blocked = self.blocked_keys(video_mask, key_mask, official_layout)
        total = None
        for layer in self.layers:
            video, weights = layer(video, video_pos, key, value, num_dummies, blocked)
            total = weights if total is None else total + weights
        return video, total / len(self.layers)


class Transformer(nn.Module):
    """``transformer``: ACA (``t2v_encoder``) then the video self-attention ``encoder`` (spec §3.4–3.5)."""

    def __init__(
        self, hidden_dim: int, num_heads: int, feedforward_dim: int, dropout: float, num_t2v_layers: int,
        num_encoder_layers: int,
    ) -> None:
        super().__init__()
        self.t2v_encoder = CrossAttentionEncoder(num_t2v_layers, hidden_dim, num_heads, feedforward_dim, dropout)
        self.encoder = Encoder(num_encoder_layers, hidden_dim, num_heads, feedforward_dim, dropout)

    def forward(
        self, video: torch.Tensor, video_pos: torch.Tensor, video_mask: torch.Tensor, dummies: torch.Tensor,
        dummy_pos: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, official_layout: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the encoded video E (B, T, D) and the ACA attention A (B, T, nd + L)."""
        video, attention = self.t2v_encoder(
            video, video_pos, video_mask, dummies, dummy_pos, text, text_mask, official_layout
        )
        encoded = self.encoder(video.transpose(0, 1), ~video_mask.bool(), video_pos.transpose(0, 1))
        return encoded.transpose(0, 1), attention


class MLP(nn.Module):
    """``num_layers`` Linear layers in→hid→…→out with ReLU between; official keys ``layers.{i}``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class ConfidenceScorer(nn.Module):
    """ASR scorer: [Conv2d(D→D, (1, k)) → ReLU] × n over time, then MLP(D, 128, 1) (spec §3.10).

    Input channels are fixed at 256 in the official code; ``channels`` must equal the hidden size.
    """

    def __init__(self, channels: int, kernel_size: int, num_conv_layers: int, num_mlp_layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, kernel_size // 2))
            for _ in range(num_conv_layers)
        )
        self.fc = MLP(channels, 128, 1, num_mlp_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) → logits (B, T, 1)."""
        x = x.transpose(1, 2).unsqueeze(2)  # (B, D, 1, T)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.fc(x.squeeze(2).transpose(1, 2))


class TextPositionTable(nn.Module):
    """``txt_position_embed``: learned text positions (Embedding + LayerNorm + Dropout).

    Built and saved by the official model but never used, since ``use_txt_pos`` is False in every script
    (spec §3.1); kept so official checkpoints load with a strict key match.
    """

    def __init__(self, num_positions: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.position_embeddings = nn.Embedding(num_positions, hidden_dim)
        self.LayerNorm = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) → x + positions, normalised (the official, unused, text-position path)."""
        positions = torch.arange(x.shape[1], device=x.device)
        return self.dropout(self.LayerNorm(x + self.position_embeddings(positions)[None]))
