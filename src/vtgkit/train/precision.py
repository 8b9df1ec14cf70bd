"""Mixed precision per device: bf16 autocast on CPU; fp16 (with a gradient scaler) or bf16 on CUDA.

fp16 matrix products are ~200x slower than fp32 on the project's CPU (notes cpu-performance.md §0), so fp16 on CPU
is refused rather than run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from vtgkit.errors import ConfigError


def autocast_factory(precision: str, device: torch.device) -> Callable[[], AbstractContextManager[object]]:
    """A function returning the autocast context for the forward pass (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision=fp16 on CPU is ~200x slower than fp32 here; use precision=bf16 or fp32")
    if precision not in ("bf16", "fp16"):
        raise ConfigError(f"precision: expected fp32, bf16 or fp16, got {precision!r}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def build_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on CUDA (as the official launcher uses, spec r2-tuning.md §7); else None."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
