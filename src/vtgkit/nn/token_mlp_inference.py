"""Inference form of the token MLP (LayerNorm → Dropout → Linear → ReLU → LayerNorm → Dropout → Linear) that can stop
before its last Linear.

Why: a consumer that only takes linear maps of the output over the tokens (R²-Tuning's spatial pooling: scores against
a key and attention-weighted sums with weights summing to 1) can apply the last Linear after that reduction, on fewer
rows (exact algebra, see ``R2Block.pool_tokens_fast``). The rows go in chunks from the fp16 → fp32 copy (the per-clip
tef written alongside, no concatenation) through the first LayerNorm and the first GEMM (oneDNN, ReLU fused) to the
second LayerNorm while they are in cache: ~1k tokens with one intra-op thread (:mod:`vtgkit.nn.core_split`: no
thread barrier per op to amortise), 8k with more. Dropout is not applied (eval mode); the training form is
:mod:`vtgkit.nn.token_mlp`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.fast_linear import fast_linear

ROWS_PER_CHUNK = 1024  # 1024 × 770 fp32 = 3 MiB: in the L3 slice next to the core; 256–2048 measured alike
LARGE_ROWS_PER_CHUNK = 8192  # with several intra-op threads (as vtgkit.nn.token_mlp: stays in the 32 MiB L3)


def token_mlp_hidden(
    tokens: torch.Tensor, tef: torch.Tensor | None, mlp: nn.Sequential, rows_per_chunk: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The token MLP up to its second LayerNorm: u = LN2(ReLU(W1 · LN1([tokens, tef]) + b1)).

    Args:
        tokens: (N, P, Dv) any float dtype and strides (e.g. one layer of the fp16 cache).
        tef: (N, 2) appended to every token of row n, or None.
        mlp: (LayerNorm, Dropout, Linear, ReLU, LayerNorm, Dropout, Linear); its dropouts are not applied.
        rows_per_chunk: tokens per chunk (whole rows of P tokens, at least one row); default ROWS_PER_CHUNK with one
            intra-op thread, else LARGE_ROWS_PER_CHUNK (fewer ops, fewer thread barriers).
        out: optional (N, P, D) float32 to write into.
    Returns:
        (N, P, D) float32 (``out`` when given); ``mlp[6]`` applied to it gives the MLP's output.
    """
    if rows_per_chunk is None:
        rows_per_chunk = ROWS_PER_CHUNK if torch.get_num_threads() == 1 else LARGE_ROWS_PER_CHUNK
    norm1, _, linear1, _, norm2, _, _ = mlp
    num_rows, num_tokens, in_dims = tokens.shape
    width = linear1.weight.size(1)
    if width != in_dims + (0 if tef is None else tef.size(-1)):
        raise ValueError(f"token MLP input width {width} does not match tokens {in_dims} + tef")
    step = max(1, rows_per_chunk // num_tokens)
    if num_rows == 0 and out is None:
        out = torch.empty(0, num_tokens, linear1.weight.size(0), device=tokens.device)
    for start in range(0, num_rows, step):
        stop = min(start + step, num_rows)
        x = torch.empty(stop - start, num_tokens, width, dtype=torch.float32, device=tokens.device)
        x[..., :in_dims].copy_(tokens[start:stop])
        if tef is not None:
            x[..., in_dims:].copy_(tef[start:stop, None, :].expand(-1, num_tokens, -1))
        x = F.layer_norm(x.view(-1, width), [width], norm1.weight, norm1.bias, norm1.eps)
        h = fast_linear(x, linear1.weight, linear1.bias, relu=True)
        h = F.layer_norm(h, [h.size(1)], norm2.weight, norm2.bias, norm2.eps).view(stop - start, num_tokens, -1)
        if out is None and start == 0 and stop == num_rows:  # one chunk: no copy
            return h
        if out is None:
            out = torch.empty(num_rows, num_tokens, h.size(-1), device=tokens.device)
        out[start:stop] = h
    assert out is not None
    return out


def token_mlp_output(hidden: torch.Tensor, mlp: nn.Sequential) -> torch.Tensor:
    """The MLP's last Linear on :func:`token_mlp_hidden`'s output (any leading shape)."""
    linear2 = mlp[6]
    return fast_linear(hidden, linear2.weight, linear2.bias)
