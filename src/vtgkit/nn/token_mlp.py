"""The token MLP LayerNorm → Dropout → Linear → ReLU → LayerNorm → Dropout → Linear over many tokens, in row chunks.

Why: R²-Tuning's ``video_map`` runs on every token of every kept CLIP layer (B·T·50 rows × 770 wide at the official
shapes). As separate autograd ops it materialises and saves several 770-wide fp32 tensors per layer (the fp32 copy
of the fp16 cache, the tef concatenation, the LayerNorm and dropout outputs, the mask), draws the masks with
``bernoulli_`` (the slowest op of the official training step) and streams all of it through DRAM. Here:

* each chunk of rows goes from the fp16 → fp32 copy to the first GEMM while it is still in cache;
* dropout keeps the official distribution (each element kept with probability 1 − p, kept ones scaled by
  1 / (1 − p)); the 1 / (1 − p) scale is folded into the (small) weight instead of a pass over the data, and for
  p = 0.5 the mask is one random bit per element (exact Bernoulli(0.5)), drawn as 64-bit words;
* masks are regenerated in backward from a per-call seed (drawn from torch's default generator, so
  ``torch.manual_seed`` keeps runs reproducible) instead of being stored; backward recomputes the 770-wide side
  from the fp16 input and saves only the 256-wide hidden activation;
* no gradient is computed for the (frozen) input tokens.

The math is the module sequence's; only the split of the weight-gradient sums over chunks changes rounding. The
random stream differs from ``nn.Dropout``'s (it differs between any two implementations anyway).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.fast_linear import fast_linear

ROWS_PER_CHUNK = 8192  # 8192 × 770 fp32 = 24 MiB: a chunk stays in the L3 cache (32 MiB); smaller chunks mean more
# thread barriers, which cost most when the cores are shared (2048 and 8192 tie on one thread, 8192 wins on two)
_SHIFTS = torch.arange(31, -1, -1, dtype=torch.int32)


def keep_mask(rows: int, width: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(rows, width) int32 bit mask: all ones (keep) with probability 1 − p, else 0, independently per element.

    ``x.view(torch.int32).bitwise_and_(mask)`` then zeroes the dropped float32 elements exactly, in one pass and
    without the float copy of a bool mask that ``mul_`` makes. p = 0.5 takes one random bit per element from 64-bit
    words (``bernoulli_`` is ~100× slower): bit j of a word, shifted to the sign bit and arithmetically shifted back,
    gives 0 or −1. Other p compare ``torch.rand`` with p.
    """
    if p == 0.5:
        count = rows * width
        words = torch.empty((count + 63) // 64, dtype=torch.int64).random_(-(2**63), None, generator=generator)
        mask = words.view(torch.int32).unsqueeze(-1) << _SHIFTS  # (words·2, 32): bit j moved to the sign bit
        return mask.view(-1)[:count].view(rows, width).__irshift__(31)
    return (torch.rand(rows, width, generator=generator) >= p).to(torch.int32).neg_()


def _drop(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the float32 elements of ``x`` (contiguous) where the int32 ``mask`` is 0, in place."""
    x.view(torch.int32).bitwise_and_(mask)
    return x


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


def _forward_chunks(
    tokens: torch.Tensor, tef: torch.Tensor | None, p: float, seed: int, eps: tuple[float, float],
    params: tuple[torch.Tensor, ...], hidden: torch.Tensor | None,
) -> torch.Tensor:
    """The forward pass chunk by chunk; writes the post-ReLU hidden activation into ``hidden`` when given.
    params = (W1, c1) scaled by 1 / (1 − p) already, the LayerNorm weights/biases, (W2, c2) scaled likewise."""
    g1, b1, w1s, c1, g2, b2, w2s, c2 = params
    num_clips, num_tokens = tokens.shape[:2]
    width = w1s.size(1)
    generator = torch.Generator(device=tokens.device).manual_seed(seed) if p > 0 else None
    chunks = _chunks(num_clips, num_tokens)
    out = None if len(chunks) == 1 else torch.empty(num_clips * num_tokens, w2s.size(0), device=tokens.device)
    for start, stop in chunks:
        rows = slice(start * num_tokens, stop * num_tokens)
        x = F.layer_norm(_chunk_input(tokens, tef, start, stop, width), [width], g1, b1, eps[0])
        if generator is not None:
            _drop(x, keep_mask(x.size(0), width, p, generator))
        h = fast_linear(x, w1s, c1, relu=True)
        if hidden is not None:
            hidden[rows] = h
        h = F.layer_norm(h, [h.size(1)], g2, b2, eps[1])
        if generator is not None:
            _drop(h, keep_mask(h.size(0), h.size(1), p, generator))
        if out is None:  # one chunk: its result is the output, no copy
            return fast_linear(h, w2s, c2).view(num_clips, num_tokens, -1)
        out[rows] = fast_linear(h, w2s, c2)
    return out.view(num_clips, num_tokens, -1)


def _scaled(p: float, w1: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (w1 * (1.0 / (1.0 - p)), w2 * (1.0 / (1.0 - p))) if p > 0 else (w1, w2)


class _TokenMLP(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, tokens: torch.Tensor, tef: torch.Tensor | None, p: float, seed: int, eps1: float, eps2: float,
        g1: torch.Tensor, b1: torch.Tensor, w1: torch.Tensor, c1: torch.Tensor,
        g2: torch.Tensor, b2: torch.Tensor, w2: torch.Tensor, c2: torch.Tensor,
    ) -> torch.Tensor:
        w1s, w2s = _scaled(p, w1, w2)
        hidden = torch.empty(tokens.size(0) * tokens.size(1), w1.size(0), device=tokens.device)
        out = _forward_chunks(tokens, tef, p, seed, (eps1, eps2), (g1, b1, w1s, c1, g2, b2, w2s, c2), hidden)
        ctx.save_for_backward(tokens, tef, hidden, g1, b1, w1s, g2, b2, w2s)
        ctx.config = (p, seed, eps1, eps2)
        # The first token (CLS) as a separate output: its gradient is added to the chunk's rows in backward instead
        # of autograd's zero-filled full-size select-backward buffer and extra add.
        return out, out[:, 0].clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: torch.Tensor | None, grad_cls: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        tokens, tef, hidden, g1, b1, w1s, g2, b2, w2s = ctx.saved_tensors
        p, seed, eps1, eps2 = ctx.config
        num_clips, num_tokens = tokens.shape[:2]
        width, inner, dims = w1s.size(1), w1s.size(0), w2s.size(0)
        if grad_out is None:
            grad_out = torch.zeros(num_clips, num_tokens, dims, device=w2s.device)
        grad_out = grad_out.reshape(num_clips * num_tokens, dims)
        # grad @ W as a Linear with the transposed weight: oneDNN's GEMM (fast_linear) beats MKL's here
        w1s_t, w2s_t = w1s.t().contiguous(), w2s.t().contiguous()
        generator = torch.Generator(device=tokens.device).manual_seed(seed) if p > 0 else None
        grad_g1, grad_b1, grad_w1, grad_c1 = (torch.zeros_like(g1), torch.zeros_like(b1), torch.zeros_like(w1s),
                                              torch.zeros(inner, device=w1s.device))
        grad_g2, grad_b2, grad_w2, grad_c2 = (torch.zeros_like(g2), torch.zeros_like(b2), torch.zeros_like(w2s),
                                              torch.zeros(dims, device=w2s.device))
        for start, stop in _chunks(num_clips, num_tokens):
            rows = slice(start * num_tokens, stop * num_tokens)
            # Recompute the chunk; masks are drawn in forward's order (first layer's, then second's, per chunk).
            x = _chunk_input(tokens, tef, start, stop, width)
            dropped1, mean1, rstd1 = torch.native_layer_norm(x, [width], g1, b1, eps1)
            mask1 = keep_mask(x.size(0), width, p, generator) if generator is not None else None
            h = hidden[rows]
            dropped2, mean2, rstd2 = torch.native_layer_norm(h, [inner], g2, b2, eps2)
            mask2 = keep_mask(h.size(0), inner, p, generator) if generator is not None else None
            # out = (LN2(h) ⊙ mask2) · W2sᵀ + c2, with W2s = W2 / (1 − p)
            grad = grad_out[rows]
            if grad_cls is not None:
                grad = grad.clone()
                grad.view(stop - start, num_tokens, dims)[:, 0] += grad_cls[start:stop]
            if mask2 is not None:
                _drop(dropped2, mask2)
            grad_w2.addmm_(grad.t(), dropped2)
            grad_c2 += grad.sum(0)
            grad_norm2 = fast_linear(grad, w2s_t, None)
            if mask2 is not None:
                _drop(grad_norm2, mask2)
            grad_h, chunk_g2, chunk_b2 = torch.ops.aten.native_layer_norm_backward(
                grad_norm2, h, [inner], mean2, rstd2, g2, b2, [True, True, True])
            grad_g2 += chunk_g2
            grad_b2 += chunk_b2
            grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)  # ReLU (h is its output)
            # h = ReLU((LN1(x) ⊙ mask1) · W1sᵀ + c1)
            if mask1 is not None:
                _drop(dropped1, mask1)
            grad_w1.addmm_(grad_h.t(), dropped1)
            grad_c1 += grad_h.sum(0)
            grad_norm1 = fast_linear(grad_h, w1s_t, None)
            if mask1 is not None:
                _drop(grad_norm1, mask1)
            _, chunk_g1, chunk_b1 = torch.ops.aten.native_layer_norm_backward(
                grad_norm1, x, [width], mean1, rstd1, g1, b1, [False, True, True])
            grad_g1 += chunk_g1
            grad_b1 += chunk_b1
        if p > 0:  # W_s = W / (1 − p): dL/dW = dL/dW_s / (1 − p)
            grad_w1.mul_(1.0 / (1.0 - p))
            grad_w2.mul_(1.0 / (1.0 - p))
        return (None, None, None, None, None, None, grad_g1, grad_b1, grad_w1, grad_c1,
                grad_g2, grad_b2, grad_w2, grad_c2)


def _plain(tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, p: float) -> tuple[torch.Tensor, ...]:
    """The module sequence on the concatenated input (autograd and autocast as usual)."""
    norm1, _, linear1, _, norm2, _, linear2 = mlp
    x = tokens.float()
    if tef is not None:
        x = torch.cat((x, tef.float()[..., None, :].expand(*x.shape[:-1], tef.size(-1))), dim=-1)
    x = linear1(F.dropout(norm1(x), p, training=p > 0)).relu()
    out = linear2(F.dropout(norm2(x), p, training=p > 0))
    return out, out[..., 0, :]


def token_mlp(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, dropout: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``mlp`` = (LayerNorm, Dropout, Linear, ReLU, LayerNorm, Dropout, Linear) to every token.

    Args:
        tokens: (..., P, Dv) any float dtype (e.g. the fp16 cache); not differentiated (frozen features).
        tef: (..., 2) per-clip temporal encoding appended to every token of the clip, or None.
        mlp: the module sequence; its parameters receive gradients when grad mode is on.
        dropout: apply the Dropout modules' p (training) or not (eval).
    Returns:
        out (..., P, D) float32, and its first token out[..., 0, :] (..., D) (use this one rather than indexing
        ``out``: it is cheaper in backward).
    """
    norm1, drop1, linear1, _, norm2, drop2, linear2 = mlp
    if drop1.p != drop2.p:
        raise ValueError(f"token_mlp expects one dropout rate, got {drop1.p} and {drop2.p}")
    p = float(drop1.p) if dropout else 0.0
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    lead, (num_tokens, width) = tokens.shape[:-2], tokens.shape[-2:]
    if torch.is_autocast_enabled(tokens.device.type):
        # Under autocast the module sequence runs as is (its GEMMs in the autocast dtype); the fused path is fp32.
        return _plain(tokens, tef, mlp, p)
    seed = int(torch.randint(0, 2**62, (1,)).item()) if p > 0 else 0
    flat_tef = None if tef is None else tef.float().reshape(-1, tef.size(-1)).contiguous()
    flat_tokens = tokens.detach().reshape(-1, num_tokens, width)
    params = (norm1.weight, norm1.bias, linear1.weight, linear1.bias, norm2.weight, norm2.bias, linear2.weight,
              linear2.bias)
    if torch.is_grad_enabled() and any(t.requires_grad for t in params):
        out, first = _TokenMLP.apply(flat_tokens, flat_tef, p, seed, norm1.eps, norm2.eps, *params)
    else:  # inference: nothing to save for backward
        w1s, w2s = _scaled(p, linear1.weight, linear2.weight)
        params = (norm1.weight, norm1.bias, w1s, linear1.bias, norm2.weight, norm2.bias, w2s, linear2.bias)
        out = _forward_chunks(flat_tokens, flat_tef, p, seed, (norm1.eps, norm2.eps), params, None)
        first = out[:, 0]
    return out.view(*lead, num_tokens, out.size(-1)), first.view(*lead, out.size(-1))
