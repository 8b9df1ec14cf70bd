"""The token MLP up to its last Linear (vtgkit.nn.token_mlp) fused with R²-Tuning's query-modulated spatial pooling.

Why: the pooling reads the token MLP's output u (B·T·P × 256 fp32, 30 MB per layer at the official shapes) from
DRAM several times (scores, weighted sum; in backward the two gradient contributions and their sum) and autograd
keeps u and the attention for backward. Here each row chunk of the token MLP pools its own clips while u is still
in cache, right after the second LayerNorm and dropout:

    scores = queries[b]·u_p + bias[b]  (per query, per token p of a clip of video b)
    att = softmax over the P tokens of the clip;  pooled = Σ_p att_p u_p  (per clip, per query)

and returns only the pooled rows (B, T, L, 256) and the CLS token's u. u is never stored: backward recomputes it
per chunk from the saved hidden activation (LayerNorm-2 and the regenerated dropout mask), takes the softmax
backward in-chunk (the attention, B·T·P·L floats, is saved), and continues into the token MLP's backward for that
chunk. The gradients of the queries and bias are summed per chunk in chunk order, so two threads give the
one-thread bits (vtgkit.nn.core_split, as in vtgkit.nn.token_mlp).

A chunk covers a range of clips of the flattened B·T and may span two videos: each video's segment of the chunk is
scored against that video's queries in one GEMM.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.fast_linear import fast_linear
from vtgkit.nn.token_mlp import (
    _chunks,
    _drop,
    _dropout_rate,
    _plain_before_output,
    _run,
    _scaled,
    _sum,
    chunk_masks,
    finish_weight_grads,
    hidden_backward,
    input_rows,
)


def _segments(start: int, stop: int, clips_per_video: int) -> list[tuple[int, int, int]]:
    """(video, first clip, end clip) of each video's part of the clip range [start, stop) of the flattened B·T."""
    out = []
    clip = start
    while clip < stop:
        video = clip // clips_per_video
        end = min(stop, (video + 1) * clips_per_video)
        out.append((video, clip, end))
        clip = end
    return out


class _TokenMLPPool(torch.autograd.Function):
    """(pooled (C, L, H), cls (C, H)) from the tokens (C, P, Dv) of C = B·T clips, see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, tokens: torch.Tensor, tef: torch.Tensor | None, clips_per_video: int, p: float, seed: int,
        eps1: float, eps2: float, g1: torch.Tensor, b1: torch.Tensor, w1: torch.Tensor, c1: torch.Tensor,
        g2: torch.Tensor, b2: torch.Tensor, queries: torch.Tensor, bias: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w1s, g2s, b2s = _scaled(p, w1, g2, b2)
        num_clips, num_tokens = tokens.shape[:2]
        width, inner = w1s.size(1), w1s.size(0)
        num_queries = queries.size(1)
        device = tokens.device
        pooled = torch.empty(num_clips, num_queries, inner, device=device)
        cls = torch.empty(num_clips, inner, device=device)
        bias_rows = bias[..., 0].contiguous()  # (B, L)
        chunks = _chunks(num_clips, num_tokens)
        hidden: list[torch.Tensor | None] = [None] * len(chunks)
        attention: list[torch.Tensor | None] = [None] * len(chunks)

        def piece(index: int) -> None:
            start, stop = chunks[index]
            clips = stop - start
            count = clips * num_tokens
            mask1, mask2 = chunk_masks(seed, index, count, width, inner, p, device)
            x = input_rows(tokens, tef, start, stop, g1, b1, eps1, mask1)
            h = hidden[index] = fast_linear(x, w1s, c1, relu=True)
            u = F.layer_norm(h, [inner], g2s, b2s, eps2)
            if mask2 is not None:
                _drop(u, mask2)
            cls[start:stop] = u.view(clips, num_tokens, inner)[:, 0]
            scores = torch.empty(count, num_queries, device=device)
            for video, first, end in _segments(start, stop, clips_per_video):
                rows = slice((first - start) * num_tokens, (end - start) * num_tokens)
                torch.addmm(bias_rows[video], u[rows], queries[video].t(), out=scores[rows])  # (n·P, L)
            att = attention[index] = scores.view(clips, num_tokens, num_queries).softmax(dim=1)  # over P
            torch.bmm(att.transpose(1, 2), u.view(clips, num_tokens, inner), out=pooled[start:stop])

        _run([functools.partial(piece, index) for index in range(len(chunks))])
        ctx.save_for_backward(tokens, tef, g1, b1, w1s, g2s, b2s, queries)
        ctx.hidden, ctx.attention = hidden, attention  # intermediates: plain attributes, no reference cycle
        ctx.config = (clips_per_video, p, seed, eps1, eps2)
        return pooled, cls

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_pooled: torch.Tensor | None, grad_cls: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        tokens, tef, g1, b1, w1s, g2s, b2s, queries = ctx.saved_tensors
        hidden, attention = ctx.hidden, ctx.attention
        clips_per_video, p, seed, eps1, eps2 = ctx.config
        num_clips, num_tokens = tokens.shape[:2]
        width, inner = w1s.size(1), w1s.size(0)
        batch, num_queries = queries.shape[:2]
        device = tokens.device
        if grad_pooled is not None:
            grad_pooled = grad_pooled.contiguous()
        if grad_cls is not None:
            grad_cls = grad_cls.contiguous()
        chunks = _chunks(num_clips, num_tokens)
        parts: list[tuple[torch.Tensor, ...] | None] = [None] * len(chunks)
        # per chunk: [(video, partial gradient of its queries (L, H), of its bias (L,))]
        query_parts: list[list[tuple[int, torch.Tensor, torch.Tensor]]] = [[] for _ in chunks]

        def piece(index: int) -> None:
            start, stop = chunks[index]
            clips = stop - start
            h = hidden[index]
            count = h.size(0)
            mask1, mask2 = chunk_masks(seed, index, count, width, inner, p, device)
            # u = LN2(h) ⊙ mask2 recomputed (the 1 / (1 − p) is inside LN2's scaled weight and bias)
            u, mean2, rstd2 = torch.native_layer_norm(h, [inner], g2s, b2s, eps2)
            if mask2 is not None:
                _drop(u, mask2)
            if grad_pooled is None:
                grad_u = torch.zeros(count, inner, device=device)
            else:
                att = attention[index]  # (n, P, L)
                grad_out = grad_pooled[start:stop]  # (n, L, H)
                u3 = u.view(clips, num_tokens, inner)
                grad_att = torch.bmm(u3, grad_out.transpose(1, 2))  # (n, P, L)
                grad_scores = torch._softmax_backward_data(grad_att, att, 1, torch.float32).view(count, num_queries)
                grad_u = torch.bmm(att, grad_out).view(count, inner)  # through the weighted sum
                for video, first, end in _segments(start, stop, clips_per_video):
                    rows = slice((first - start) * num_tokens, (end - start) * num_tokens)
                    grad_u[rows].addmm_(grad_scores[rows], queries[video])  # through the scores
                    query_parts[index].append(
                        (video, torch.mm(grad_scores[rows].t(), u[rows]), grad_scores[rows].sum(0)))
            if grad_cls is not None:
                grad_u.view(clips, num_tokens, inner)[:, 0] += grad_cls[start:stop]
            if mask2 is not None:
                _drop(grad_u, mask2)
            parts[index] = hidden_backward(grad_u, h, mean2, rstd2, g2s, b2s, tokens, tef, start, stop, eps1, g1, b1,
                                           w1s, mask1)

        _run([functools.partial(piece, index) for index in range(len(chunks))])
        grads = finish_weight_grads(parts, p)  # type: ignore[arg-type]
        grad_queries = grad_bias = None
        if grad_pooled is not None:
            per_video: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(batch)]
            for chunk_parts in query_parts:  # chunk order: the same sums whichever thread ran a chunk
                for video, grad_query, grad_b in chunk_parts:
                    per_video[video].append((grad_query, grad_b))
            grad_queries = queries.new_zeros(batch, num_queries, inner)
            grad_bias = queries.new_zeros(batch, num_queries, 1)
            for video, video_parts in enumerate(per_video):
                if video_parts:
                    grad_queries[video] = _sum([part[0] for part in video_parts])
                    grad_bias[video, :, 0] = _sum([part[1] for part in video_parts])
        return (None, None, None, None, None, None, None, *grads, grad_queries, grad_bias)


def attention_pool(u: torch.Tensor, queries: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The pooling with plain autograd ops: softmax_P(queries·u + bias)-weighted sums of u.

    Args: u (B, T, P, H); queries (B, L, H); bias (B, L, 1). Returns (B, T, L, H)."""
    batch, num_clips, num_tokens, inner = u.shape
    scores = torch.baddbmm(bias, queries, u.reshape(batch, num_clips * num_tokens, inner).transpose(1, 2))
    att = scores.view(batch, queries.size(1), num_clips, num_tokens).softmax(dim=-1)
    return torch.matmul(att.transpose(1, 2), u)


def token_mlp_pool(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool, queries: torch.Tensor,
    bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mlp`` (LayerNorm, Dropout, Linear, ReLU, LayerNorm, Dropout, Linear) up to, not including, its last Linear
    on every token (u, as vtgkit.nn.token_mlp.token_mlp_before_output), pooled over each clip's tokens by the
    queries of the clip's video: :func:`attention_pool` (u, queries, bias), without materialising u.

    Args:
        tokens: (B, T, P, Dv) any float dtype (e.g. the fp16 cache); not differentiated (frozen features).
        tef: (B, T, 2) temporal encoding appended to every token of the clip, or None.
        mlp: the module sequence; its parameters receive gradients when grad mode is on.
        dropout: apply the Dropout modules' p (training) or not (eval).
        queries: (B, L, H) pooling queries; bias (B, L, 1) added to every score of the query (both differentiable).
    Returns:
        pooled (B, T, L, H) and the CLS token's u (B, T, H), float32.
    """
    norm1, _, linear1, _, norm2, _, _ = mlp
    p = _dropout_rate(mlp, dropout)
    batch, num_clips, num_tokens, width = tokens.shape
    if torch.is_autocast_enabled(tokens.device.type):
        # Under autocast the module sequence runs as is (its GEMMs in the autocast dtype); the fused path is fp32.
        u = _plain_before_output(tokens, tef, mlp, p)
        return attention_pool(u, queries, bias), u[:, :, 0]
    seed = int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0
    flat_tef = None if tef is None else tef.float().reshape(-1, tef.size(-1)).contiguous()
    flat_tokens = tokens.detach().reshape(-1, num_tokens, width)
    params = (norm1.weight, norm1.bias, linear1.weight, linear1.bias, norm2.weight, norm2.bias)
    pooled, cls = _TokenMLPPool.apply(flat_tokens, flat_tef, num_clips, p, seed, norm1.eps, norm2.eps, *params,
                                      queries.float().contiguous(), bias.float().contiguous())
    return pooled.view(batch, num_clips, queries.size(1), -1), cls.view(batch, num_clips, -1)

