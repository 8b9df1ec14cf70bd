"""The token MLP's 770-wide input pass (fp16 → fp32, tef, LayerNorm, dropout) in one pass per row, with numba.

Why: vtgkit.nn.token_mlp builds each chunk's first-layer input with five separate passes over a (rows, 770) fp32
matrix (the fp16 → fp32 copy with the tef appended, LayerNorm, the int32 keep mask from the random bytes, the
bitwise drop), each streaming ~12 MiB, in forward and again in backward. Here each row is read once from the fp16
cache into a 3 KiB buffer that stays in L1 (the statistics take two passes over it: mean, then the centred
variance), and the masked output is written once; the keep bits are read straight from the random bytes.

Same results as the torch sequence (``F.layer_norm`` on the fp32 copy, then ``keep_mask``'s p = 0.5 drop):

* the keep decisions are bit-exact: element i of the chunk (flat, row-major) is kept when bit ``i % 8`` of byte
  ``i // 8`` of the random bytes is set; the bytes are the caller's (drawn by :func:`draw_mask_bytes` exactly as
  ``keep_mask`` draws them, so the random stream stays torch's);
* values agree to float32 rounding: y = (x·rstd − mean·rstd)·γ + β (the scale/bias form torch's CPU kernel
  uses); the sums of mean and variance run in another order (reassociated here, which lets LLVM vectorise them);
* fp16 is widened by the CPU's own half → float conversion (exact; numba has no float16 type, so the bits are read
  as uint16 and converted by one LLVM ``fpext``).

For backward, :func:`keep_matmul` forms N = grad_hᵀ D from the keep bits without the 0/1 matrix or a GEMM.

Only p = 0.5 masks are a bit per element; for other p the caller keeps the torch path. Kernels release the GIL
(the caller runs two chunks on two threads) and live in vtgkit.nn.fused_rows_kernels, imported on first use (not
by every model import); numba compiles them on first call and caches them on disk (``__pycache__`` next to that
file, or numba's user-wide cache directory when that is read-only); see :func:`warm_up`.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from vtgkit.nn.numba_kernels import load_kernels

# Entry b: the 8 bits of byte b spread to the 8 bytes of a little-endian word (byte n = bit n of b), so one load
# expands a random byte into 8 keep flags.
_BITS = np.arange(8, dtype=np.uint64)
_BYTE_SPREAD = (((np.arange(256, dtype=np.uint64)[:, None] >> _BITS) & np.uint64(1)) << (np.uint64(8) * _BITS)).sum(
    axis=1, dtype=np.uint64)


def available() -> bool:
    """True when numba imports (the fused kernels can run; the first call imports it, ~0.35 s); otherwise the
    caller keeps the torch path."""
    return _kernels_or_none() is not None


def _kernels_or_none() -> ModuleType | None:
    return load_kernels("vtgkit.nn.fused_rows_kernels")


def _kernels() -> ModuleType:
    kernels = _kernels_or_none()
    if kernels is None:
        raise RuntimeError("vtgkit.nn.fused_rows needs numba (pip install numba); check available() first")
    return kernels


def draw_mask_bytes(rows: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """The random bytes of a (rows, width) p = 0.5 keep mask, drawn exactly as ``token_mlp.keep_mask`` draws them
    (same number of 64-bit words from ``generator``, so the generator's next draws are unchanged too).
    Returns uint8 (≥ ceil(rows·width / 8),): bit i % 8 of byte i // 8 keeps flat element i."""
    count = rows * width
    words = torch.empty((count + 63) // 64, dtype=torch.int64, device=generator.device)
    words.random_(-(2**63), None, generator=generator)
    return words.view(torch.uint8)


def _row_inputs(
    tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int
) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray, int, int]:
    """What the kernels read for clips [start, stop): the tokens as the flat span of storage they occupy (uint16
    bits of fp16, or fp32), their layout (tokens per clip, clip stride, token stride, dims; in elements), the tef
    (clips, T) fp32 (T = 0 when None), rows and width.

    A strided view whose last dim is contiguous (training's layer of a (B, T, K, P, Dv) cache, reshaped to
    (B·T, P, Dv)) is read in place through its strides; only other layouts and dtypes are copied."""
    _kernels()  # raises when numba is missing
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be (clips, tokens, dims), got shape {tuple(tokens.shape)}")
    if tokens.device.type != "cpu":
        raise ValueError(f"fused_rows runs on CPU tensors, got tokens on {tokens.device}")
    if not 0 <= start < stop <= tokens.size(0):
        raise ValueError(f"clip range [{start}, {stop}) is empty or outside the {tokens.size(0)} clips of tokens")
    part = tokens.detach()[start:stop]
    if part.dtype not in (torch.float16, torch.float32):
        part = part.to(torch.float32)  # other float dtypes: widen first (what the torch path's copy_ does)
    clips, per_clip, dims = part.shape
    clip_stride, token_stride, value_stride = part.stride()
    if value_stride != 1 or clip_stride < 0 or token_stride < 0:
        part = part.contiguous()
        clip_stride, token_stride, _ = part.stride()
    # the elements from the first value to the last (the gaps between clips are never read)
    span = (clips - 1) * clip_stride + (per_clip - 1) * token_stride + dims
    flat = part.as_strided((span,), (1,))
    if flat.dtype == torch.float16:
        values = flat.view(torch.int16).numpy().view(np.uint16)
    else:
        values = flat.numpy()
    if tef is None:
        tef_rows = np.zeros((clips, 0), np.float32)
    else:
        if tef.dim() != 2 or tef.size(0) < stop:
            raise ValueError(f"tef must be (clips, T) with at least {stop} clips, got shape {tuple(tef.shape)}")
        tef_rows = tef.detach()[start:stop].to(torch.float32).contiguous().numpy()
    layout = (per_clip, clip_stride, token_stride, dims)
    return values, layout, tef_rows, clips * per_clip, dims + tef_rows.shape[1]


def _mask_view(mask_bytes: torch.Tensor | None, rows: int, width: int) -> np.ndarray:
    if mask_bytes is None:
        return np.zeros(1, np.uint8)
    needed = (rows * width + 7) // 8
    if mask_bytes.dtype != torch.uint8 or mask_bytes.dim() != 1 or mask_bytes.numel() < needed:
        raise ValueError(f"mask_bytes must be uint8 of at least {needed} bytes (rows {rows} × width {width}), got "
                         f"{mask_bytes.dtype} shape {tuple(mask_bytes.shape)}")
    return mask_bytes.contiguous().numpy()


def _per_row(stat: torch.Tensor, rows: int) -> np.ndarray:
    """(rows,) float32 numpy view of a per-row statistic (rows, 1): written in place when it is an output."""
    if stat.numel() != rows or stat.dtype != torch.float32:
        raise ValueError(f"per-row statistics must be float32 with {rows} values, got {stat.dtype} {tuple(stat.shape)}")
    return stat.detach().contiguous().numpy().reshape(rows)


def _vector(value: torch.Tensor, width: int, name: str) -> np.ndarray:
    if value.shape != (width,):
        raise ValueError(f"{name} must have shape ({width},), got {tuple(value.shape)}")
    return value.detach().to(torch.float32).contiguous().numpy()


def normalize_drop_rows(
    tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, gamma: torch.Tensor | None,
    beta: torch.Tensor | None, eps: float, mask_bytes: torch.Tensor | None, out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LayerNorm(x)·γ + β with the dropped elements zeroed, x = clips [start, stop) of ``tokens`` with their tef.

    Equals ``_drop(F.layer_norm(_chunk_input(...), [W], γ, β, eps), keep_mask(rows, W, 0.5, g))`` when
    ``mask_bytes = draw_mask_bytes(rows, W, g)`` (None: no dropout), i.e. token_mlp's ``input_rows``. The
    1 / (1 − p) scale is not applied.
    Args: tokens (C, P, Dv) fp16 (read in place) or another float dtype (widened first); tef (C, T) or None;
    gamma, beta (W,) or both None (no affine), W = Dv + T; ``out`` an optional contiguous fp32 (rows, W) buffer,
    rows = (stop − start)·P.
    Returns: out (rows, W), mean (rows, 1), rstd (rows, 1) fp32 (native_layer_norm's statistics).
    """
    values, layout, tef_rows, rows, width = _row_inputs(tokens, tef, start, stop)
    if out is None:
        out = torch.empty(rows, width)
    elif out.shape != (rows, width) or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out must be contiguous float32 ({rows}, {width}), got {out.dtype} {tuple(out.shape)}")
    if (gamma is None) != (beta is None):
        raise ValueError("gamma and beta must both be given or both be None")
    affine = gamma is not None
    gamma_values = _vector(gamma, width, "gamma") if affine else np.zeros(1, np.float32)
    beta_values = _vector(beta, width, "beta") if affine else np.zeros(1, np.float32)
    mean, rstd = torch.empty(rows, 1), torch.empty(rows, 1)
    _kernels().affine_rows(values, layout, tef_rows, gamma_values, beta_values, affine, float(eps),
                           _mask_view(mask_bytes, rows, width), _BYTE_SPREAD, mask_bytes is not None, out.numpy(),
                           _per_row(mean, rows), _per_row(rstd, rows))
    return out, mean, rstd


def normalized_keep_rows(
    tokens: torch.Tensor, tef: torch.Tensor | None, start: int, stop: int, eps: float, mask_bytes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x̂ ⊙ D and D for the M/N form of the first layer's backward (x̂ = LayerNorm(x) without γ, β; D the keep mask).

    Same inputs as :func:`normalize_drop_rows` (mask_bytes required). Returns: normalized (rows, W) = x̂ with dropped
    elements 0, kept (rows, W) 0.0/1.0, mean (rows, 1), rstd (rows, 1), all fp32.
    """
    if mask_bytes is None:
        raise ValueError("normalized_keep_rows needs the mask bytes (without dropout use native_layer_norm)")
    values, layout, tef_rows, rows, width = _row_inputs(tokens, tef, start, stop)
    normalized, kept = torch.empty(rows, width), torch.empty(rows, width)
    mean, rstd = torch.empty(rows, 1), torch.empty(rows, 1)
    _kernels().normalized_rows(values, layout, tef_rows, float(eps), _mask_view(mask_bytes, rows, width),
                     _BYTE_SPREAD, normalized.numpy(), kept.numpy(), _per_row(mean, rows), _per_row(rstd, rows))
    return normalized, kept, mean, rstd


def drop_rows(values: torch.Tensor, mask_bytes: torch.Tensor) -> torch.Tensor:
    """Zero, in place, the elements of ``values`` (rows, W) contiguous fp32 whose keep bit in ``mask_bytes`` (as
    :func:`draw_mask_bytes` draws them) is 0: ``token_mlp._drop`` with ``keep_mask``'s mask, without expanding the
    bits to an int32 matrix first. Returns ``values``."""
    if values.dim() != 2 or values.dtype != torch.float32 or not values.is_contiguous() or values.device.type != "cpu":
        raise ValueError(f"values must be a contiguous float32 CPU matrix, got {values.dtype} {tuple(values.shape)} "
                         f"on {values.device}")
    rows, width = values.shape
    _kernels().drop_rows(values.detach().numpy(), _mask_view(mask_bytes, rows, width), _BYTE_SPREAD)
    return values


def keep_matmul(grad_h: torch.Tensor, mask_bytes: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """N = grad_hᵀ D for the (rows, width) 0/1 keep mask D of ``mask_bytes`` (bit i % 8 of byte i // 8 keeps flat
    element i), without building D or running a GEMM.

    The second GEMM of token_mlp's first-layer backward (N; see ``hidden_backward``): D is binary, so for every 4
    rows of grad_h the 16 subset sums of those rows are tabulated and each column adds the entries its keep bits
    pick ("method of four Russians", vtgkit.nn.fused_rows_kernels): ~2× faster than ``torch.mm`` at the official
    shapes (benchmarks/bench_fused_rows.py). Sums run in another order than a GEMM's: equal to float32 rounding
    (relative error ~3e-7 of the largest entry at 3750 rows, the GEMM's ~2e-7).
    Args: grad_h (rows, H) float32 on CPU; mask_bytes uint8 (≥ ceil(rows·width / 8),).
    Returns: (H, width) float32.
    """
    kernels = _kernels()
    if grad_h.dim() != 2 or grad_h.size(0) != rows or grad_h.dtype != torch.float32 or grad_h.device.type != "cpu":
        raise ValueError(f"grad_h must be a float32 CPU tensor of {rows} rows, got {grad_h.dtype} "
                         f"{tuple(grad_h.shape)} on {grad_h.device}")
    if rows < 1 or width < 1:
        raise ValueError(f"keep_matmul needs at least one row and one column, got rows {rows}, width {width}")
    mask = _mask_view(mask_bytes, rows, width)
    lanes = grad_h.size(1)
    padded_lanes = -(-lanes // kernels.KEEP_LANES) * kernels.KEEP_LANES
    grad = grad_h.detach()
    if padded_lanes != lanes:  # the kernel takes whole groups of KEEP_LANES columns: zero columns complete the last
        grad = F.pad(grad, (0, padded_lanes - lanes))
    groups = -(-rows // (8 * kernels.KEEP_BYTES))
    column_bytes = np.empty((groups * kernels.KEEP_BYTES, -(-width // 8) * 8), np.uint8)
    kernels.keep_column_bytes(mask, rows, width, column_bytes)
    out = torch.empty(padded_lanes, width)
    kernels.keep_products_compiled()(grad.contiguous().numpy(), column_bytes, rows, width, out.numpy())
    return out[:lanes] if padded_lanes != lanes else out


@functools.cache
def warm_up() -> None:
    """Compile (or load from the on-disk cache) the fp16 and fp32 variants once, e.g. before training starts."""
    tokens = torch.zeros(1, 2, 6, dtype=torch.float16)
    tef, ones = torch.zeros(1, 2), torch.ones(8)
    mask = torch.zeros(2, dtype=torch.uint8)
    for values in (tokens, tokens.float()):
        normalize_drop_rows(values, tef, 0, 1, ones, ones, 1e-5, mask)
        normalize_drop_rows(values, tef, 0, 1, None, None, 1e-5, mask)
        normalize_drop_rows(values, None, 0, 1, None, None, 1e-5, None)
        normalized_keep_rows(values, tef, 0, 1, 1e-5, mask)
    keep_matmul(torch.zeros(2, 1), mask, 2, 8)
