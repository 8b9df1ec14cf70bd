"""numba kernels of vtgkit.nn.fused_rows (imported only when they run: numba's import costs ~0.35 s).

Row by row: the fp16 tokens widened exactly, the tef appended, LayerNorm statistics, the keep flags read from the
random bytes; see vtgkit.nn.fused_rows for the contract.
"""

# ruff: noqa: ANN001, ANN202 - numba signatures are inferred from the arguments

from __future__ import annotations

import threading

import numpy as np
from llvmlite import ir
from numba import config as numba_config
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
def _load_row(tokens, layout, tef, row, buf):
    """buf[:width] = the fp32 input row: the token's values, then its clip's tef. ``tokens`` is flat (the storage
    the chunk's tokens span) and ``layout`` = (tokens per clip, clip stride, token stride, dims) in elements, so a
    strided view (a layer sliced out of a larger cache) is read in place; each token's dims are contiguous."""
    per_clip, clip_stride, token_stride, dims = layout
    clip = row // per_clip
    start = clip * clip_stride + (row - clip * per_clip) * token_stride
    values = tokens[start:start + dims]
    for j in range(dims):
        buf[j] = _widen(values[j])
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
def _prepare_row(tokens, layout, tef, row, buf, eps, mask, spread, masked, keep):
    """Row ``row`` into ``buf`` (its width); returns its mean, rstd, −rstd·mean and the offset of its keep flags in
    ``keep`` (filled from the mask bytes when ``masked``; all ones otherwise)."""
    width = buf.shape[0]
    _load_row(tokens, layout, tef, row, buf)
    mean, rstd = _moments(buf, width, eps)
    offset = _expand_bits(mask, row * width, width, keep.view(np.uint64), spread) if masked else 0
    return mean, rstd, -rstd * mean, offset


@njit(nogil=True, cache=True)
def affine_rows(tokens, layout, tef, gamma, beta, affine, eps, mask, spread, masked, out, mean_out,
                 rstd_out):
    """out = LayerNorm(row)·γ + β (x̂ alone unless ``affine``), dropped elements 0 when ``masked``; per-row mean
    and rstd."""
    rows, width = out.shape
    buf, keep = np.empty(width, np.float32), _keep_buffer(width)
    for row in range(rows):
        mean, rstd, bias, offset = _prepare_row(tokens, layout, tef, row, buf, np.float32(eps), mask, spread,
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
def normalized_rows(tokens, layout, tef, eps, mask, spread, normalized, kept, mean_out, rstd_out):
    """normalized = x̂ (no affine) ⊙ keep, kept = keep as 0.0/1.0; per-row mean and rstd."""
    rows, width = normalized.shape
    buf, keep = np.empty(width, np.float32), _keep_buffer(width)
    for row in range(rows):
        mean, rstd, bias, offset = _prepare_row(tokens, layout, tef, row, buf, np.float32(eps), mask, spread,
                                                True, keep)
        target, flags = normalized[row], kept[row]
        for j in range(width):
            flag = keep[offset + j]
            target[j] = buf[j] * rstd + bias if flag != 0 else np.float32(0.0)
            flags[j] = np.float32(flag)
        mean_out[row] = mean
        rstd_out[row] = rstd



@njit(nogil=True, cache=True)
def drop_rows(values, mask, spread):
    """values (rows, width) fp32 in place: 0 where the keep flag of the flat element is 0."""
    rows, width = values.shape
    keep = _keep_buffer(width)
    for row in range(rows):
        offset = _expand_bits(mask, row * width, width, keep.view(np.uint64), spread)
        target = values[row]
        for j in range(width):
            if keep[offset + j] == 0:
                target[j] = np.float32(0.0)

# --- N = grad_hᵀ D for a 0/1 keep mask D, without a GEMM ("method of four Russians") -------------------------------
#
# For every 4 rows of grad_h, a table of the 16 subset sums of those rows (32 grad columns at a time); the 4 keep bits
# of a column pick the entry to add. 64 rows' 16 tables (32 KiB, L1) are built, then each column sums its 16 entries
# in registers and adds that partial sum to its accumulator (two-level summation: the rounding error stays near a
# GEMM's, where one running sum over all rows had ~4× more). Per 4 rows × 32 columns that is one 32-float add
# instead of a GEMM's 4 multiply-adds, and the 0/1 matrix is never written.
#
# The 32 lanes are four 8-float tuples (registers), added element by element: LLVM's SLP vectorizer turns each
# tuple add into one AVX add. numba turns SLP off by default, so the kernel is compiled with it on (see
# `keep_products_compiled`); it changes no result (no reassociation, no fast-math: each lane's adds keep their
# order). Without it the kernel is ~3.5× slower than the GEMM.

KEEP_LANES = 32  # grad columns per pass (four 8-float AVX registers per table entry)
KEEP_BYTES = 8  # byte rows (8 mask rows each) per group of tables: 16 tables × 16 entries × 32 lanes × 4 B = 32 KiB
_KEEP_SIGNATURE = "void(float32[:, ::1], uint8[:, ::1], int64, int64, float32[:, ::1])"
_KEEP_LOCK = threading.Lock()


@njit(nogil=True, cache=True)
def keep_column_bytes(mask, rows, width, out):
    """out (groups·KEEP_BYTES, padded) uint8, padded = width rounded up to 8: out[b, j] bit i = keep flag of row
    8b + i, column j (flat element (8b + i)·width + j of ``mask``: bit e % 8 of byte e // 8). Rows ≥ ``rows`` and
    columns ≥ ``width`` get 0 bits."""
    padded = out.shape[1]
    words = out.view(np.uint64)  # 8 columns per word, one byte each
    nbytes = mask.shape[0]
    for block in range(out.shape[0]):
        count = min(8, rows - block * 8)  # rows of this byte row (≤ 0 past the end: all bits 0)
        for w in range(padded >> 3):
            word = np.uint64(0)
            for i in range(count):
                e = (block * 8 + i) * width + w * 8
                q = e >> 3
                pair = np.uint32(mask[q]) | (np.uint32(mask[q + 1]) << 8 if q + 1 < nbytes else np.uint32(0))
                bits = (pair >> (e & 7)) & 0xFF
                if w * 8 + 8 > width:  # the last word: bits past the row's end belong to the next row
                    bits &= (1 << (width - w * 8)) - 1
                # the 8 bits to the low bit of 8 bytes (0x0101…-spread), shifted to bit i
                x = np.uint64(bits)
                x = (x | (x << np.uint64(28))) & np.uint64(0x0000000F0000000F)
                x = (x | (x << np.uint64(14))) & np.uint64(0x0003000300030003)
                x = (x | (x << np.uint64(7))) & np.uint64(0x0101010101010101)
                word |= x << np.uint64(i)
            words[block, w] = word


@njit(nogil=True, cache=True, inline="always")
def _load8(values, start):
    return (values[start], values[start + 1], values[start + 2], values[start + 3], values[start + 4],
            values[start + 5], values[start + 6], values[start + 7])


@njit(nogil=True, cache=True, inline="always")
def _add8(lanes, table, start):
    """lanes + table[start:start + 8], element by element (one AVX add after SLP)."""
    return (lanes[0] + table[start], lanes[1] + table[start + 1], lanes[2] + table[start + 2],
            lanes[3] + table[start + 3], lanes[4] + table[start + 4], lanes[5] + table[start + 5],
            lanes[6] + table[start + 6], lanes[7] + table[start + 7])


@njit(nogil=True, cache=True, inline="always")
def _store8(target, start, lanes):
    for lane in range(8):
        target[start + lane] = lanes[lane]


@njit(nogil=True, cache=True, inline="always")
def _build_tables(source, first_row, count, lane0, tables):
    """tables[t] (t < count, 16 entries × KEEP_LANES) = the subset sums of rows first_row + 4t … + 4t + 3 of
    ``source`` (columns lane0 …): entry m = entry m without its lowest bit + the row of that bit."""
    for t in range(count):
        base = t * 16 * KEEP_LANES
        for i in range(4):
            row = source[first_row + t * 4 + i, lane0:lane0 + KEEP_LANES]
            g0, g1, g2, g3 = _load8(row, 0), _load8(row, 8), _load8(row, 16), _load8(row, 24)
            step = 1 << i
            for m in range(step):  # entries step … 2·step − 1 = entries 0 … step − 1 plus row i
                src, dst = base + m * KEEP_LANES, base + (step + m) * KEEP_LANES
                _store8(tables, dst, _add8(g0, tables, src))
                _store8(tables, dst + 8, _add8(g1, tables, src + 8))
                _store8(tables, dst + 16, _add8(g2, tables, src + 16))
                _store8(tables, dst + 24, _add8(g3, tables, src + 24))


@njit(nogil=True, cache=True, inline="always")
def _add_entry(a, table_start, nibble, tables):
    start = table_start + nibble * np.uint64(KEEP_LANES)
    return (_add8(a[0], tables, start), _add8(a[1], tables, start + np.uint64(8)),
            _add8(a[2], tables, start + np.uint64(16)), _add8(a[3], tables, start + np.uint64(24)))


@njit(nogil=True, cache=True, inline="always")
def _add_partial(acc, start, a):
    """acc[start:start + KEEP_LANES] += a (a column's partial sum over one group of tables)."""
    _store8(acc, start, _add8(a[0], acc, start))
    _store8(acc, start + 8, _add8(a[1], acc, start + 8))
    _store8(acc, start + 16, _add8(a[2], acc, start + 16))
    _store8(acc, start + 24, _add8(a[3], acc, start + 24))


def _keep_products(grad, column_bytes, rows, width, out):
    """out (H, width) = grad (rows, H)ᵀ D, D the 0/1 mask of ``column_bytes`` (keep_column_bytes). H a multiple of
    KEEP_LANES; column_bytes has ≥ ceil(rows / 8) byte rows rounded up to KEEP_BYTES and an even width."""
    lanes_total = grad.shape[1]
    blocks = (rows + 7) >> 3
    groups = (blocks + KEEP_BYTES - 1) // KEEP_BYTES
    pairs = (width + 1) >> 1  # two columns at a time: 8 register accumulators
    tables = np.zeros(KEEP_BYTES * 2 * 16 * KEEP_LANES, np.float32)
    acc = np.empty(pairs * 2 * KEEP_LANES, np.float32)
    tail = np.zeros((KEEP_BYTES * 8, lanes_total), np.float32)  # the last group's rows, zero past ``rows``
    last = (groups - 1) * KEEP_BYTES * 8
    tail[:rows - last] = grad[last:rows]
    zero = np.float32(0.0)
    zeros = (zero, zero, zero, zero, zero, zero, zero, zero)
    half = np.uint64(16 * KEEP_LANES)
    for lane0 in range(0, lanes_total, KEEP_LANES):
        acc[:] = 0.0
        for group in range(groups):
            count = min(KEEP_BYTES, blocks - group * KEEP_BYTES)
            if group == groups - 1:
                _build_tables(tail, 0, 2 * count, lane0, tables)
            else:
                _build_tables(grad, group * KEEP_BYTES * 8, 2 * count, lane0, tables)
            for pair in range(pairs):
                left, right = (zeros, zeros, zeros, zeros), (zeros, zeros, zeros, zeros)
                for b in range(count):
                    byte_row = column_bytes[group * KEEP_BYTES + b]
                    first, second = np.uint64(byte_row[2 * pair]), np.uint64(byte_row[2 * pair + 1])
                    low = np.uint64(b * 2 * 16 * KEEP_LANES)  # the table of the byte's rows 0-3, then of 4-7
                    left = _add_entry(left, low, first & np.uint64(15), tables)
                    right = _add_entry(right, low, second & np.uint64(15), tables)
                    left = _add_entry(left, low + half, first >> np.uint64(4), tables)
                    right = _add_entry(right, low + half, second >> np.uint64(4), tables)
                _add_partial(acc, pair * 2 * KEEP_LANES, left)
                _add_partial(acc, (pair * 2 + 1) * KEEP_LANES, right)
        for j in range(width):
            for lane in range(KEEP_LANES):
                out[lane0 + lane, j] = acc[j * KEEP_LANES + lane]


# Private: called before keep_products_compiled, numba would compile (and cache) the scalar variant.
_keep_products_jit = njit(nogil=True, cache=True)(_keep_products)


def keep_products_compiled():
    """The products kernel (out (H, width) = grad (rows, H)ᵀ D), compiled (or loaded from numba's cache) with
    LLVM's SLP vectorizer on, once per process.

    numba reads ``config.SLP_VECTORIZE`` when it builds a function's pass pipeline, so the switch is set around
    this one compile only (under a lock: another thread's compile in that window also gets SLP, which changes no
    result). Further compiles are disabled: an argument of another type raises instead of silently compiling a
    scalar (3.5× slower) variant."""
    with _KEEP_LOCK:
        if not _keep_products_jit.signatures:
            saved = numba_config.SLP_VECTORIZE
            numba_config.SLP_VECTORIZE = 1
            try:
                _keep_products_jit.compile(_KEEP_SIGNATURE)
            finally:
                numba_config.SLP_VECTORIZE = saved
            _keep_products_jit.disable_compile()
    return _keep_products_jit
