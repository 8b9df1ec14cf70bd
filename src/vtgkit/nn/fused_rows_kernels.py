"""numba kernels of vtgkit.nn.fused_rows (imported only when they run: numba's import costs ~0.35 s).

Row by row: the fp16 tokens widened exactly, the tef appended, LayerNorm statistics, the keep flags read from the
random bytes; see vtgkit.nn.fused_rows for the contract.
"""

# ruff: noqa: ANN001, ANN202 - numba signatures are inferred from the arguments

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# Reassociation only where it matters: the two row sums (mean, centred variance), so LLVM can keep 8-lane partial
# sums. Every other operation keeps IEEE order and rounding.
_SUM_FLAGS = {"reassoc"}


@intrinsic
def _widen(typingctx, value):
    """float32 of a float32, or of the bits of an IEEE half read as uint16 (exact: one fpext, F16C on x86)."""
    if value == types.uint16:
        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        return types.float32(value), codegen
    if value == types.float32:
        def codegen(context, builder, signature, args):
            return args[0]
        return types.float32(value), codegen
    return None


@njit(nogil=True, cache=True)
def _load_row(tokens, tef, tokens_per_clip, row, buf):
    """buf[:width] = the fp32 input row: the token's values, then its clip's tef."""
    dims = tokens.shape[1]
    for j in range(dims):
        buf[j] = _widen(tokens[row, j])
    clip = row // tokens_per_clip
    for j in range(tef.shape[1]):
        buf[dims + j] = tef[clip, j]


@njit(nogil=True, cache=True, fastmath=_SUM_FLAGS)
def _moments(buf, width, eps):
    """(mean, rstd) of buf[:width] (biased variance, two passes) as float32, like torch's LayerNorm."""
    total = np.float32(0.0)
    for j in range(width):
        total += buf[j]
    mean = total / np.float32(width)
    squares = np.float32(0.0)
    for j in range(width):
        centred = buf[j] - mean
        squares += centred * centred
    var = squares / np.float32(width)
    return mean, np.float32(1.0) / np.sqrt(var + eps)


@njit(nogil=True, cache=True)
def _expand_bits(mask, start, width, words, spread):
    """Bytes of ``words`` (uint64 view of the keep flags): flag offset + j = bit of flat element start + j (0/1),
    j < width; returns offset = start % 8. One 8-byte load and store per random byte from ``spread`` (=
    _BYTE_SPREAD, passed in: as a global constant it made the whole kernel 1.4× slower; bit-by-bit shifts do
    not vectorise and took 3× longer)."""
    first, offset = start >> 3, start & 7
    for k in range((offset + width + 7) >> 3):
        words[k] = spread[mask[first + k]]
    return offset


@njit(nogil=True, cache=True)
def _keep_buffer(width):
    """Keep flags for one row starting anywhere in a byte, as whole 8-byte words (all 1: nothing dropped)."""
    return np.ones(((width + 14) >> 3) * 8, np.uint8)


@njit(nogil=True, cache=True)
def _prepare_row(tokens, tef, tokens_per_clip, row, buf, eps, mask, spread, masked, keep):
    """Row ``row`` into ``buf`` (its width); returns its mean, rstd, −rstd·mean and the offset of its keep flags in
    ``keep`` (filled from the mask bytes when ``masked``; all ones otherwise)."""
    width = buf.shape[0]
    _load_row(tokens, tef, tokens_per_clip, row, buf)
    mean, rstd = _moments(buf, width, eps)
    offset = _expand_bits(mask, row * width, width, keep.view(np.uint64), spread) if masked else 0
    return mean, rstd, -rstd * mean, offset


@njit(nogil=True, cache=True)
def affine_rows(tokens, tef, tokens_per_clip, gamma, beta, affine, eps, mask, spread, masked, out, mean_out,
                 rstd_out):
    """out = LayerNorm(row)·γ + β (x̂ alone unless ``affine``), dropped elements 0 when ``masked``; per-row mean
    and rstd."""
    rows, width = out.shape
    buf, keep = np.empty(width, np.float32), _keep_buffer(width)
    for row in range(rows):
        mean, rstd, bias, offset = _prepare_row(tokens, tef, tokens_per_clip, row, buf, np.float32(eps), mask, spread,
                                                masked, keep)
        target = out[row]
        if affine:
            for j in range(width):
                value = (buf[j] * rstd + bias) * gamma[j] + beta[j]
                target[j] = value if keep[offset + j] != 0 else np.float32(0.0)
        else:
            for j in range(width):
                value = buf[j] * rstd + bias
                target[j] = value if keep[offset + j] != 0 else np.float32(0.0)
        mean_out[row] = mean
        rstd_out[row] = rstd


@njit(nogil=True, cache=True)
def normalized_rows(tokens, tef, tokens_per_clip, eps, mask, spread, normalized, kept, mean_out, rstd_out):
    """normalized = x̂ (no affine) ⊙ keep, kept = keep as 0.0/1.0; per-row mean and rstd."""
    rows, width = normalized.shape
    buf, keep = np.empty(width, np.float32), _keep_buffer(width)
    for row in range(rows):
        mean, rstd, bias, offset = _prepare_row(tokens, tef, tokens_per_clip, row, buf, np.float32(eps), mask, spread,
                                                True, keep)
        target, flags = normalized[row], kept[row]
        for j in range(width):
            flag = keep[offset + j]
            target[j] = buf[j] * rstd + bias if flag != 0 else np.float32(0.0)
            flags[j] = np.float32(flag)
        mean_out[row] = mean
        rstd_out[row] = rstd
