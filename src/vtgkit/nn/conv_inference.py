"""GEMM forms of the temporal pyramid (:class:`ConvPyramid`) and the shared convolution heads (:class:`ConvHead`),
through oneDNN at inference (vtgkit.nn.fast_linear; plain ``F.linear`` under autograd, which R²-Tuning's fused
training path also uses: the many small convolutions cost ~1.5× their GEMMs forward and backward).

Why: at batch 1 these are 1-D convolutions over a few dozen time steps, which torch runs through its slow im2col path
(~1 ms a call, 20+ calls per forward on the R²-Tuning sequential tail). Here a stride-2 kernel-2 convolution is a
GEMM on the sequence reshaped to (T/2, 2·C), and the heads, shared by all pyramid levels, run once over the levels
laid end to end with k // 2 zero rows between them: the zero rows are exactly the per-level zero padding, and the
hidden rows there are zeroed before the second convolution, as the per-level padding would be. Same math as the
modules up to float summation order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.nn.fast_linear import fast_linear
from vtgkit.nn.heads import ConvHead
from vtgkit.nn.pyramid import ConvPyramid


def _conv_weight(conv: nn.Conv1d) -> torch.Tensor:
    """(C_out, C_in, k) → (C_out, k·C_in), matching inputs laid out as k consecutive time steps of C_in each."""
    return conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)


def pyramid_fast(
    pyramid: ConvPyramid, x: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """:meth:`ConvPyramid.forward` (same arguments, outputs and in-place ReLU of ``x`` for stride 1) with each
    [Conv1d(k=2, s=2) → LayerNorm → ReLU] stage as a GEMM. Inference only (no autograd)."""
    batch, num_clips, dims = x.shape
    levels, masks = [], []
    for stride, block in zip(pyramid.strides, pyramid.blocks, strict=True):
        if num_clips < stride:
            continue
        if stride == 1:
            levels.append(block(x))  # the in-place ReLU: later branches see ReLU(x), as in the module
        else:
            out = x
            for index in range(0, len(block), 5):
                conv, norm = block[index + 1], block[index + 3]
                length = out.size(1) // 2
                out = fast_linear(out[:, : 2 * length].reshape(batch, length, 2 * dims), _conv_weight(conv), conv.bias)
                out = F.layer_norm(out, [dims], norm.weight, norm.bias, norm.eps).relu_()
            levels.append(out)
        if mask is not None:
            if stride == 1:
                masks.append(mask)
            else:
                masks.append(F.max_pool1d(mask.unsqueeze(1).float(), stride, stride).squeeze(1).to(mask.dtype))
    return levels, (masks if mask is not None else None)


def heads_supported(head: ConvHead) -> bool:
    """Odd kernels with 'same' zero padding, stride 1, no dilation or groups (what :func:`heads_fast` assumes)."""
    convs = (head.module[1], head.module[3])
    return all(c.kernel_size[0] % 2 == 1 and c.padding[0] == c.kernel_size[0] // 2 and c.stride[0] == 1
               and c.dilation[0] == 1 and c.groups == 1 and c.padding_mode == "zeros" for c in convs)


def _windows(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, N, C) → (B, N − kernel + 1, kernel·C): row i holds rows i … i + kernel − 1."""
    length = x.size(1) - kernel + 1
    return torch.cat([x[:, j: j + length] for j in range(kernel)], dim=-1)


def heads_fast(
    heads: list[ConvHead], levels: list[torch.Tensor], masks: list[torch.Tensor] | None
) -> list[torch.Tensor]:
    """Each head on every level, as ``torch.cat([head(level, mask) for level, mask in ...], dim=1)`` would give.

    Args:
        heads: ConvHeads with the same kernel size and input width (:func:`heads_supported`).
        levels: (B, n_l, C) per level.
        masks: (B, n_l) 1/0 per level (rows beyond a sample's length are zeroed before each conv), or None.
    Returns:
        per head (B, Σ n_l, C_out).
    """
    kernel = heads[0].module[1].kernel_size[0]
    pad = kernel // 2
    batch, dims = levels[0].size(0), levels[0].size(2)
    gap = levels[0].new_zeros(batch, pad, dims)
    pieces, keep_pieces = [gap], [levels[0].new_zeros(batch, pad)]
    for index, level in enumerate(levels):
        keep = levels[0].new_ones(batch, level.size(1)) if masks is None else masks[index].to(level.dtype)
        pieces += [level if masks is None else level * keep[..., None], gap]
        keep_pieces += [keep, keep_pieces[0]]
    sequence = torch.cat(pieces, dim=1)  # (B, N, C): levels with zero rows between and around them
    keep = torch.cat(keep_pieces, dim=1)[:, pad: sequence.size(1) - pad, None]  # (B, N − 2·pad, 1), per output row
    weight = torch.cat([_conv_weight(head.module[1]) for head in heads])
    bias = torch.cat([head.module[1].bias for head in heads])
    hidden = fast_linear(_windows(sequence, kernel), weight, bias, relu=True) * keep  # padding and gaps zeroed
    hidden = F.pad(hidden, (0, 0, pad, pad))
    rows = _level_rows(levels, pad, hidden.device)
    outputs, start = [], 0
    for head in heads:
        conv = head.module[3]
        width = conv.in_channels
        out = fast_linear(_windows(hidden[..., start: start + width], kernel), _conv_weight(conv), conv.bias)
        outputs.append(out[:, rows])
        start += width
    return outputs


def _level_rows(levels: list[torch.Tensor], pad: int, device: torch.device) -> torch.Tensor:
    """Indices of the level rows among the output rows of the laid-out sequence (row i = position i + pad)."""
    index, position = [], 0
    for level in levels:
        index.append(torch.arange(position, position + level.size(1), device=device))
        position += level.size(1) + pad
    return torch.cat(index)
