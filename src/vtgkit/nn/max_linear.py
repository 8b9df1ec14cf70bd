"""Backward of a Linear followed by a max over the query axis, using that the max's gradient is sparse.

In R²-Tuning's pooling (vtgkit.nn.token_pool) each clip's L pooled rows go through video_map's last Linear W2, then
the max over the L queries: z = pooled·W2ᵀ + b2 + q, best = max_L z. The gradient of z is zero except where a query
holds the maximum of a channel: one of L = 20 entries per (clip, channel), more only on exact ties. The two GEMMs
of the Linear's backward (grad_pooled = grad_z·W2 and grad_W2 = grad_zᵀ·pooled, 2·n·L·H·H multiply-adds per
chunk) then reduce to one row update per non-zero (2·n·H·H): for each clip c, channel h and query l with
g = grad_z[c, l, h] ≠ 0, grad_pooled[c, l] += g·W2[h] and grad_W2[h] += g·pooled[c, l]. A numba kernel does this
(2.7 ms against 5.7 ms for the two GEMMs on a 75-clip chunk at the official shapes, 1 thread; it is bound by
moving rows between the caches, not by the arithmetic). The sums run in another order than a GEMM's (float
rounding only). Without numba the dense GEMMs run instead.
"""

from __future__ import annotations

from types import ModuleType

import torch

from vtgkit.nn.numba_kernels import load_kernels


def _kernels() -> ModuleType | None:
    return load_kernels("vtgkit.nn.max_linear_kernels")


def linear_max_backward(
    grad_z: torch.Tensor, pooled: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_pooled (n, L, Hin), grad_weight (H, Hin)) of z = pooled·weightᵀ (+ bias) from the mostly-zero grad_z.

    Args: grad_z (n, L, H); pooled (n, L, Hin); weight (H, Hin); float32 CPU tensors (others take the GEMMs).
    """
    if grad_z.dim() != 3 or pooled.shape[:2] != grad_z.shape[:2] or weight.shape != (grad_z.size(2), pooled.size(2)):
        raise ValueError(f"shapes do not fit: grad_z {tuple(grad_z.shape)}, pooled {tuple(pooled.shape)}, weight "
                         f"{tuple(weight.shape)} (expected (n, L, H), (n, L, Hin), (H, Hin))")
    kernels = _kernels()
    tensors = (grad_z, pooled, weight)
    if kernels is None or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        flat = grad_z.reshape(-1, grad_z.size(2))
        return (flat @ weight).view_as(pooled), flat.t() @ pooled.reshape(-1, pooled.size(2))
    grad_z, pooled, weight = (t.detach().contiguous() for t in tensors)
    grad_pooled = torch.zeros_like(pooled)
    grad_weight = torch.zeros_like(weight)
    kernels.sparse_rows_backward(grad_z.numpy(), pooled.numpy(), weight.numpy(), grad_pooled.numpy(),
                                 grad_weight.numpy())
    return grad_pooled, grad_weight
