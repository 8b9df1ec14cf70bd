"""numba kernel of vtgkit.nn.max_linear (imported only when it runs: numba's import costs ~0.35 s)."""

# ruff: noqa: ANN001, ANN202 - numba signatures are inferred from the arguments

from __future__ import annotations

from numba import njit

# Rows of grad_weight updated per pass over the clips: 32 rows (32 KiB at 256 wide) stay in L1/L2 while every clip
# adds into them (all 256 rows per clip streamed the whole matrix through L2 for each clip: 3.6 vs 2.7 ms a chunk).
_WEIGHT_ROWS = 32


@njit(nogil=True, cache=True, fastmath={"contract"})
def _axpy(g, source, target):
    """target += g·source (fused multiply-add allowed: one rounding instead of two)."""
    for j in range(target.shape[0]):
        target[j] += g * source[j]


@njit(nogil=True, cache=True)
def sparse_rows_backward(grad_z, pooled, weight, grad_pooled, grad_weight):
    """grad_pooled[c, l] += g·weight[h] and grad_weight[h] += g·pooled[c, l] for every g = grad_z[c, l, h] ≠ 0
    (both outputs zero-initialised by the caller)."""
    clips, queries, channels = grad_z.shape
    for c in range(clips):  # weight (256 KiB) stays in L2 over the clips
        for h in range(channels):
            for q in range(queries):
                g = grad_z[c, q, h]
                if g != 0.0:
                    _axpy(g, weight[h], grad_pooled[c, q])
    for first in range(0, channels, _WEIGHT_ROWS):
        for c in range(clips):
            for h in range(first, min(first + _WEIGHT_ROWS, channels)):
                for q in range(queries):
                    g = grad_z[c, q, h]
                    if g != 0.0:
                        _axpy(g, pooled[c, q], grad_weight[h])
