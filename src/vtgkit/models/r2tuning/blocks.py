"""Building blocks of the R² block (spec r2-tuning.md §3.1): attention, decoder layer, the R² block itself.

Letters: B batch, T clips, L query tokens, P tokens per frame, K CLIP layers, D hidden width.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.models.r2tuning.config import R2TuningConfig
from vtgkit.nn.core_split import SplitRun, split_available
from vtgkit.nn.drop_path import DropPath
from vtgkit.nn.fast_linear import fast_linear
from vtgkit.nn.positional_encoding import PositionalEncoding
from vtgkit.nn.token_mlp import token_mlp_before_output
from vtgkit.nn.token_mlp_inference import LARGE_ROWS_PER_CHUNK, ROWS_PER_CHUNK, token_mlp_hidden, token_mlp_output
from vtgkit.nn.token_pool import DeferredTokenMLPGradients, PoolingRun

# Tokens per video in one piece of the fast path's visual side: one token-MLP chunk (vtgkit.nn.token_mlp_inference),
# so its output is pooled straight away, without a copy into a whole-layer buffer.
PIECE_TOKENS = {"one_thread": ROWS_PER_CHUNK, "threads": LARGE_ROWS_PER_CHUNK}


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
        # Not in place: the Linear's output on a (B, T, D) input is a view, and an in-place ReLU on a view makes
        # autograd add a CopySlices / AsStrided pair (two extra passes over the hidden rows in backward).
        self.mapping = nn.Sequential(nn.Linear(dims, hidden), nn.ReLU(), nn.Linear(hidden, dims))

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

    def fast_pool_keys(self, q: torch.Tensor, mapped_after: bool) -> torch.Tensor:
        """Keys of :meth:`pool_tokens_fast`: q_map(q)·W_v, and ·W_2 (video_map's last weight) when the tokens are the
        token MLP's hidden u (v = W_2 u + b_2). Args: q (B, L, D). Returns (B, L, D)."""
        keys = fast_linear(q, self.q_map.weight, self.q_map.bias) @ self.v_map.weight
        return keys @ self.video_map[6].weight if mapped_after else keys

    def pool_tokens_fast(
        self, x: torch.Tensor, cls: torch.Tensor, inverse: torch.Tensor, q: torch.Tensor, keys: torch.Tensor,
        step: int, query_mask: torch.Tensor | None, mapped_after: bool,
    ) -> torch.Tensor:
        """Inference form of :meth:`pool_tokens` for samples that may share a video, on a range of clips.

        The key projection is folded into the queries: q_map(q)·(W_v v + b_v) = (q_map(q) W_v)·v + q_map(q)·b_v, and
        the last term is constant over P, so it cancels in the softmax: the U·T·P×D×D key GEMM becomes a B·L×D×D one.
        With ``mapped_after``, ``x`` is the token MLP's hidden u before its last Linear (v = W_2 u + b_2): the keys
        carry W_2 too (the b_2 term cancels likewise) and, as each row of the softmax sums to 1,
        Σ_p a_p v_p = W_2 (Σ_p a_p u_p) + b_2: the last Linear runs on the T·L pooled rows instead of the T·P tokens.
        All queries on one video are scored in one GEMM against its tokens. Equal to the reference up to float
        rounding.

        Args:
            x: (U, C, P, D) mapped tokens v of the distinct videos, or their hidden u with ``mapped_after``.
            cls: (B, C, D) mapped CLS token of each sample.
            inverse: (B,) video of each sample.
            q: (B, L, D); keys: (B, L, D) from :meth:`fast_pool_keys`; query_mask: (B, L) or None.
        Returns:
            (B, C, D).
        """
        _, num_clips, num_tokens, dims = x.shape
        batch, num_queries = q.shape[:2]
        weight = self.scale[step].tanh()
        linear2 = self.video_map[6]

        def finish(pooled: torch.Tensor, queries: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            """(..., L, D) attention-pooled rows → max over L of (rows + q), padded query tokens left out."""
            if mapped_after:
                pooled = fast_linear(pooled, linear2.weight, linear2.bias)
            pooled += queries
            if mask is not None:
                pooled.masked_fill_(mask[..., None] == 0, float("-inf"))
            return pooled.amax(dim=-2)

        if x.size(0) == batch:  # no shared video: one batched pass instead of a loop of small ops
            flat = x.reshape(batch, num_clips * num_tokens, dims)
            att = torch.bmm(keys, flat.transpose(1, 2)) / math.sqrt(dims)  # (B, L, C·P)
            att = att.view(batch, num_queries, num_clips, num_tokens).softmax(dim=-1).transpose(1, 2)  # (B, C, L, P)
            mask = None if query_mask is None else query_mask[:, None]
            return cls + weight * finish(torch.matmul(att, x), q[:, None], mask)  # (B, C, D)
        out = q.new_empty(batch, num_clips, dims)
        for video_index in range(x.size(0)):
            members = (inverse == video_index).nonzero()[:, 0]
            tokens = x[video_index]  # (C, P, D)
            scores = keys[members].reshape(-1, dims) @ tokens.reshape(-1, dims).t() / math.sqrt(dims)  # (n·L, C·P)
            att = scores.view(-1, num_clips, num_tokens).softmax(dim=-1).transpose(0, 1)  # (C, n·L, P)
            pooled = torch.bmm(att, tokens).view(num_clips, len(members), num_queries, dims)  # (C, n, L, D)
            mask = None if query_mask is None else query_mask[members][None]
            out[members] = cls[members] + weight * finish(pooled, q[members][None], mask).transpose(0, 1)  # (n, C, D)
        return out

    def map_video_cls_fused(self, tokens: torch.Tensor, tef: torch.Tensor | None) -> torch.Tensor:
        """Training form of :meth:`map_video` for the CLS token alone (no query-modulated pooling), up to, not
        including, the last Linear of ``video_map`` (vtgkit.nn.token_mlp: row chunks, dropout masks regenerated in
        backward). Args: tokens (B, T, 1, Dv). Returns the CLS token's u (B, T, D)."""
        return token_mlp_before_output(tokens, tef, self.video_map, dropout=self.training)[1]

    def pool_queries(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and bias of the folded pooling on u, the mapped tokens before the last Linear of ``video_map``
        (v = W2 u + b2), exact algebra: q_map(q)·v_map(v) = (q_map(q) Wv W2)·u + q_map(q)·(Wv b2 + bv). The key
        GEMM over B·T·P tokens becomes a B·L×D×D one; the bias is constant over P (the softmax cancels it) and kept
        so that ``v_map.bias`` gets its (analytically zero) gradient as in the official graph. 1/√D is folded into
        both. Args: q (B, L, D). Returns queries (B, L, D), bias (B, L, 1)."""
        last = self.video_map[-1]
        mapped = self.q_map(q)  # (B, L, D)
        keys = mapped @ self.v_map.weight  # (B, L, D): q_map(q) Wv
        scale = 1 / math.sqrt(last.weight.size(0))
        queries = (keys @ last.weight) * scale
        bias = ((keys @ last.bias + mapped @ self.v_map.bias) * scale)[..., None]
        return queries, bias

    def pool_tokens_folded(self, best: torch.Tensor, cls: torch.Tensor, step: int) -> torch.Tensor:
        """Autograd form of :meth:`pool_tokens` from the max over the queries that :meth:`_pooling_run` computes on
        the attention-weighted sums of u with :meth:`pool_queries`' queries: softmax rows sum to 1, so
        softmax(·) v = W2 (softmax(·) u) + b2, and W2 runs on B·T·L rows instead of B·T·P.

        Args: best (B, T, D) = max_L(W2 pooled + b2 + q); cls (B, T, D) = W2 u[:, :, 0] + b2. Returns (B, T, D)."""
        return cls + self.scale[step].tanh() * best

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
                (:meth:`_pooling_run`, :meth:`pool_tokens_folded`); False runs the plain module sequence.
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
        if fast:
            return self._forward_fast(video, query, video_mask, query_mask, tef, pos, pool_mask)
        last = None
        layer_video_cls, layer_query = [], []
        steps = self.steps()
        pooling = step_queries = None
        if fused and config.query_modulated_pooling:
            pooling, step_queries = self._pooling_run(video, query, tef, pool_mask, first, steps)
        with pooling if pooling is not None else contextlib.nullcontext():
            for index, step in enumerate(steps):
                if pooling is not None:
                    q = step_queries[index]
                    v, cls = pooling.result(index)  # max over queries (B, T, D), CLS u (B, T, D)
                    cls = self.video_map[-1](cls)  # the CLS token through video_map's last Linear
                elif fused:  # only the CLS token is used (the MLP works per token)
                    q = self.query_map(query[:, :, first + step].float())  # (B, L, D)
                    cls = self.video_map[-1](self.map_video_cls_fused(video[:, :, first + step, :1], tef))
                else:
                    v = self.map_video(video[:, :, first + step], tef)  # (B, T, P, D)
                    cls = v[:, :, 0]
                    # after the video, as in the official code: the same order of dropout draws
                    q = self.query_map(query[:, :, first + step].float())  # (B, L, D)
                layer_video_cls.append(cls)
                layer_query.append(q)
                if not config.query_modulated_pooling:
                    h = cls
                elif fused:
                    h = self.pool_tokens_folded(v, cls, step)
                else:
                    h = self.pool_tokens(v, q, step, pool_mask)
                if last is not None and config.recurrent_gate:
                    gate = self.gate[self._gate_index(step)].sigmoid()
                    h = gate * h + (1 - gate) * last
                last = self.tem(h, q, pos, video_mask, query_mask)
        return R2BlockOutput(video=last, query=q, layer_video_cls=layer_video_cls, layer_query=layer_query)

    def _pooling_run(
        self, video: torch.Tensor, query: torch.Tensor, tef: torch.Tensor | None, pool_mask: torch.Tensor | None,
        first: int, steps: list[int],
    ) -> tuple[PoolingRun, list[torch.Tensor]]:
        """The fused training form of every step's spatial pooling (vtgkit.nn.token_pool): every layer's query
        first (the pooling does not depend on the recurrence), then all layers' token chunks as one
        :class:`PoolingRun`, so that the decoder step of a layer runs while the helper thread pools the next one.
        With autograd the token MLP's weight gradients are deferred to one collecting node, created here before
        the pooling nodes so that autograd runs it after all of them. Returns the run and each step's q (B, L, D)."""
        deferred = DeferredTokenMLPGradients(self.video_map, self.training) if torch.is_grad_enabled() else None
        step_queries = [self.query_map(query[:, :, first + step].float()) for step in steps]  # (B, L, D) each
        calls = []
        for step, q in zip(steps, step_queries, strict=True):
            queries, bias = self.pool_queries(q)
            calls.append({"tokens": video[:, :, first + step], "tef": tef, "mlp": self.video_map,
                          "dropout": self.training, "queries": queries, "bias": bias, "q": q, "query_mask": pool_mask,
                          "deferred": deferred})
        return PoolingRun(calls), step_queries

    def _forward_fast(
        self, video: torch.Tensor, query: torch.Tensor, video_mask: torch.Tensor, query_mask: torch.Tensor,
        tef: torch.Tensor | None, pos: torch.Tensor, pool_mask: torch.Tensor | None,
    ) -> R2BlockOutput:
        """Inference form of :meth:`forward` (eval, no autograd); same arguments after the tef / positional encoding.

        The visual side of a step (token MLP, spatial pooling) does not depend on the recurrence: it is cut into
        pieces (layer × clip range) for each distinct video, which run in processing order on two threads with one
        intra-op thread each when the caller has ≥ 2 (vtgkit.nn.core_split), while this thread runs the recurrent
        steps (gate, temporal decoder) as soon as a layer's pieces are done. Without query-modulated pooling only
        the CLS token is mapped (the MLP works per token).
        """
        config = self.config
        batch, num_clips = video.shape[:2]
        first = video.size(2) - config.num_layers
        representatives, inverse = group_identical_rows(video, video_mask)
        inverse = inverse.to(video.device)
        if len(representatives) == batch:  # nothing shared: avoid copying the whole batch
            unique_video, unique_tef = video, tef
        else:
            unique_video = video[representatives]
            unique_tef = None if tef is None else tef[representatives]
        num_videos, num_tokens = unique_video.size(0), unique_video.size(3)
        steps = self.steps()
        queries = [self.query_map(query[:, :, first + step].float()) for step in steps]  # (B, L, D) each
        pooling = config.query_modulated_pooling
        # Last Linear of video_map after the pooling when that means fewer rows (B·L pooled + U CLS vs U·P tokens).
        mapped_after = pooling and batch * query.size(1) + num_videos < num_videos * num_tokens
        keys = [self.fast_pool_keys(q, mapped_after) for q in queries] if pooling else []
        layer_cls = [video.new_empty(batch, num_clips, config.hidden_dims, dtype=torch.float32) for _ in steps]
        layer_h = [video.new_empty(batch, num_clips, config.hidden_dims, dtype=torch.float32) for _ in steps]

        def piece(index: int, start: int, stop: int) -> None:
            step = steps[index]
            tokens = unique_video[:, start:stop, first + step]  # (U, C, P, Dv)
            if not pooling:
                tokens = tokens[:, :, :1]
            if num_videos == 1:  # no copy into a batch buffer
                hidden = token_mlp_hidden(tokens[0], None if unique_tef is None else unique_tef[0, start:stop],
                                          self.video_map)[None]
            else:
                hidden = tokens.new_empty(*tokens.shape[:3], config.hidden_dims, dtype=torch.float32)
                for v in range(num_videos):
                    token_mlp_hidden(tokens[v], None if unique_tef is None else unique_tef[v, start:stop],
                                     self.video_map, out=hidden[v])
            cls = token_mlp_output(hidden[:, :, 0], self.video_map)[inverse]  # (B, C, D)
            layer_cls[index][:, start:stop] = cls
            if not pooling:
                layer_h[index][:, start:stop] = cls
                return
            if not mapped_after:
                hidden = token_mlp_output(hidden, self.video_map)  # v (U, C, P, D)
            layer_h[index][:, start:stop] = self.pool_tokens_fast(
                hidden, cls, inverse, queries[index], keys[index], step, pool_mask, mapped_after)

        split = pooling and split_available()  # without pooling the visual side is K·T tokens: not worth a thread
        # Pieces of a few clips keep both threads busy while this one runs the recurrent steps in between.
        piece_tokens = PIECE_TOKENS["one_thread" if split or torch.get_num_threads() == 1 else "threads"]
        num_ranges = -(-num_clips // max(1, piece_tokens // num_tokens)) if pooling else 1
        bounds = [round(num_clips * r / num_ranges) for r in range(num_ranges + 1)]
        tasks = [functools.partial(piece, index, bounds[r], bounds[r + 1])
                 for index in range(len(steps)) for r in range(num_ranges)]
        last = None
        with SplitRun(tasks) if split else contextlib.nullcontext() as run:
            for index, step in enumerate(steps):
                for r in range(num_ranges):
                    if run is None:
                        tasks[index * num_ranges + r]()
                    else:
                        run.wait(index * num_ranges + r)
                h = layer_h[index]
                if last is not None and config.recurrent_gate:
                    gate = self.gate[self._gate_index(step)].sigmoid()
                    h = gate * h + (1 - gate) * last
                last = self.tem(h, queries[index], pos, video_mask, query_mask)
        return R2BlockOutput(video=last, query=queries[-1], layer_video_cls=layer_cls, layer_query=queries)
