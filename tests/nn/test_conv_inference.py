"""Inference forms of the pyramid and the shared heads (vtgkit.nn.conv_inference) against the modules."""

from __future__ import annotations

import pytest
import torch

from vtgkit.nn.conv_inference import heads_fast, heads_supported, pyramid_fast
from vtgkit.nn.heads import ConvHead
from vtgkit.nn.pyramid import ConvPyramid


@pytest.mark.parametrize("num_clips", [1, 5, 11, 16])
@pytest.mark.parametrize("with_mask", [False, True])
def test_pyramid_fast_equals_the_module(num_clips: int, with_mask: bool) -> None:
    pyramid = ConvPyramid(8, (1, 2, 4, 8)).eval()
    x = torch.randn(2, num_clips, 8)
    mask = torch.ones(2, num_clips, dtype=torch.long)
    mask[1, num_clips // 2 + 1:] = 0
    with torch.inference_mode():
        expected_x = x.clone()
        expected, expected_masks = pyramid(expected_x, mask if with_mask else None)
        got, got_masks = pyramid_fast(pyramid, x, mask if with_mask else None)
    torch.testing.assert_close(x, expected_x)  # the stride-1 branch's in-place ReLU
    assert len(got) == len(expected)
    for level, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(level, reference, atol=1e-6, rtol=1e-5)
    if with_mask:
        for level_mask, reference in zip(got_masks, expected_masks, strict=True):
            assert torch.equal(level_mask, reference)
    else:
        assert got_masks is None


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("with_masks", [False, True])
def test_heads_fast_equals_per_level_heads(kernel_size: int, with_masks: bool) -> None:
    heads = [ConvHead(8, 1, kernel_size=kernel_size), ConvHead(8, 2, kernel_size=kernel_size)]
    assert all(heads_supported(head) for head in heads)
    lengths = [9, 4, 2, 1]
    levels = [torch.randn(3, n, 8) for n in lengths]
    masks = [torch.ones(3, n) for n in lengths]
    for mask in masks:
        mask[1, (mask.size(1) + 1) // 2:] = 0
        mask[2] = 0
    masks_arg = masks if with_masks else None
    with torch.inference_mode():
        got = heads_fast(heads, levels, masks_arg)
        for head, out in zip(heads, got, strict=True):
            expected = torch.cat([head(level, None if masks_arg is None else mask)
                                  for level, mask in zip(levels, masks, strict=True)], dim=1)
            torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_even_kernels_are_not_taken() -> None:
    assert not heads_supported(ConvHead(8, 1, kernel_size=2))
