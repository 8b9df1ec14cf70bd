"""Building blocks of the R² block (spec r2-tuning.md §3.1): attention, decoder layer, the R² block itself.

Letters: B batch, T clips, L query tokens, P tokens per frame, K CLIP layers, D hidden width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.models.r2tuning.config import R2TuningConfig
from vtgkit.nn.drop_path import DropPath
from vtgkit.nn.fast_linear import fast_linear
from vtgkit.nn.positional_encoding import PositionalEncoding
from vtgkit.nn.token_mlp import token_mlp


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v/m projections (official key names); heads are contiguous
    channel groups; masked keys get −inf before the softmax."""

    def __init__(self, dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q = nn.Linear(dims, dims)
        self.k = nn.Linear(dims, dims)
        self.v = nn.Linear(dims, dims)
        self.m = nn.Linear(dims, dims)

    def reset_parameters(self) -> None:
        # spec §7.1: xavier-uniform weights, zero biases.
        for linear in (self.q, self.k, self.v, self.m):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Args: query (B, Tq, D); key, value (B, Tk, D); key_mask (B, Tk) 1 valid / 0 masked. Returns (B, Tq, D)."""
        batch, num_queries, dims = query.shape
        head_dims = dims // self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, self.num_heads, head_dims).transpose(1, 2)  # (B, H, T, D/H)

        attn_mask = None if key_mask is None else (key_mask > 0)[:, None, None, :]
        out = F.scaled_dot_product_attention(
            split(self.q(query)), split(self.k(key)), split(self.v(value)), attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.m(out.transpose(1, 2).reshape(batch, num_queries, dims))


class FeedForward(nn.Module):
    """Linear → ReLU → Linear; ``mapping.0`` / ``mapping.2`` as in the official checkpoints."""

    def __init__(self, dims: int, ratio: int = 4) -> None:
        super().__init__()
        hidden = dims * ratio
        self.mapping = nn.Sequential(nn.Linear(dims, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dims))

    def reset_parameters(self) -> None:
        # spec §7.1: kaiming-normal (fan_out, a = 0) weights, zero biases.
        for index in (0, 2):
            nn.init.kaiming_normal_(self.mapping[index].weight, a=0, mode="fan_out")
            nn.init.zeros_(self.mapping[index].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)


class TemporalDecoderLayer(nn.Module):
    """Post-norm transformer decoder layer in the order cross-attention → self-attention → FFN (spec §3.1).

    The positional encoding is added to the queries (and to the self-attention keys), never to the memory.
    """

    def __init__(self, dims: int, num_heads: int, ffn_ratio: int, attention_dropout: float, drop_path: float) -> None:
        super().__init__()
        self.cross_att = MultiHeadAttention(dims, num_heads, attention_dropout)
        self.cross_att_norm = nn.LayerNorm(dims)
        self.self_att = MultiHeadAttention(dims, num_heads, attention_dropout)
        self.self_att_norm = nn.LayerNorm(dims)
        self.ffn = FeedForward(dims, ffn_ratio)
        self.ffn_norm = nn.LayerNorm(dims)
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, x_mask: torch.Tensor,
        memory_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Args: x (B, T, D) clips; memory (B, L, D) query tokens; pos (B, T, D); masks (B, T), (B, L).
        Returns (B, T, D); rows of padded clips are computed too."""
        out = self.cross_att(x + pos, memory, memory, memory_mask)
        x = self.cross_att_norm(x + self.drop_path(out))
        qk = x + pos
        out = self.self_att(qk, qk, x, x_mask)
        x = self.self_att_norm(x + self.drop_path(out))
        x = self.ffn_norm(x + self.drop_path(self.ffn(x)))
        return x


def _token_mlp(in_dims: int, dims: int, dropout: float) -> nn.Sequential:
    """LayerNorm → Dropout → Linear → ReLU → LayerNorm → Dropout → Linear (``video_map`` / ``query_map``)."""
    return nn.Sequential(
        nn.LayerNorm(in_dims), nn.Dropout(dropout), nn.Linear(in_dims, dims), nn.ReLU(inplace=True),
        nn.LayerNorm(dims), nn.Dropout(dropout), nn.Linear(dims, dims),
    )


def temporal_encoding(num_clips: int, device: torch.device) -> torch.Tensor:
    """(start, end) of each clip as a fraction of the sequence. Returns (T, 2) float32.

    spec §3.1, §13: ``torch.arange(0, 1, 1/T)`` (which can return T + 1 values), first T kept; end = start + 1/T.
    """
    start = torch.arange(0, 1, 1 / num_clips, device=device)[:num_clips]
    return torch.stack((start, start + 1 / num_clips), dim=1)


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality, compared as 8-byte words (``torch.equal`` on float16 is several times slower)."""
    a, b = a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
    if a.numel() != b.numel():
        return False
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if a.numel() % size == 0:
            return torch.equal(a.view(dtype), b.view(dtype))
    return torch.equal(a, b)


def group_identical_rows(x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[list[int], torch.Tensor]:
    """Find batch rows holding identical data (e.g. one video asked several queries).

    Rows are first compared on a strided sample of their elements, then confirmed bit for bit.

    Args:
        x: (B, ...).
        mask: optional (B, ...) that must be equal too (e.g. the clip mask).

    Returns:
        representatives: index of the first row of each group, in order of appearance.
        inverse: (B,) long, the group of each row.
    """
    batch = x.size(0)
    inverse = torch.zeros(batch, dtype=torch.long)
    if batch == 1:
        return [0], inverse
    if x.stride(0) == 0 and (mask is None or mask.stride(0) == 0):  # expanded from one row
        return [0], inverse
    numel = x[0].numel()
    sample_index = torch.linspace(0, numel - 1, steps=min(numel, 4096), device=x.device).long()
    samples = x.reshape(batch, -1).index_select(1, sample_index)
    representatives: list[int] = []
    for row in range(batch):
        for group, first in enumerate(representatives):
            same_mask = mask is None or torch.equal(mask[row], mask[first])
            if same_mask and torch.equal(samples[row], samples[first]) and _same_bytes(x[row], x[first]):
                inverse[row] = group
                break
        else:
            inverse[row] = len(representatives)
            representatives.append(row)
    return representatives, inverse


@dataclass
class R2BlockOutput:
    video: torch.Tensor  # (B, T, D) decoder output of the last step (before the pyramid's in-place ReLU)
    query: torch.Tensor  # (B, L, D) mapped query tokens of the last step (the shallowest layer, spec §15.4)
    layer_video_cls: list[torch.Tensor]  # K × (B, T, D) mapped CLS token per step, processing order
    layer_query: list[torch.Tensor]  # K × (B, L, D) mapped query tokens per step, processing order


class R2Block(nn.Module):
    """The R² block: refines the last K CLIP layers into clip features, deepest layer first (spec §3.1).

    ``lengths`` selects the semantics for padded batches. ``None`` is the official behaviour (temporal encoding
    and positional encoding over the padded length, padded query tokens inside the spatial max-pool; spec §15.3,
    §15.5). A list of true lengths makes each sample independent of the padding, equal to running it alone.
    """

    def __init__(self, config: R2TuningConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.hidden_dims
        self.video_map = _token_mlp(config.video_in_dims, dims, config.adapter_dropout)
        self.query_map = _token_mlp(config.query_dims, dims, config.adapter_dropout)
        if config.query_modulated_pooling:
            self.v_map = nn.Linear(dims, dims)  # keys of the spatial pooling; values stay unprojected
            self.q_map = nn.Linear(dims, dims)
            self.scale = nn.Parameter(torch.zeros(config.num_layers))  # tanh(scale[i]) weighs the pooled term
        if config.recurrent_gate and config.num_layers > 1:
            self.gate = nn.Parameter(torch.zeros(config.num_layers - 1))  # sigmoid(gate[i]) mixes with the last step
        self.tem = TemporalDecoderLayer(
            dims, config.num_heads, config.ffn_ratio, config.attention_dropout, config.drop_path
        )
        self.pos_enc = PositionalEncoding(dims)

    def reset_parameters(self) -> None:
        self.tem.cross_att.reset_parameters()
        self.tem.self_att.reset_parameters()
        self.tem.ffn.reset_parameters()

    def steps(self) -> list[int]:
        """Indices (0 = shallowest kept layer) in processing order."""
        k = self.config.num_layers
        return list(range(k - 1, -1, -1)) if self.config.layer_order == "deep_to_shallow" else list(range(k))

    def _gate_index(self, step: int) -> int:
        return step if self.config.layer_order == "deep_to_shallow" else step - 1

    def _tef(self, batch: int, num_clips: int, lengths: list[int] | None, device: torch.device) -> torch.Tensor:
        """(B, T, 2) temporal encoding: over the padded T (official) or over each true length."""
        if lengths is None:
            return temporal_encoding(num_clips, device).expand(batch, -1, -1)
        tef = torch.zeros(batch, num_clips, 2, device=device)
        for index, length in enumerate(lengths):
            if length > 0:
                tef[index, :length] = temporal_encoding(length, device)
        return tef

    def map_video(self, tokens: torch.Tensor, tef: torch.Tensor | None) -> torch.Tensor:
        """video_map on every visual token of one layer. Args: tokens (B, T, P, Dv) any float dtype; tef (B, T, 2).
        Returns (B, T, P, D)."""
        x = tokens.float()
        if tef is not None:
            x = torch.cat((x, tef[:, :, None, :].expand(-1, -1, x.size(2), -1)), dim=-1)  # (B, T, P, Dv + 2)
        return self.video_map(x)

    def pool_tokens(
        self, v: torch.Tensor, q: torch.Tensor, step: int, query_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Query-modulated spatial pooling of one layer (spec §3.1 step 3).

        Args:
            v: (B, T, P, D) mapped visual tokens.
            q: (B, L, D) mapped query tokens.
            query_mask: (B, L) to keep padded tokens out of the max over L, or None (official: all L take part).
        Returns:
            (B, T, D) = v_CLS + tanh(scale) · max_L(softmax_P(q_map(q)·v_map(v)ᵀ/√D) v + q).
        """
        keys = self.v_map(v)  # (B, T, P, D)
        queries = self.q_map(q)  # (B, L, D); computed once per sample, same values as the official per-clip repeat
        att = torch.einsum("bld,btpd->btlp", queries, keys) / math.sqrt(v.size(-1))  # (B, T, L, P)
        pooled = torch.matmul(att.softmax(dim=-1), v) + q[:, None]  # (B, T, L, D)
        if query_mask is not None:
            pooled = pooled.masked_fill(query_mask[:, None, :, None] == 0, float("-inf"))
        return v[:, :, 0] + self.scale[step].tanh() * pooled.amax(dim=2)

    def pool_tokens_fast(
        self, v: torch.Tensor, inverse: torch.Tensor, q: torch.Tensor, step: int, query_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Inference form of :meth:`pool_tokens` for samples that may share a video.

        The key projection is folded into the queries: q_map(q)·(W v + b) = (q_map(q) W)·v + q_map(q)·b, and the last
        term is constant over P, so it cancels in the softmax: the U·T·P×D×D key GEMM becomes a B·L×D×D one. All
        queries on one video are scored in one GEMM against its tokens. Equal to the reference up to float rounding.

        Args:
            v: (U, T, P, D) mapped tokens of the distinct videos.
            inverse: (B,) video of each sample.
            q: (B, L, D); query_mask: (B, L) or None.
        Returns:
            (B, T, D).
        """
        _, num_clips, num_tokens, dims = v.shape
        batch, num_queries = q.shape[:2]
        queries = fast_linear(q, self.q_map.weight, self.q_map.bias) @ self.v_map.weight  # (B, L, D)
        weight = self.scale[step].tanh()
        if v.size(0) == batch:  # no shared video: one batched pass instead of a loop of small ops
            flat = v.reshape(batch, num_clips * num_tokens, dims)
            att = torch.bmm(queries, flat.transpose(1, 2)) / math.sqrt(dims)  # (B, L, T·P)
            att = att.view(batch, num_queries, num_clips, num_tokens).softmax(dim=-1).transpose(1, 2)  # (B, T, L, P)
            pooled = torch.matmul(att, v)  # (B, T, L, D)
            pooled += q[:, None]
            if query_mask is not None:
                pooled.masked_fill_(query_mask[:, None, :, None] == 0, float("-inf"))
            return v[:, :, 0] + weight * pooled.amax(dim=2)
        out = q.new_empty(batch, num_clips, dims)
        for video_index in range(v.size(0)):
            members = (inverse == video_index).nonzero()[:, 0]
            tokens = v[video_index]  # (T, P, D)
            scores = queries[members].reshape(-1, dims) @ tokens.reshape(-1, dims).t() / math.sqrt(dims)  # (n·L, T·P)
            att = scores.view(-1, num_clips, num_tokens).softmax(dim=-1).transpose(0, 1)  # (T, n·L, P)
            pooled = torch.bmm(att, tokens).view(num_clips, len(members), num_queries, dims)  # (T, n, L, D)
            pooled += q[members][None]
            if query_mask is not None:
                pooled.masked_fill_(query_mask[members][None, :, :, None] == 0, float("-inf"))
            out[members] = tokens[None, :, 0] + weight * pooled.amax(dim=2).transpose(0, 1)  # (n, T, D)
        return out

    def map_video_fast(self, tokens: torch.Tensor, tef: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused form of :meth:`map_video` (vtgkit.nn.token_mlp): row chunks that stay in cache from the fp16 → fp32
        copy (tef written alongside, no concatenation) to the GEMMs (oneDNN, ReLU fused, in inference); in training,
        cheap dropout masks regenerated in backward and no 770-wide tensor saved. Returns (B, T, P, D) and its CLS
        token (B, T, D)."""
        return token_mlp(tokens, tef, self.video_map, dropout=self.training)

    def pool_tokens_folded(
        self, v: torch.Tensor, cls: torch.Tensor, q: torch.Tensor, step: int, query_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Autograd form of :meth:`pool_tokens_fast` for distinct videos (training): the key projection folded into
        the queries. The key bias term q_map(q)·b is kept (a constant over P that the softmax cancels) so that
        ``v_map.bias`` gets its (analytically zero) gradient as in the official graph.

        Args: v (B, T, P, D); cls (B, T, D) = v[:, :, 0]; q (B, L, D); query_mask (B, L) or None.
        Returns (B, T, D)."""
        batch, num_clips, num_tokens, dims = v.shape
        num_queries = q.size(1)
        mapped = self.q_map(q)  # (B, L, D)
        queries = mapped @ self.v_map.weight  # (B, L, D)
        bias = (mapped @ self.v_map.bias)[..., None]  # (B, L, 1)
        att = torch.baddbmm(bias, queries, v.reshape(batch, num_clips * num_tokens, dims).transpose(1, 2))
        att = (att / math.sqrt(dims)).view(batch, num_queries, num_clips, num_tokens).softmax(dim=-1)
        pooled = torch.matmul(att.transpose(1, 2), v) + q[:, None]  # (B, T, L, D)
        if query_mask is not None:
            pooled = pooled.masked_fill(query_mask[:, None, :, None] == 0, float("-inf"))
        return cls + self.scale[step].tanh() * pooled.amax(dim=2)

    def forward(
        self,
        video: torch.Tensor,
        query: torch.Tensor,
        video_mask: torch.Tensor,
        query_mask: torch.Tensor,
        lengths: list[int] | None = None,
        fast: bool = False,
        fused: bool = False,
    ) -> R2BlockOutput:
        """Args:
            video: (B, T, K_all, P, Dv) stored CLIP tokens (any float dtype, zero padding), K_all ≥ K, ascending depth.
            query: (B, L, K_all, Dq).
            video_mask, query_mask: (B, T), (B, L) 1/0.
            lengths: true clip counts for per-sample semantics, or None for the official padded semantics.
            fast: use the inference forms (eval, no autograd).
            fused: with autograd, map the video tokens with the fused token MLP and fold the key projection
                (:meth:`map_video_fast`, :meth:`pool_tokens_folded`); False runs the plain module sequence.
        """
        config = self.config
        batch, num_clips = video.shape[:2]
        first = video.size(2) - config.num_layers  # spec §3.1: keep the last K stored layers
        tef = self._tef(batch, num_clips, lengths, video.device) if config.use_tef else None
        if lengths is None:
            pos = self.pos_enc(video.new_empty(batch, num_clips, 0))
        else:
            pos = self.pos_enc.for_lengths(lengths, num_clips, video.device)
        pool_mask = None if lengths is None else query_mask
        last = None
        layer_video_cls, layer_query = [], []
        if fast:
            # The visual side of every step does not depend on the query: map each distinct video once.
            representatives, inverse = group_identical_rows(video, video_mask)
            inverse = inverse.to(video.device)
            if len(representatives) == batch:  # nothing shared: avoid copying the whole batch
                unique_video, unique_tef = video, tef
            else:
                unique_video = video[representatives]
                unique_tef = None if tef is None else tef[representatives]
        for step in self.steps():
            if fast:
                v, cls = self.map_video_fast(unique_video[:, :, first + step], unique_tef)  # (U, T, P, D)
                cls = cls[inverse]  # (B, T, D)
            elif fused:
                v, cls = self.map_video_fast(video[:, :, first + step], tef)  # (B, T, P, D), (B, T, D)
            else:
                v = self.map_video(video[:, :, first + step], tef)  # (B, T, P, D)
                cls = v[:, :, 0]
            q = self.query_map(query[:, :, first + step].float())  # (B, L, D)
            layer_video_cls.append(cls)
            layer_query.append(q)
            if not config.query_modulated_pooling:
                h = cls
            elif fast:
                h = self.pool_tokens_fast(v, inverse, q, step, pool_mask)
            elif fused:
                h = self.pool_tokens_folded(v, cls, q, step, pool_mask)
            else:
                h = self.pool_tokens(v, q, step, pool_mask)
            if last is not None and config.recurrent_gate:
                gate = self.gate[self._gate_index(step)].sigmoid()
                h = gate * h + (1 - gate) * last
            last = self.tem(h, q, pos, video_mask, query_mask)
        return R2BlockOutput(video=last, query=q, layer_video_cls=layer_video_cls, layer_query=layer_query)
