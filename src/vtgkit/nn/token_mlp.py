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
* no gradient is computed for the (frozen) input tokens, nor for LayerNorm-1's input: its weight and bias
  gradients come from the two weight-side GEMMs of backward (:func:`hidden_backward`), without the rows × 770
  input-gradient GEMM and its mask and LayerNorm-backward passes;
* chunks are independent pieces (own masks, output rows and partial weight gradients, summed in chunk order): with
  two intra-op threads they run two at a time, one per core with one intra-op thread each (vtgkit.nn.core_split),
  instead of splitting every op over the cores with a thread barrier per op; results do not depend on which thread
  ran a chunk.

Training uses :func:`token_mlp_before_output`, which stops before the last Linear: R²-Tuning's spatial pooling
applies that Linear after pooling (exact algebra, ``R2Block.pool_tokens_folded``), on B·T·L rows instead of B·T·P.
vtgkit.nn.token_pool runs the same chunks with the pooling inside (the row helpers below are shared).

The math is the module sequence's; only the split of the weight-gradient sums over chunks changes rounding. The
random stream differs from ``nn.Dropout``'s (it differs between any two implementations anyway).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn import fused_rows
from vtgkit.nn.core_split import SplitRun, split_available
from vtgkit.nn.fast_linear import fast_linear

ROWS_PER_CHUNK = 4096  # 4096 × 770 fp32 = 12 MiB: the two chunks in flight (one per core, see _run) stay in the
# L3 cache (32 MiB); 8192 took 0.2 GiB more peak memory at the official shapes, 2048 gained nothing
# Row b: bit j of the byte b as an int32 keep mask (−1 keep, 0 drop): one table lookup expands 8 random bits.
_BYTE_BITS = -((torch.arange(256, dtype=torch.int32)[:, None] >> torch.arange(8, dtype=torch.int32)) & 1)
_ONE_BITS = 0x3F800000  # float32 1.0: (keep mask & this) viewed as float32 is the 0/1 keep indicator
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
    """Clip ranges of at most ~ROWS_PER_CHUNK rows, in an even number of equal parts when there are several: the
    pieces run two at a time (one per core), and 7.4 chunks' worth of work cut as 7 full chunks and a small one
    leaves one core idle for most of a chunk (the official shapes: 600 clips × 50 tokens → 8 chunks of 75 clips)."""
    count = -(-num_clips * tokens_per_clip // ROWS_PER_CHUNK)
    if count > 1 and count % 2:
        count += 1
    step = min(max(1, -(-num_clips // max(count, 1))), max(1, ROWS_PER_CHUNK // tokens_per_clip))
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


def _use_fused_rows(device: torch.device) -> bool:
    """Whether the input pass runs as one numba kernel per chunk (vtgkit.nn.fused_rows: CPU tensors only)."""
    if device.type != "cpu":
        return False
    if not fused_rows.available():
        _warn_no_numba()
        return False
    return True


@functools.cache
def _warn_no_numba() -> None:
    warnings.warn("numba is not installed: the token MLP's input pass runs as separate torch ops (slower); "
                  "`pip install numba` restores the fused pass", RuntimeWarning, stacklevel=4)


def _is_mask_bytes(mask: torch.Tensor | None) -> bool:
    """A p = 0.5 first-layer mask kept as its random bytes (read by the fused kernels) rather than an int32 mask."""
    return mask is not None and mask.dtype == torch.uint8


def input_rows(
    tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, g1: torch.Tensor, b1: torch.Tensor,
    eps1: float, mask1: torch.Tensor | None,
) -> torch.Tensor:
    """The input pass of clips [start, stop): fp32 copy + tef, LayerNorm-1 (weight ``g1``, bias ``b1``), dropout
    (``mask1``: an int32 mask, applied in place, or the random bytes of a p = 0.5 mask, read by the fused kernel).
    Returns (rows, width) float32."""
    if _is_mask_bytes(mask1) or (mask1 is None and _use_fused_rows(tokens.device)):
        return fused_rows.normalize_drop_rows(tokens, tef, start, stop, g1, b1, eps1, mask1)[0]
    width = g1.size(0)
    out = F.layer_norm(_chunk_input(tokens, tef, start, stop, width), [width], g1, b1, eps1)
    if mask1 is not None:
        _drop(out, mask1)
    return out


def normalized_rows(
    tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, width: int, eps1: float,
    mask1: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`input_rows` without LayerNorm-1's affine (x̂ ⊙ D), for backward."""
    # unit weight and zero bias rather than None: LayerNorm's kernel with affine is the faster one on CPU
    ones = torch.ones(width, device=tokens.device)
    return input_rows(tokens, tef, start, stop, ones, torch.zeros_like(ones), eps1, mask1)


def chunk_masks(
    seed: int, index: int, rows: int, width: int, inner: int, p: float, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Chunk ``index``'s dropout masks in draw order (the first layer's, then the second's), or (None, None)."""
    if p <= 0:
        return None, None
    generator = chunk_generator(seed, index, device)
    if p == 0.5 and _use_fused_rows(device):
        # the masks as their random bytes (the same draws as keep_mask's): the fused kernels read the bits
        return fused_rows.draw_mask_bytes(rows, width, generator), fused_rows.draw_mask_bytes(rows, inner, generator)
    return keep_mask(rows, width, p, generator), keep_mask(rows, inner, p, generator)


def drop_masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero, in place, the dropped elements of ``x`` (rows, W) contiguous fp32: ``mask`` is an int32 keep mask or the
    random bytes of a p = 0.5 mask (chunk_masks). Returns ``x``."""
    return fused_rows.drop_rows(x, mask) if _is_mask_bytes(mask) else _drop(x, mask)


def hidden_output(
    h: torch.Tensor, g2s: torch.Tensor, b2s: torch.Tensor, eps2: float, mask2: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """u = LayerNorm-2(h) ⊙ mask2 (rows, H) with LayerNorm's mean and rstd (rows, 1). Mask bytes: one numba pass
    per row (vtgkit.nn.fused_rows) instead of LayerNorm, the int32 mask's expansion and the masking pass."""
    if _is_mask_bytes(mask2):
        return fused_rows.normalize_drop_rows(h.view(1, -1, h.size(1)), None, 0, 1, g2s, b2s, eps2, mask2)
    u, mean, rstd = torch.native_layer_norm(h, [h.size(1)], g2s, b2s, eps2)
    if mask2 is not None:
        _drop(u, mask2)
    return u, mean, rstd


def hidden_backward(
    grad: torch.Tensor, h: torch.Tensor, mean2: torch.Tensor, rstd2: torch.Tensor, g2s: torch.Tensor,
    b2s: torch.Tensor, tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, eps1: float,
    g1: torch.Tensor, b1: torch.Tensor, w1s: torch.Tensor, mask1: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """Backward of one chunk from the gradient of LN2's output (already masked by the second dropout) to the
    partial weight gradients (g1, b1, W1s, c1, g2s, b2s). ``mask1`` is overwritten.

    The input needs no gradient, so LayerNorm-1's input gradient (grad_h·W1s, a rows × width GEMM, then the mask
    and the LayerNorm backward passes) is never formed. With x̂ = LN1(x) without affine and D = the 0/1 keep mask,
    the first layer's input is (γ ⊙ x̂ + β) ⊙ D; M = grad_hᵀ (x̂ ⊙ D) and N = grad_hᵀ D (a GEMM, and for mask bytes
    ``fused_rows.keep_matmul``, otherwise a second GEMM) give
    dW1s = M diag(γ) + N diag(β), dγ = colsum(W1s ⊙ M), dβ = colsum(W1s ⊙ N). Without dropout N is colsum(grad_h)
    on every column."""
    inner = h.size(1)
    grad_h, grad_g2, grad_b2 = torch.ops.aten.native_layer_norm_backward(
        grad, h, [inner], mean2, rstd2, g2s, b2s, [True, True, True])
    grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)  # ReLU (h is its output)
    grad_c1 = grad_h.sum(0)
    grad_t = grad_h.t()
    if _is_mask_bytes(mask1):
        # x̂ ⊙ D in one fused pass; N from the keep bits directly (D binary: table lookups, ~2× faster than the GEMM,
        # and the 0/1 matrix is never written)
        normalized = fused_rows.normalize_drop_rows(tokens, tef, start, stop, None, None, eps1, mask1)[0]
        m = torch.mm(grad_t, normalized)
        n = fused_rows.keep_matmul(grad_h, mask1, normalized.size(0), normalized.size(1))
    else:
        m = torch.mm(grad_t, normalized_rows(tokens, tef, start, stop, g1.size(0), eps1, mask1))  # recomputed
        if mask1 is None:
            n = grad_c1[:, None].expand_as(m)
        else:  # D: 1.0 kept, 0.0 dropped, made in place (the mask's last use)
            n = torch.mm(grad_t, mask1.bitwise_and_(_ONE_BITS).view(torch.float32))
    grad_w1 = torch.addcmul(m * g1, n, b1)
    grad_g1 = (w1s * m).sum(0)
    grad_b1 = (w1s * n).sum(0)
    return grad_g1, grad_b1, grad_w1, grad_c1, grad_g2, grad_b2


def finish_weight_grads(parts: list[tuple[torch.Tensor, ...]], p: float) -> tuple[torch.Tensor, ...]:
    """Chunk partials of (g1, b1, W1s, c1, g2s, b2s) summed in chunk order, unscaled to (g1, b1, W1, c1, g2, b2)."""
    sums = tuple(_sum(list(column)) for column in zip(*parts, strict=True))
    if p > 0:  # W_s = W / (1 − p): dL/dW = dL/dW_s / (1 − p); likewise LN2's weight and bias
        for index in (2, 4, 5):
            sums[index].mul_(1.0 / (1.0 - p))
    return sums


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
            count = (stop - start) * num_tokens
            mask1, mask2 = chunk_masks(seed, index, count, width, inner, p, tokens.device)
            x = input_rows(tokens, tef, start, stop, g1, b1, eps1, mask1)
            h = hidden[index] = fast_linear(x, w1s, c1, relu=True)
            # the statistics of LayerNorm-2 are kept for backward
            out[rows], mean2[rows], rstd2[rows] = hidden_output(h, g2s, b2s, eps2, mask2)

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
        chunks = _chunks(num_clips, num_tokens)
        # per chunk: the gradients of (g1, b1, w1, c1, g2s, b2s)
        parts: list[tuple[torch.Tensor, ...] | None] = [None] * len(chunks)

        def piece(index: int) -> None:
            start, stop = chunks[index]
            rows = slice(start * num_tokens, stop * num_tokens)
            h = hidden[index]
            mask1, mask2 = chunk_masks(seed, index, h.size(0), width, inner, p, tokens.device)
            # u = LN2(h) ⊙ mask2, the 1 / (1 − p) inside LN2's scaled weight and bias: the gradient of u and of
            # its CLS row, summed, then masked once (a new tensor: grad_out stays as autograd gave it)
            if grad_out is None:
                grad = torch.zeros(h.size(0), inner, device=h.device)
            elif mask2 is not None or grad_cls is not None:
                grad = grad_out[rows].clone()
            else:
                grad = grad_out[rows]
            if grad_cls is not None:
                grad.view(stop - start, num_tokens, inner)[:, 0] += grad_cls[start:stop]
            if mask2 is not None:
                drop_masked(grad, mask2)
            parts[index] = hidden_backward(grad, h, mean2[rows], rstd2[rows], g2s, b2s, tokens, tef, start, stop,
                                           eps1, g1, b1, w1s, mask1)

        _run([functools.partial(piece, index) for index in range(len(chunks))])
        grads = finish_weight_grads(parts, p)  # type: ignore[arg-type]
        return (None, None, None, None, None, None, *grads)


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
