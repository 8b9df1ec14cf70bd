"""The numba input pass of the token MLP (vtgkit.nn.fused_rows) against the torch sequence it replaces."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vtgkit.nn import fused_rows
from vtgkit.nn.token_mlp import _chunk_input, _drop, keep_mask

EPS = 1e-5
needs_numba = pytest.mark.skipif(find_spec("numba") is None,
                                 reason="numba is not installed: vtgkit.nn.fused_rows is unavailable (torch path)")


def make_inputs(clips: int, per_clip: int, dims: int, with_tef: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    # an offset and a spread per token, as CLIP tokens have (checks the centred variance, not just unit rows)
    tokens = (torch.randn(clips, per_clip, dims, generator=generator) * 3 + 5).half()
    tef = torch.rand(clips, 2, generator=generator) if with_tef else None
    width = dims + (2 if with_tef else 0)
    gamma = torch.randn(width, generator=generator)
    beta = torch.randn(width, generator=generator)
    return tokens, tef, gamma, beta, width


def bits_as_keep(mask_bytes: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """Independent reading of the bit order: element i kept when bit i % 8 of byte i // 8 is set."""
    bits = np.unpackbits(mask_bytes.numpy(), bitorder="little")[: rows * width]
    return torch.from_numpy(bits.astype(bool)).view(rows, width)


def assert_dropped_like(got: torch.Tensor, want: torch.Tensor, keep: torch.Tensor) -> None:
    assert torch.equal(got[~keep], torch.zeros_like(got[~keep]))  # dropped: exactly +0
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-5, atol=1e-5)


@needs_numba
@pytest.mark.parametrize(("clips", "start", "stop", "per_clip", "dims", "with_tef"), [
    (5, 1, 4, 7, 768, True),   # 770 wide, odd row count: rows start mid-byte and the last byte is partial
    (4, 0, 3, 5, 768, False),  # tef None: 768 wide
    (3, 0, 3, 3, 13, True),    # odd width, 9 rows
])
def test_forward_matches_layer_norm_then_keep_mask(clips, start, stop, per_clip, dims, with_tef) -> None:
    tokens, tef, gamma, beta, width = make_inputs(clips, per_clip, dims, with_tef)
    rows = (stop - start) * per_clip
    torch_generator, our_generator = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    x = _chunk_input(tokens, tef, start, stop, width)
    want, mean, rstd = torch.native_layer_norm(x, [width], gamma, beta, EPS)
    mask = keep_mask(rows, width, 0.5, torch_generator)
    _drop(want, mask)

    mask_bytes = fused_rows.draw_mask_bytes(rows, width, our_generator)
    got, got_mean, got_rstd = fused_rows.normalize_drop_rows(tokens, tef, start, stop, gamma, beta, EPS, mask_bytes)
    keep = bits_as_keep(mask_bytes, rows, width)
    assert torch.equal(keep, mask != 0)  # same random stream, same bit order as keep_mask
    assert torch.equal(torch_generator.get_state(), our_generator.get_state())  # same number of draws
    assert_dropped_like(got, want, keep)
    torch.testing.assert_close(got_mean, mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_rstd, rstd, rtol=1e-5, atol=0)


@needs_numba
def test_every_bit_of_a_partial_last_byte_counts() -> None:
    tokens, tef, gamma, beta, width = make_inputs(1, 3, 9, True)  # 3 × 11 = 33 elements: last byte holds 1 bit
    rows, want = 3, F.layer_norm(_chunk_input(tokens, tef, 0, 1, width), [width], gamma, beta, EPS)
    for pattern in (0x00, 0xFF, 0xA5, 0x5A):
        mask_bytes = torch.full((5,), pattern, dtype=torch.uint8)
        mask_bytes[-1] = 0xFF  # the last element's bit (bit 0) set, and the bits past the end too
        got = fused_rows.normalize_drop_rows(tokens, tef, 0, 1, gamma, beta, EPS, mask_bytes)[0]
        keep = bits_as_keep(mask_bytes, rows, width)
        assert bool(keep[-1, -1])
        assert_dropped_like(got, want, keep)
    mask_bytes[-1] = 0xFE  # only the last element's bit cleared
    got = fused_rows.normalize_drop_rows(tokens, tef, 0, 1, gamma, beta, EPS, mask_bytes)[0]
    keep = bits_as_keep(mask_bytes, rows, width)
    assert not bool(keep[-1, -1])
    assert_dropped_like(got, want, keep)


@needs_numba
def test_no_mask_float32_and_strided_tokens() -> None:
    tokens, tef, gamma, beta, width = make_inputs(4, 6, 20, True)
    want = F.layer_norm(_chunk_input(tokens, tef, 1, 4, width), [width], gamma, beta, EPS)
    strided = torch.zeros(4, 6, 40, dtype=torch.float16)[..., ::2]
    strided.copy_(tokens)
    for source in (tokens, tokens.float(), strided):
        got = fused_rows.normalize_drop_rows(source, tef, 1, 4, gamma, beta, EPS, None)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    plain = F.layer_norm(_chunk_input(tokens, tef, 1, 4, width), [width], None, None, EPS)
    torch.testing.assert_close(fused_rows.normalize_drop_rows(tokens, tef, 1, 4, None, None, EPS, None)[0], plain,
                               rtol=1e-5, atol=1e-5)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_a_layer_sliced_out_of_a_cache_is_read_in_place_with_the_same_bits(dtype: torch.dtype) -> None:
    # training's layout: layer k of a (B, T, K, P, Dv) cache, reshaped to (B·T, P, Dv): a strided view
    generator = torch.Generator().manual_seed(5)
    cache = (torch.randn(2, 3, 4, 5, 24, generator=generator) * 3 + 1).to(dtype)
    view = cache[:, :, 2].reshape(6, 5, 24)
    assert not view.is_contiguous() and view.data_ptr() != view.contiguous().data_ptr()
    dense = view.contiguous()
    tef = torch.rand(6, 2, generator=generator)
    gamma, beta = torch.randn(26, generator=generator), torch.randn(26, generator=generator)
    for start, stop in ((0, 6), (1, 4), (5, 6)):
        rows = (stop - start) * 5
        mask_bytes = fused_rows.draw_mask_bytes(rows, 26, torch.Generator().manual_seed(stop))
        for got, want in zip(fused_rows.normalize_drop_rows(view, tef, start, stop, gamma, beta, EPS, mask_bytes),
                             fused_rows.normalize_drop_rows(dense, tef, start, stop, gamma, beta, EPS, mask_bytes),
                             strict=True):
            assert torch.equal(got, want)
        for got, want in zip(fused_rows.normalized_keep_rows(view, None, start, stop, EPS, mask_bytes[: rows * 3]),
                             fused_rows.normalized_keep_rows(dense, None, start, stop, EPS, mask_bytes[: rows * 3]),
                             strict=True):
            assert torch.equal(got, want)


@needs_numba
@pytest.mark.parametrize("with_tef", [True, False])
def test_backward_rows_for_the_m_n_form(with_tef: bool) -> None:
    tokens, tef, gamma, beta, width = make_inputs(5, 7, 30, with_tef, seed=3)
    rows, start, stop = 21, 2, 5
    mask_bytes = fused_rows.draw_mask_bytes(rows, width, torch.Generator().manual_seed(11))
    keep = bits_as_keep(mask_bytes, rows, width)
    x = _chunk_input(tokens, tef, start, stop, width)
    plain, mean, rstd = torch.native_layer_norm(x, [width], None, None, EPS)

    # (b) x̂ ⊙ D and D for the M/N form
    normalized, kept, got_mean, got_rstd = fused_rows.normalized_keep_rows(tokens, tef, start, stop, EPS, mask_bytes)
    assert torch.equal(kept, keep.float())
    assert_dropped_like(normalized, plain, keep)
    torch.testing.assert_close(got_rstd, rstd, rtol=1e-5, atol=0)
    no_affine = fused_rows.normalize_drop_rows(tokens, tef, start, stop, None, None, EPS, mask_bytes)[0]
    assert torch.equal(no_affine, normalized)  # the forward kernel without γ, β gives the same x̂ ⊙ D



@needs_numba
@pytest.mark.parametrize(("rows", "lanes", "width"), [
    (3750 // 25, 256, 770),  # official width; 150 rows: the last group of 64 rows is partial
    (67, 40, 768),  # rows not a multiple of 8 (last byte row partial), lanes not a multiple of 32
    (9, 8, 13),  # odd width: a row's bits start mid-byte, the last column byte is partial
    (1, 3, 1),
    (128, 32, 17),  # whole groups
])
def test_keep_matmul_matches_the_gemm_with_the_0_1_mask(rows: int, lanes: int, width: int) -> None:
    generator = torch.Generator().manual_seed(rows + width)
    grad = torch.randn(rows, lanes, generator=generator)
    mask_bytes = fused_rows.draw_mask_bytes(rows, width, generator)
    keep = bits_as_keep(mask_bytes, rows, width)
    want = grad.double().t() @ keep.double()  # exact reference; float32 sums only differ by rounding
    got = fused_rows.keep_matmul(grad, mask_bytes, rows, width)
    assert got.shape == (lanes, width) and got.dtype == torch.float32
    scale = float(want.abs().max().clamp_min(1.0))
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6 * scale)
    gemm = torch.mm(grad.t(), keep.float()).double()  # the GEMM's own error, for scale: same order
    assert (got.double() - want).abs().max() <= 8 * (gemm - want).abs().max() + 1e-6 * scale


@needs_numba
def test_keep_matmul_reads_only_the_mask_bits_of_its_elements() -> None:
    rows, width = 11, 13  # 143 bits: the last of 18 bytes holds 7 of them
    grad = torch.arange(rows * 32, dtype=torch.float32).view(rows, 32) / 7
    for pattern in (0x00, 0xFF, 0x96):
        mask_bytes = torch.full((40,), pattern, dtype=torch.uint8)
        mask_bytes[18:] = 0xFF  # bytes past the mask: never read as keep bits
        mask_bytes[17] |= 0x80  # the bit past the last element
        keep = bits_as_keep(mask_bytes, rows, width)
        got = fused_rows.keep_matmul(grad, mask_bytes, rows, width)
        torch.testing.assert_close(got.double(), grad.double().t() @ keep.double(), rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="at least 18 bytes"):
        fused_rows.keep_matmul(grad, mask_bytes[:17], rows, width)
    with pytest.raises(ValueError, match="float32 CPU tensor of 11 rows"):
        fused_rows.keep_matmul(grad[:10], mask_bytes, rows, width)
    with pytest.raises(ValueError, match="float32 CPU tensor"):
        fused_rows.keep_matmul(grad.double(), mask_bytes, rows, width)


@needs_numba
def test_bad_inputs_are_refused() -> None:
    tokens, tef, gamma, beta, width = make_inputs(2, 3, 6, True)
    with pytest.raises(ValueError, match="at least 6 bytes"):
        fused_rows.normalize_drop_rows(tokens, tef, 0, 2, gamma, beta, EPS, torch.zeros(4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="clip range"):
        fused_rows.normalize_drop_rows(tokens, tef, 1, 3, gamma, beta, EPS, None)
    with pytest.raises(ValueError, match="gamma must have shape"):
        fused_rows.normalize_drop_rows(tokens, None, 0, 2, gamma, beta, EPS, None)
    with pytest.raises(ValueError, match="both be given"):
        fused_rows.normalize_drop_rows(tokens, tef, 0, 2, gamma, None, EPS, None)
    with pytest.raises(ValueError, match="needs the mask bytes"):
        fused_rows.normalized_keep_rows(tokens, tef, 0, 2, EPS, None)


def test_without_numba_the_caller_is_told_to_keep_the_torch_path() -> None:
    script = ("import sys; sys.modules['numba'] = None\n"
              "import torch\n"
              "from vtgkit.nn import fused_rows\n"
              "assert not fused_rows.available()\n"
              "try:\n"
              "    fused_rows.normalize_drop_rows(torch.zeros(1, 2, 3).half(), None, 0, 1, None, None, 1e-5, None)\n"
              "except RuntimeError as error:\n"
              "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "needs numba" in result.stdout
    assert fused_rows.available() == (find_spec("numba") is not None)


@pytest.mark.parametrize("rows, width", [(37, 256), (5, 13), (1, 7)])
def test_drop_rows_zeroes_exactly_what_the_int32_mask_drops(rows: int, width: int) -> None:
    values = torch.randn(rows, width)
    mask_bytes = fused_rows.draw_mask_bytes(rows, width, torch.Generator().manual_seed(rows + width))
    expected = _drop(values.clone(), keep_mask(rows, width, 0.5, torch.Generator().manual_seed(rows + width)))
    got = fused_rows.drop_rows(values.clone(), mask_bytes)
    assert torch.equal(got, expected)
    assert (got == 0).any() and (got != 0).any()


def test_drop_rows_refuses_a_short_mask_or_a_strided_matrix() -> None:
    mask_bytes = fused_rows.draw_mask_bytes(4, 8, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="at least 8 bytes"):
        fused_rows.drop_rows(torch.randn(8, 8), mask_bytes[:4])
    with pytest.raises(ValueError, match="contiguous float32"):
        fused_rows.drop_rows(torch.randn(8, 4).t(), mask_bytes)
