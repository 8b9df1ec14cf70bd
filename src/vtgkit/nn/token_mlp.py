"""The token MLP LayerNorm → Dropout → Linear → ReLU → LayerNorm → Dropout → Linear over many tokens, in row chunks.

Why: R²-Tuning's ``video_map`` runs on every token of every kept CLIP layer (B·T·50 rows × 770 wide at the official
shapes). As separate autograd ops it materialises and saves several 770-wide fp32 tensors per layer (the fp32 copy
of the fp16 cache, the tef concatenation, the LayerNorm and dropout outputs, the mask), draws the masks with
``bernoulli_`` (the slowest op of the official training step) and streams all of it through DRAM. Here:

* each chunk of rows goes from the fp16 → fp32 copy to the first GEMM while it is still in cache;
* dropout keeps the official distribution (each element kept with probability 1 − p, kept ones scaled by
  1 / (1 − p)); the 1 / (1 − p) scale is folded into the (small) weights instead of a pass over the data, and for
  p = 0.5 the mask is one random bit per element (exact Bernoulli(0.5)), drawn as 64-bit words;
* masks are regenerated in backward from a per-call seed (drawn from torch's default generator, so
  ``torch.manual_seed`` keeps runs reproducible; each chunk has its own generator) instead of being stored; backward
  recomputes the 770-wide side from the fp16 input and saves only the 256-wide hidden activation;
* no gradient is computed for the (frozen) input tokens;
* chunks are independent pieces (own masks, output rows and partial weight gradients, summed in chunk order): with
  two intra-op threads they run two at a time, one per core with one intra-op thread each (vtgkit.nn.core_split),
  instead of splitting every op over the cores with a thread barrier per op; results do not depend on which thread
  ran a chunk.

Training uses :func:`token_mlp_before_output`, which stops before the last Linear: R²-Tuning's spatial pooling
applies that Linear after pooling (exact algebra, ``R2Block.pool_tokens_folded``), on B·T·L rows instead of B·T·P.

The math is the module sequence's; only the split of the weight-gradient sums over chunks changes rounding. The
random stream differs from ``nn.Dropout``'s (it differs between any two implementations anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.core_split import SplitRun, split_available
from vtgkit.nn.fast_linear import fast_linear

ROWS_PER_CHUNK = 4096  # 4096 × 770 fp32 = 12 MiB: the two chunks in flight (one per core, see _run) stay in the
# L3 cache (32 MiB); 8192 took 0.2 GiB more peak memory at the official shapes, 2048 gained nothing
# Row b: bit j of the byte b as an int32 keep mask (−1 keep, 0 drop): one table lookup expands 8 random bits.
_BYTE_BITS = -((torch.arange(256, dtype=torch.int32)[:, None] >> torch.arange(8, dtype=torch.int32)) & 1)
_SEED_STRIDE = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads chunk indices over the seed space


def keep_mask(rows: int, width: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(rows, width) int32 bit mask: all ones (keep) with probability 1 − p, else 0, independently per element.

    ``x.view(torch.int32).bitwise_and_(mask)`` then zeroes the dropped float32 elements exactly, in one pass and
    without the float copy of a bool mask that ``mul_`` makes. p = 0.5 takes one random bit per element from 64-bit
    words (``bernoulli_`` is ~100× slower), expanded 8 bits at a time by a table lookup. Other p compare
    ``torch.rand`` with p.
    """
    count = rows * width
    if p == 0.5:
        words = torch.empty((count + 63) // 64, dtype=torch.int64, device=generator.device)
        words.random_(-(2**63), None, generator=generator)
        index = words.view(torch.uint8)[: (count + 7) // 8].to(torch.int32)
        mask = _BYTE_BITS.to(generator.device).index_select(0, index)
        return mask.view(-1)[:count].view(rows, width)
    return (torch.rand(rows, width, generator=generator, device=generator.device) >= p).to(torch.int32).neg_()


def _drop(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the float32 elements of ``x`` (contiguous) where the int32 ``mask`` is 0, in place."""
    x.view(torch.int32).bitwise_and_(mask)
    return x


def chunk_generator(seed: int, chunk: int, device: torch.device) -> torch.Generator:
    """The generator of chunk ``chunk``'s masks (first layer's, then second's): chunks draw independently."""
    return torch.Generator(device=device).manual_seed((seed + chunk * _SEED_STRIDE) % 2**63)


def _chunks(num_clips: int, tokens_per_clip: int) -> list[tuple[int, int]]:
    step = max(1, ROWS_PER_CHUNK // tokens_per_clip)
    return [(start, min(start + step, num_clips)) for start in range(0, num_clips, step)]


def _chunk_input(tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, width: int) -> torch.Tensor:
    """fp32 (rows, width) input of clips [start, stop): the tokens with the clip's tef appended to every token.
    Args: tokens (C, P, Dv) any float dtype; tef (C, 2) or None."""
    clips, num_tokens = stop - start, tokens.size(1)
    out = torch.empty(clips, num_tokens, width, dtype=torch.float32, device=tokens.device)
    out[..., : tokens.size(2)].copy_(tokens[start:stop])
    if tef is not None:
        out[..., tokens.size(2):].copy_(tef[start:stop, None, :].expand(-1, num_tokens, -1))
    return out.view(clips * num_tokens, width)


def _scaled(p: float, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(w * (1.0 / (1.0 - p)) for w in weights) if p > 0 else weights


def _run(tasks: list[Callable[[], None]]) -> None:
    """Run independent pieces: on two threads with one intra-op thread each when possible (vtgkit.nn.core_split),
    else in order. Each piece writes its own results, so the outcome does not depend on which thread ran it."""
    if len(tasks) > 1 and split_available():
        with SplitRun(tasks):
            pass  # leaving the block runs the pieces and waits for them
    else:
        for task in tasks:
            task()


def _sum(parts: list[torch.Tensor]) -> torch.Tensor:
    """Per-chunk partial sums added in chunk order (the same rounding whichever thread computed them)."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


class _TokenMLPHidden(torch.autograd.Function):
    """u = Dropout(LayerNorm(ReLU(Linear(Dropout(LayerNorm(x)))))): the token MLP without its last Linear.

    The second dropout's 1 / (1 − p) is folded into the second LayerNorm's weight and bias, the first's into W1.
    Chunks are independent pieces (own masks, own rows of the output, own partial weight gradients)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, tokens: torch.Tensor, tef: torch.Tensor | None, p: float, seed: int, eps1: float, eps2: float,
        g1: torch.Tensor, b1: torch.Tensor, w1: torch.Tensor, c1: torch.Tensor, g2: torch.Tensor, b2: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w1s, g2s, b2s = _scaled(p, w1, g2, b2)
        num_clips, num_tokens = tokens.shape[:2]
        width, inner = w1s.size(1), w1s.size(0)
        total = num_clips * num_tokens
        out = torch.empty(total, inner, device=tokens.device)
        mean2, rstd2 = torch.empty(total, 1, device=tokens.device), torch.empty(total, 1, device=tokens.device)
        chunks = _chunks(num_clips, num_tokens)
        hidden: list[torch.Tensor | None] = [None] * len(chunks)

        def piece(index: int) -> None:
            start, stop = chunks[index]
            rows = slice(start * num_tokens, stop * num_tokens)
            generator = chunk_generator(seed, index, tokens.device) if p > 0 else None
            x = F.layer_norm(_chunk_input(tokens, tef, start, stop, width), [width], g1, b1, eps1)
            if generator is not None:
                _drop(x, keep_mask(x.size(0), width, p, generator))
            h = hidden[index] = fast_linear(x, w1s, c1, relu=True)
            # LayerNorm written straight into the output rows; its statistics are kept for backward.
            torch.ops.aten.native_layer_norm.out(h, [inner], g2s, b2s, eps2, out0=out[rows], out1=mean2[rows],
                                                 out2=rstd2[rows])
            if generator is not None:
                _drop(out[rows], keep_mask(h.size(0), inner, p, generator))

        _run([functools.partial(piece, index) for index in range(len(chunks))])
        ctx.save_for_backward(tokens, tef, mean2, rstd2, g1, b1, w1s, g2s, b2s)
        ctx.hidden = hidden  # intermediates (not inputs or outputs): plain attributes, no reference cycle
        ctx.config = (p, seed, eps1, eps2)
        out = out.view(num_clips, num_tokens, inner)
        # The first token (CLS) as a separate output: its gradient is added to the chunk's rows in backward instead
        # of autograd's zero-filled full-size select-backward buffer and extra add.
        return out, out[:, 0].clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: torch.Tensor | None, grad_cls: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        tokens, tef, mean2, rstd2, g1, b1, w1s, g2s, b2s = ctx.saved_tensors
        hidden = ctx.hidden
        p, seed, eps1, eps2 = ctx.config
        num_clips, num_tokens = tokens.shape[:2]
        width, inner = w1s.size(1), w1s.size(0)
        if grad_out is not None:
            grad_out = grad_out.reshape(num_clips * num_tokens, inner)
        # grad @ W as a Linear with the transposed weight: oneDNN's GEMM (fast_linear) beats MKL's here
        w1s_t = w1s.t().contiguous()
        chunks = _chunks(num_clips, num_tokens)
        # per chunk: the gradients of (g1, b1, w1, c1, g2s, b2s)
        parts: list[tuple[torch.Tensor, ...] | None] = [None] * len(chunks)

        def piece(index: int) -> None:
            start, stop = chunks[index]
            rows = slice(start * num_tokens, stop * num_tokens)
            h = hidden[index]
            # Masks in forward's order: the first layer's, then the second's.
            generator = chunk_generator(seed, index, tokens.device) if p > 0 else None
            mask1 = keep_mask(h.size(0), width, p, generator) if generator is not None else None
            mask2 = keep_mask(h.size(0), inner, p, generator) if generator is not None else None
            # u = LN2(h) ⊙ mask2, the 1 / (1 − p) inside LN2's scaled weight and bias; masking makes a new tensor
            if grad_out is None:
                grad = torch.zeros(h.size(0), inner, device=h.device)
            elif mask2 is not None:
                grad = torch.bitwise_and(grad_out[rows].view(torch.int32), mask2).view(torch.float32)
            else:
                grad = grad_out[rows].clone() if grad_cls is not None else grad_out[rows]
            if grad_cls is not None:
                extra = grad_cls[start:stop].contiguous()
                if mask2 is not None:
                    first_mask = mask2.view(stop - start, num_tokens, inner)[:, 0]
                    extra = torch.bitwise_and(extra.view(torch.int32), first_mask).view(torch.float32)
                grad.view(stop - start, num_tokens, inner)[:, 0] += extra
            grad_h, grad_g2, grad_b2 = torch.ops.aten.native_layer_norm_backward(
                grad, h, [inner], mean2[rows], rstd2[rows], g2s, b2s, [True, True, True])
            grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)  # ReLU (h is its output)
            # h = ReLU((LN1(x) ⊙ mask1) · W1sᵀ + c1); LN1 recomputed from the fp16 input
            x = _chunk_input(tokens, tef, start, stop, width)
            dropped1, mean1, rstd1 = torch.native_layer_norm(x, [width], g1, b1, eps1)
            if mask1 is not None:
                _drop(dropped1, mask1)
            grad_w1 = torch.mm(grad_h.t(), dropped1)
            grad_c1 = grad_h.sum(0)
            grad_norm1 = fast_linear(grad_h, w1s_t, None)
            if mask1 is not None:
                _drop(grad_norm1, mask1)
            _, grad_g1, grad_b1 = torch.ops.aten.native_layer_norm_backward(
                grad_norm1, x, [width], mean1, rstd1, g1, b1, [False, True, True])
            parts[index] = (grad_g1, grad_b1, grad_w1, grad_c1, grad_g2, grad_b2)

        _run([functools.partial(piece, index) for index in range(len(chunks))])
        sums = (_sum(list(column)) for column in zip(*parts, strict=True))
        grad_g1, grad_b1, grad_w1, grad_c1, grad_g2, grad_b2 = sums
        if p > 0:  # W_s = W / (1 − p): dL/dW = dL/dW_s / (1 − p); likewise LN2's weight and bias
            for grad_param in (grad_w1, grad_g2, grad_b2):
                grad_param.mul_(1.0 / (1.0 - p))
        return (None, None, None, None, None, None, grad_g1, grad_b1, grad_w1, grad_c1, grad_g2, grad_b2)


def _plain_before_output(tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, p: float) -> torch.Tensor:
    """The module sequence up to the last Linear, on the concatenated input (autograd and autocast as usual)."""
    norm1, _, linear1, _, norm2, _, _ = mlp
    x = tokens.float()
    if tef is not None:
        x = torch.cat((x, tef.float()[..., None, :].expand(*x.shape[:-1], tef.size(-1))), dim=-1)
    x = linear1(F.dropout(norm1(x), p, training=p > 0)).relu()
    return F.dropout(norm2(x), p, training=p > 0)


def _dropout_rate(mlp: nn.Sequential, dropout: bool) -> float:
    drop1, drop2 = mlp[1], mlp[5]
    if drop1.p != drop2.p:
        raise ValueError(f"token_mlp expects one dropout rate, got {drop1.p} and {drop2.p}")
    p = float(drop1.p) if dropout else 0.0
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    return p


def token_mlp_before_output(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mlp`` = (LayerNorm, Dropout, Linear, ReLU, LayerNorm, Dropout, Linear) on every token, up to (not
    including) the last Linear: ``mlp[6](u)`` is the MLP's output.

    Args:
        tokens: (..., P, Dv) any float dtype (e.g. the fp16 cache); not differentiated (frozen features).
        tef: (..., 2) per-clip temporal encoding appended to every token of the clip, or None.
        mlp: the module sequence; its parameters receive gradients when grad mode is on.
        dropout: apply the Dropout modules' p (training) or not (eval).
    Returns:
        u (..., P, H) float32 (the second dropout's output), and its first token u[..., 0, :] (..., H) (use this
        one rather than indexing ``u``: it is cheaper in backward).
    """
    norm1, _, linear1, _, norm2, _, _ = mlp
    p = _dropout_rate(mlp, dropout)
    lead, (num_tokens, width) = tokens.shape[:-2], tokens.shape[-2:]
    if torch.is_autocast_enabled(tokens.device.type):
        # Under autocast the module sequence runs as is (its GEMMs in the autocast dtype); the fused path is fp32.
        u = _plain_before_output(tokens, tef, mlp, p)
        return u, u[..., 0, :]
    seed = int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0
    flat_tef = None if tef is None else tef.float().reshape(-1, tef.size(-1)).contiguous()
    flat_tokens = tokens.detach().reshape(-1, num_tokens, width)
    params = (norm1.weight, norm1.bias, linear1.weight, linear1.bias, norm2.weight, norm2.bias)
    u, first = _TokenMLPHidden.apply(flat_tokens, flat_tef, p, seed, norm1.eps, norm2.eps, *params)
    return u.view(*lead, num_tokens, u.size(-1)), first.view(*lead, u.size(-1))


def token_mlp(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the whole ``mlp`` (see :func:`token_mlp_before_output`, same arguments) to every token.

    Returns:
        out (..., P, D) float32, and its first token out[..., 0, :] (..., D).
    """
    u, first = token_mlp_before_output(tokens, tef, mlp, dropout)
    return mlp[-1](u), mlp[-1](first)
