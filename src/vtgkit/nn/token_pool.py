"""The token MLP up to its last Linear (vtgkit.nn.token_mlp) fused with R²-Tuning's query-modulated spatial pooling.

Why: the pooling reads the token MLP's output u (B·T·P × 256 fp32, 30 MB per layer at the official shapes) from
DRAM several times (scores, weighted sum; in backward the two gradient contributions and their sum) and autograd
keeps u and the attention for backward. Here each row chunk of the token MLP pools its own clips while u is still
in cache, right after the second LayerNorm and dropout:

    scores = queries[b]·u_p + bias[b]  (per query, per token p of a clip of video b)
    att = softmax over the P tokens of the clip;  pooled = Σ_p att_p u_p  (per clip, per query)

then applies the MLP's last Linear W2 to the pooled rows (exact: each softmax row sums to 1, so Σ_p att_p v_p =
W2 pooled + b2 for v = W2 u + b2), adds the query features q and takes the max over the L queries:

    best = max_L(W2 pooled + b2 + q[b])  (per clip; masked queries left out)

It returns only best (B·T × 256) and the CLS token's u. u is never stored: backward recomputes it per chunk from
the saved hidden activation (LayerNorm-2 and the regenerated dropout mask), takes the max's backward (the gradient
split over tied queries, as ``amax`` does), the last Linear's and the softmax's backward in-chunk (the pooled rows
and the attention are saved), and continues into the token MLP's backward for that chunk. The gradients of W2, b2,
the queries, bias and q are summed per chunk in chunk order, so two threads give the one-thread bits
(vtgkit.nn.core_split, as in vtgkit.nn.token_mlp). The (B, T, L, 256) tensors between the pooling and the max
(12 MB each at the official shapes: the Linear's output, + q, the max's mask and their gradients) never reach DRAM.

A chunk covers a range of clips of the flattened B·T and may span two videos: each video's segment of the chunk is
scored against that video's queries in one GEMM.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from vtgkit.nn.core_split import BackgroundTasks, SplitRun, split_available
from vtgkit.nn.fast_linear import fast_linear
from vtgkit.nn.max_linear import linear_max_backward
from vtgkit.nn.token_mlp import (
    _chunks,
    _dropout_rate,
    _plain_before_output,
    _run,
    _scaled,
    _sum,
    chunk_masks,
    drop_masked,
    finish_weight_grads,
    hidden_backward,
    hidden_output,
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


class _DeferredState:
    """What the pooling nodes and the collecting node share (no tensor with a grad_fn, so no reference cycle)."""

    def __init__(self, p: float) -> None:
        self.p = p
        self.tasks = BackgroundTasks()
        self.parts: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}  # (call, chunk) → its weight gradients
        self.calls = 0


class _CollectGradients(torch.autograd.Function):
    """Identity on the token MLP's first five parameters (aliases the pooling nodes take instead of them); its
    backward, which autograd runs after every pooling node's, waits for the deferred chunk work and returns the
    parameters' gradients, summed in (call, chunk) order."""

    @staticmethod
    def forward(ctx: Any, state: _DeferredState, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        ctx.state = state
        ctx.set_materialize_grads(False)
        return tuple(param.view_as(param) for param in params)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        state: _DeferredState = ctx.state
        state.tasks.finish()
        if not state.parts:
            return (None, *grads)
        sums = finish_weight_grads([state.parts[key] for key in sorted(state.parts)], state.p)
        state.parts.clear()
        return (None, *(total if grad is None else total + grad for total, grad in zip(sums, grads, strict=True)))


class DeferredTokenMLPGradients:
    """The token MLP's weight gradients, deferred across the :func:`token_mlp_pool` calls of one forward.

    Why: each pooling node's backward has a short part that autograd needs at once (the gradients of the queries,
    bias and q, which flow on into the rest of the graph) and a long one that only feeds the MLP's own weight
    gradients (per chunk: LayerNorm-2's and ReLU's backward, the input pass and the two rows × 770 weight-side
    products, vtgkit.nn.token_mlp.hidden_backward: ~3/4 of the chunk's backward). With this object the long parts run on
    the helper thread (vtgkit.nn.core_split.BackgroundTasks) while autograd goes on with the recurrent decoder's
    backward and the next pooling node's short parts in the calling thread, instead of the two cores waiting for
    each other around every node. The parameters enter the graph through one collecting node created here, before
    the pooling calls; autograd runs its backward after all of theirs, and it waits for the chunk work and returns
    the gradients, summed in (call, chunk) order whichever thread ran a chunk. The sums equal the undeferred path's
    up to that order of addition. Create one per forward, before the calls, and pass it to each.
    """

    def __init__(self, mlp: nn.Sequential, dropout: bool) -> None:
        norm1, _, linear1, _, norm2, _, _ = mlp
        self.state = _DeferredState(_dropout_rate(mlp, dropout))
        self.params: tuple[torch.Tensor, ...] = _CollectGradients.apply(
            self.state, norm1.weight, norm1.bias, linear1.weight, linear1.bias, norm2.weight, norm2.bias)


class _PoolForward:
    """One pooling call's forward chunk work: its pieces (independent, each writes its own results) and the results
    backward needs. Runs inside :class:`_TokenMLPPool`'s forward, or ahead of it (:class:`PoolingRun`)."""

    def __init__(
        self, tokens: torch.Tensor, tef: torch.Tensor | None, clips_per_video: int, p: float, seed: int, eps1: float,
        eps2: float, query_mask: torch.Tensor | None, g1: torch.Tensor, b1: torch.Tensor, w1: torch.Tensor,
        c1: torch.Tensor, g2: torch.Tensor, b2: torch.Tensor, queries: torch.Tensor, bias: torch.Tensor,
        w2: torch.Tensor, c2: torch.Tensor, q: torch.Tensor,
    ) -> None:
        with torch.no_grad():
            self.w1s, self.g2s, self.b2s = _scaled(p, w1, g2, b2)
        self.inputs = (tokens, tef, clips_per_video, p, seed, eps1, eps2, query_mask, g1, b1, c1, queries, w2, c2, q)
        num_clips = tokens.size(0)
        self.best = torch.empty(num_clips, w2.size(0), device=tokens.device)
        self.cls = torch.empty(num_clips, self.w1s.size(0), device=tokens.device)
        self.bias_rows = bias.detach()[..., 0].contiguous()  # (B, L)
        self.chunks = _chunks(num_clips, tokens.size(1))
        # per chunk, for backward: the hidden activation, the attention, the pooled rows, where the max was taken
        self.hidden: list[torch.Tensor | None] = [None] * len(self.chunks)
        self.attention: list[torch.Tensor | None] = [None] * len(self.chunks)
        self.pooled: list[torch.Tensor | None] = [None] * len(self.chunks)
        self.maxima: list[torch.Tensor | None] = [None] * len(self.chunks)

    def pieces(self) -> list[functools.partial]:
        return [functools.partial(self.piece, index) for index in range(len(self.chunks))]

    @torch.no_grad()
    def piece(self, index: int) -> None:
        tokens, tef, clips_per_video, p, seed, eps1, eps2, query_mask, g1, b1, c1, queries, w2, c2, q = self.inputs
        w1s, g2s, b2s = self.w1s, self.g2s, self.b2s
        num_tokens = tokens.size(1)
        width, inner = w1s.size(1), w1s.size(0)
        num_queries = queries.size(1)
        device = tokens.device
        start, stop = self.chunks[index]
        clips = stop - start
        count = clips * num_tokens
        segments = _segments(start, stop, clips_per_video)
        mask1, mask2 = chunk_masks(seed, index, count, width, inner, p, device)
        x = input_rows(tokens, tef, start, stop, g1, b1, eps1, mask1)
        h = self.hidden[index] = fast_linear(x, w1s, c1, relu=True)
        u = hidden_output(h, g2s, b2s, eps2, mask2)[0]
        self.cls[start:stop] = u.view(clips, num_tokens, inner)[:, 0]
        scores = torch.empty(count, num_queries, device=device)
        for video, first, end in segments:
            rows = slice((first - start) * num_tokens, (end - start) * num_tokens)
            torch.addmm(self.bias_rows[video], u[rows], queries[video].t(), out=scores[rows])  # (n·P, L)
        att = self.attention[index] = scores.view(clips, num_tokens, num_queries).softmax(dim=1)  # over P
        pooled = self.pooled[index] = torch.bmm(att.transpose(1, 2), u.view(clips, num_tokens, inner))
        # the last Linear, + q, the max over the L queries: while the chunk's pooled rows are in cache
        z = fast_linear(pooled.view(clips * num_queries, inner), w2, c2).view(clips, num_queries, -1)
        for video, first, end in segments:
            part = z[first - start:end - start]
            part += q[video]
            if query_mask is not None:
                part.masked_fill_(~query_mask[video, :, None], float("-inf"))
        torch.amax(z, dim=1, out=self.best[start:stop])
        self.maxima[index] = z == self.best[start:stop, None]  # every query tied for the max shares its gradient


class _TokenMLPPool(torch.autograd.Function):
    """(best (C, H), cls (C, H)) from the tokens (C, P, Dv) of C = B·T clips, see the module docstring. ``work`` is
    the call's :class:`_PoolForward` when its pieces already ran (:class:`PoolingRun`), else None."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, work: _PoolForward | None, state: _DeferredState | None, tokens: torch.Tensor,
        tef: torch.Tensor | None, clips_per_video: int, p: float, seed: int, eps1: float, eps2: float,
        query_mask: torch.Tensor | None, g1: torch.Tensor, b1: torch.Tensor, w1: torch.Tensor, c1: torch.Tensor,
        g2: torch.Tensor, b2: torch.Tensor, queries: torch.Tensor, bias: torch.Tensor, w2: torch.Tensor,
        c2: torch.Tensor, q: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if work is None:
            work = _PoolForward(tokens, tef, clips_per_video, p, seed, eps1, eps2, query_mask, g1, b1, w1, c1, g2, b2,
                                queries, bias, w2, c2, q)
            _run(work.pieces())
        ctx.save_for_backward(tokens, tef, query_mask, g1, b1, work.w1s, work.g2s, work.b2s, queries, w2)
        # intermediates: plain attributes, no reference cycle
        ctx.hidden, ctx.attention, ctx.pooled, ctx.maxima = work.hidden, work.attention, work.pooled, work.maxima
        ctx.config = (clips_per_video, p, seed, eps1, eps2)
        ctx.state = state
        if state is not None:
            ctx.call = state.calls
            state.calls += 1
        return work.best, work.cls

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_best: torch.Tensor | None, grad_cls: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        tokens, tef, query_mask, g1, b1, w1s, g2s, b2s, queries, w2 = ctx.saved_tensors
        hidden, attention, pooled_rows, maxima = ctx.hidden, ctx.attention, ctx.pooled, ctx.maxima
        state: _DeferredState | None = ctx.state
        clips_per_video, p, seed, eps1, eps2 = ctx.config
        num_clips, num_tokens = tokens.shape[:2]
        width, inner = w1s.size(1), w1s.size(0)
        batch, num_queries = queries.shape[:2]
        device = tokens.device
        if grad_best is not None:
            grad_best = grad_best.contiguous()
        if grad_cls is not None:
            grad_cls = grad_cls.contiguous()
        chunks = _chunks(num_clips, num_tokens)
        parts: list[tuple[torch.Tensor, ...] | None] = [None] * len(chunks)
        # per chunk: (W2, c2) partial gradients, and per video segment (video, partial gradient of its pooling
        # queries (L, H), of its bias (L,), of its q (L, H))
        linear_parts: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(chunks)
        query_parts: list[list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in chunks]

        def piece(index: int) -> None:
            start, stop = chunks[index]
            clips = stop - start
            h = hidden[index]
            count = h.size(0)
            segments = _segments(start, stop, clips_per_video)
            mask1, mask2 = chunk_masks(seed, index, count, width, inner, p, device)
            # u = LN2(h) ⊙ mask2 recomputed (the 1 / (1 − p) is inside LN2's scaled weight and bias)
            u, mean2, rstd2 = hidden_output(h, g2s, b2s, eps2, mask2)
            if grad_best is None:
                grad_u = torch.zeros(count, inner, device=device)
            else:
                # the max over L: the gradient split evenly over tied queries (amax's backward); masked queries get
                # none (masked_fill's backward)
                tied = maxima[index]
                grad_z = (grad_best[start:stop, None] / tied.sum(1, keepdim=True)) * tied  # (n, L, H)
                grad_q = []
                for video, first, end in segments:
                    part = grad_z[first - start:end - start]
                    if query_mask is not None:
                        part.masked_fill_(~query_mask[video, :, None], 0.0)
                    grad_q.append(part.sum(0))
                # through the last Linear: grad_z has one non-zero per clip and channel (vtgkit.nn.max_linear)
                grad_out, grad_w2_part = linear_max_backward(grad_z, pooled_rows[index], w2)
                linear_parts[index] = (grad_w2_part, grad_z.view(clips * num_queries, -1).sum(0))
                att = attention[index]  # (n, P, L)
                u3 = u.view(clips, num_tokens, inner)
                grad_att = torch.bmm(u3, grad_out.transpose(1, 2))  # (n, P, L)
                grad_scores = torch._softmax_backward_data(grad_att, att, 1, torch.float32).view(count, num_queries)
                grad_u = torch.bmm(att, grad_out).view(count, inner)  # through the weighted sum
                for (video, first, end), grad_q_video in zip(segments, grad_q, strict=True):
                    rows = slice((first - start) * num_tokens, (end - start) * num_tokens)
                    grad_u[rows].addmm_(grad_scores[rows], queries[video])  # through the scores
                    query_parts[index].append(
                        (video, torch.mm(grad_scores[rows].t(), u[rows]), grad_scores[rows].sum(0), grad_q_video))
            if grad_cls is not None:
                grad_u.view(clips, num_tokens, inner)[:, 0] += grad_cls[start:stop]
            if mask2 is not None:
                drop_masked(grad_u, mask2)
            weight_grads = functools.partial(hidden_backward, grad_u, h, mean2, rstd2, g2s, b2s, tokens, tef, start,
                                             stop, eps1, g1, b1, w1s, mask1)
            if state is None:
                parts[index] = weight_grads()
            else:
                state.tasks.submit(functools.partial(_store, state.parts, (ctx.call, index), weight_grads))

        pieces = [functools.partial(piece, index) for index in range(len(chunks))]
        if state is not None and state.tasks.in_background():
            for run_piece in pieces:  # the helper thread is on the deferred halves meanwhile
                run_piece()
        else:
            _run(pieces)
        # deferred: the collecting node returns the token MLP's weight gradients (DeferredTokenMLPGradients)
        grads = (None,) * 6 if state is not None else finish_weight_grads(parts, p)  # type: ignore[arg-type]
        grad_queries = grad_bias = grad_w2 = grad_c2 = grad_q = None
        if grad_best is not None:
            grad_w2 = _sum([part[0] for part in linear_parts])  # type: ignore[index]
            grad_c2 = _sum([part[1] for part in linear_parts])  # type: ignore[index]
            per_video: list[list[tuple[torch.Tensor, ...]]] = [[] for _ in range(batch)]
            for chunk_parts in query_parts:  # chunk order: the same sums whichever thread ran a chunk
                for video, *video_grads in chunk_parts:
                    per_video[video].append(tuple(video_grads))
            grad_queries = queries.new_zeros(batch, num_queries, inner)
            grad_bias = queries.new_zeros(batch, num_queries, 1)
            grad_q = queries.new_zeros(batch, num_queries, w2.size(0))
            for video, video_parts in enumerate(per_video):
                if video_parts:
                    grad_queries[video] = _sum([part[0] for part in video_parts])
                    grad_bias[video, :, 0] = _sum([part[1] for part in video_parts])
                    grad_q[video] = _sum([part[2] for part in video_parts])
        return (None, None, None, None, None, None, None, None, None, None, *grads, grad_queries, grad_bias, grad_w2,
                grad_c2, grad_q)


def _store(results: dict, key: tuple[int, int], compute: functools.partial) -> None:
    results[key] = compute()


def attention_pool(u: torch.Tensor, queries: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The pooling with plain autograd ops: softmax_P(queries·u + bias)-weighted sums of u.

    Args: u (B, T, P, H); queries (B, L, H); bias (B, L, 1). Returns (B, T, L, H)."""
    batch, num_clips, num_tokens, inner = u.shape
    scores = torch.baddbmm(bias, queries, u.reshape(batch, num_clips * num_tokens, inner).transpose(1, 2))
    att = scores.view(batch, queries.size(1), num_clips, num_tokens).softmax(dim=-1)
    return torch.matmul(att.transpose(1, 2), u)


def max_over_queries(
    pooled: torch.Tensor, linear: nn.Linear, q: torch.Tensor, query_mask: torch.Tensor | None
) -> torch.Tensor:
    """max over the L queries of linear(pooled) + q, with plain autograd ops; queries where ``query_mask`` is 0 are
    left out. Args: pooled (B, T, L, H); q (B, L, D); query_mask (B, L) or None. Returns (B, T, D)."""
    z = linear(pooled) + q[:, None]
    if query_mask is not None:
        z = z.masked_fill(query_mask[:, None, :, None] == 0, float("-inf"))
    return z.amax(dim=2)


def token_mlp_pool(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool, queries: torch.Tensor,
    bias: torch.Tensor, q: torch.Tensor, query_mask: torch.Tensor | None = None,
    deferred: DeferredTokenMLPGradients | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mlp`` (LayerNorm, Dropout, Linear, ReLU, LayerNorm, Dropout, Linear) up to, not including, its last Linear
    on every token (u, as vtgkit.nn.token_mlp.token_mlp_before_output), pooled over each clip's tokens by the
    queries of the clip's video, then through the last Linear with q added and the max over the queries taken:
    ``max_over_queries(attention_pool(u, queries, bias), mlp[-1], q, query_mask)``, without materialising u.

    Args:
        tokens: (B, T, P, Dv) any float dtype (e.g. the fp16 cache); not differentiated (frozen features).
        tef: (B, T, 2) temporal encoding appended to every token of the clip, or None.
        mlp: the module sequence; its parameters receive gradients when grad mode is on.
        dropout: apply the Dropout modules' p (training) or not (eval).
        queries: (B, L, H) pooling queries; bias (B, L, 1) added to every score of the query.
        q: (B, L, D) added to every query's pooled row before the max; query_mask (B, L) 1/0 or None (all L
            take part). queries, bias and q are differentiable.
        deferred: the forward's :class:`DeferredTokenMLPGradients` of ``mlp`` (same dropout), or None to compute the
            MLP's weight gradients within this call's backward.
    Returns:
        the max (B, T, D) and the CLS token's u (B, T, H), float32.
    """
    call = _PoolCall(tokens, tef, mlp, dropout, queries, bias, q, query_mask, deferred)
    return call.plain() if call.args is None else call.apply(None)


class _PoolCall:
    """The arguments of one :func:`token_mlp_pool` call as :class:`_TokenMLPPool` takes them (its dropout seed drawn
    here, in call order), or ``args`` None under autocast (the plain module sequence runs)."""

    def __init__(
        self, tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool, queries: torch.Tensor,
        bias: torch.Tensor, q: torch.Tensor, query_mask: torch.Tensor | None,
        deferred: DeferredTokenMLPGradients | None,
    ) -> None:
        norm1, _, linear1, _, norm2, _, linear2 = mlp
        self.p = p = _dropout_rate(mlp, dropout)
        self.shape = tokens.shape[:2]
        self.plain_inputs = (tokens, tef, mlp, queries, bias, q, query_mask)
        self.args: tuple | None = None
        if torch.is_autocast_enabled(tokens.device.type):
            return
        if deferred is not None and deferred.state.p != p:
            raise ValueError(f"deferred gradients were set up for dropout {deferred.state.p}, this call uses {p}")
        batch, num_clips, num_tokens, width = tokens.shape
        seed = int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0
        flat_tef = None if tef is None else tef.detach().float().reshape(-1, tef.size(-1)).contiguous()
        flat_tokens = tokens.detach().reshape(-1, num_tokens, width)
        keep = None if query_mask is None else (query_mask != 0).contiguous()
        if deferred is None:
            params = (norm1.weight, norm1.bias, linear1.weight, linear1.bias, norm2.weight, norm2.bias)
        else:
            params = deferred.params
        self.state = None if deferred is None else deferred.state
        # _PoolForward's arguments (and _TokenMLPPool's after work and state)
        self.args = (flat_tokens, flat_tef, num_clips, p, seed, norm1.eps, norm2.eps, keep, *params,
                     queries.float().contiguous(), bias.float().contiguous(), linear2.weight, linear2.bias,
                     q.float().contiguous())

    def plain(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Under autocast the module sequence runs as is (its GEMMs in the autocast dtype); the fused path is fp32.
        tokens, tef, mlp, queries, bias, q, query_mask = self.plain_inputs
        u = _plain_before_output(tokens, tef, mlp, self.p)
        return max_over_queries(attention_pool(u, queries, bias), mlp[-1], q, query_mask), u[:, :, 0]

    def forward_work(self) -> _PoolForward:
        """The call's forward pieces, to run ahead of :meth:`apply`."""
        assert self.args is not None
        return _PoolForward(*self.args)

    def apply(self, work: _PoolForward | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.args is not None
        best, cls = _TokenMLPPool.apply(work, self.state, *self.args)
        batch, num_clips = self.shape
        return best.view(batch, num_clips, -1), cls.view(batch, num_clips, -1)


class PoolingRun:
    """Several :func:`token_mlp_pool` calls (R²-Tuning's K layers) whose chunk work runs as one stream of pieces.

    Why: run call by call, each call's pieces end with one core idle while the other finishes the last chunk, and
    the work between calls (R²'s recurrent decoder step on the pooled layer) runs while nothing else does. Here
    all calls' pieces run in call order on the caller and the helper thread (vtgkit.nn.core_split.SplitRun, one
    intra-op thread each) from the moment the block is entered; :meth:`result` waits for one call's pieces (running
    pending ones meanwhile) and returns its outputs with their autograd node, so the caller works on call k while
    the helper goes on with call k + 1's chunks. Each call's dropout seed is drawn when the run is created, in call
    order. Results equal :func:`token_mlp_pool`'s for the same seeds; without the split (one thread, autograd-free
    helper unavailable) each call's pieces run when its result is asked for.

    Args: calls, each the keyword arguments of :func:`token_mlp_pool`.
    """

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self._calls = [_PoolCall(**call) for call in calls]
        self._work: list[_PoolForward | None] = []
        self._ranges: list[range] = []
        self._split: SplitRun | None = None

    def __enter__(self) -> PoolingRun:
        pieces: list[functools.partial] = []
        for call in self._calls:
            work = None if call.args is None else call.forward_work()
            self._work.append(work)
            new = [] if work is None else work.pieces()
            self._ranges.append(range(len(pieces), len(pieces) + len(new)))
            pieces.extend(new)
        self._pieces = pieces
        with torch.no_grad():
            available = len(pieces) > 1 and split_available()
        if available:
            self._split = SplitRun(pieces)
            self._split.__enter__()
        return self

    def result(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Call ``index``'s (max over the queries (B, T, D), CLS token's u (B, T, H))."""
        call, work = self._calls[index], self._work[index]
        if work is None:
            return call.plain()
        for piece in self._ranges[index]:
            if self._split is not None:
                self._split.wait(piece)
            else:
                self._pieces[piece]()
        return call.apply(work)

    def __exit__(self, *exc: object) -> None:
        if self._split is not None:
            self._split.__exit__(*exc)
            self._split = None
