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
