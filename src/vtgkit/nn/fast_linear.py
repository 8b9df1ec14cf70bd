"""fp32 Linear through oneDNN for inference on CPU.

On the project's CPU, oneDNN's fp32 GEMM runs about twice as fast as the default MKL path (notes
cpu-performance.md §1) with fp32-exact results up to summation order. The entry point,
``torch.ops.mkldnn._linear_pointwise``, is private API: it is used only when it exists, agrees with ``F.linear`` on a
probe input, and the call needs no autograd and no autocast; otherwise ``F.linear`` runs.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.cache
def onednn_linear_available() -> bool:
    """Whether the oneDNN fp32 linear exists and matches ``F.linear`` on a probe (checked once per process)."""
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(37, 19, generator=generator)
    weight = torch.randn(11, 19, generator=generator)
    bias = torch.randn(11, generator=generator)
    try:
        with torch.inference_mode():
            got = op(x, weight, bias, "relu", [], "")
    except RuntimeError:
        return False
    return bool(torch.allclose(got, F.linear(x, weight, bias).relu(), rtol=1e-5, atol=1e-5))


def fast_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False) -> torch.Tensor:
    """``F.linear`` (optionally followed by ReLU), through oneDNN when that is safe and faster.

    Args:
        x: (..., C_in).
        weight: (C_out, C_in).
        bias: (C_out,) or None.
    Returns:
        (..., C_out).
    """
    use_onednn = (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and onednn_linear_available()
    )
    if not use_onednn:
        out = F.linear(x, weight, bias)
        return out.relu_() if relu else out
    shape = x.shape
    out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, shape[-1]), weight, bias, "relu" if relu else "none", [], "")
    return out.reshape(*shape[:-1], weight.size(0))
