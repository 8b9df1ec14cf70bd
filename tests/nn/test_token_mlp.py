"""The fused token MLP (vtgkit.nn.token_mlp) against the plain module sequence, with and without dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vtgkit.nn import token_mlp as token_mlp_module
from vtgkit.nn.token_mlp import chunk_generator, keep_mask, token_mlp, token_mlp_before_output


def make_mlp(width: int, dims: int, p: float) -> nn.Sequential:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.LayerNorm(width), nn.Dropout(p), nn.Linear(width, dims), nn.ReLU(inplace=True),
                        nn.LayerNorm(dims), nn.Dropout(p), nn.Linear(dims, dims))
    for module in mlp:
        if isinstance(module, nn.LayerNorm):
            nn.init.normal_(module.weight, 1.0, 0.1)
            nn.init.normal_(module.bias, 0.0, 0.1)
    return mlp


def reference(tokens: torch.Tensor, tef: torch.Tensor, mlp: nn.Sequential, masks=None) -> torch.Tensor:
    """The module sequence on the concatenated input; ``masks`` = (keep1, keep2) bool replace the Dropout draws."""
    norm1, drop1, linear1, _, norm2, _, linear2 = mlp
    x = torch.cat((tokens.float(), tef[:, :, None].expand(-1, -1, tokens.size(2), -1)), dim=-1)
    x = norm1(x.reshape(-1, x.size(-1)))
    if masks is not None:
        x = x * masks[0] / (1 - drop1.p)
    x = norm2(torch.relu(linear1(x)))
    if masks is not None:
        x = x * masks[1] / (1 - drop1.p)
    return linear2(x).view(*tokens.shape[:3], -1)


def gradients(run, mlp: nn.Sequential, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
    mlp.zero_grad()
    out, cls = run()
    ((out * weight).sum() + cls.sum()).backward()
    return out.detach(), cls.detach(), [p.grad.clone() for p in mlp.parameters()]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(token_mlp_module, "ROWS_PER_CHUNK", 24)  # several chunks, one ragged


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_forward_and_gradients_match_the_module_sequence(p: float) -> None:
    mlp = make_mlp(14, 8, p)
    tokens = torch.randn(2, 7, 5, 12).half()
    tef = torch.rand(2, 7, 2)
    weight = torch.randn(2, 7, 5, 8)

    def plain():
        out = reference(tokens, tef, mlp)
        return out, out[:, :, 0]

    expected = gradients(plain, mlp, weight)
    got = gradients(lambda: token_mlp(tokens, tef, mlp, dropout=False), mlp, weight)
    for want, have in zip([*expected[:2], *expected[2]], [*got[:2], *got[2]], strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)

    # Dropout: replay the masks from the seed token_mlp draws, chunk by chunk.
    state = torch.get_rng_state()
    got = gradients(lambda: token_mlp(tokens, tef, mlp, dropout=True), mlp, weight)
    torch.set_rng_state(state)
    seed = int(torch.randint(0, 2**62, (1,)).item())
    first, second = [], []
    for index, (start, stop) in enumerate(token_mlp_module._chunks(14, 5)):
        generator = chunk_generator(seed, index, torch.device("cpu"))
        first.append(keep_mask((stop - start) * 5, 14, p, generator) != 0)
        second.append(keep_mask((stop - start) * 5, 8, p, generator) != 0)
    masks = (torch.cat(first), torch.cat(second))

    def dropped():
        out = reference(tokens, tef, mlp, masks)
        return out, out[:, :, 0]

    expected = gradients(dropped, mlp, weight)
    for want, have in zip([*expected[:2], *expected[2]], [*got[:2], *got[2]], strict=True):
        # rtol 1e-4: the weight-gradient sums run chunk by chunk (a few elements differ by ~1e-5 relative)
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("use", ["tokens", "first"])
def test_before_output_gradients_with_one_output_unused(use: str) -> None:
    """Only u or only its first token reaching the loss (backward gets None for the other) still gives the module
    sequence's gradients."""
    mlp = make_mlp(14, 8, 0.5)
    tokens = torch.randn(2, 7, 5, 12).half()
    tef = torch.rand(2, 7, 2)
    weight = torch.randn(2, 7, 5, 8)

    def loss(u: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        return (u * weight).sum() if use == "tokens" else (first * weight[:, :, 0]).sum()

    mlp.zero_grad()
    loss(*token_mlp_before_output(tokens, tef, mlp, dropout=False)).backward()
    got = [p.grad.clone() for p in list(mlp.parameters())[:6]]
    mlp.zero_grad()
    norm1, _, linear1, _, norm2, _, _ = mlp
    x = torch.cat((tokens.float(), tef[:, :, None].expand(-1, -1, 5, -1)), dim=-1)
    u = norm2(torch.relu(linear1(norm1(x))))
    loss(u, u[:, :, 0]).backward()
    for want, have in zip([p.grad for p in list(mlp.parameters())[:6]], got, strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("p", [0.5, 0.35])
def test_keep_mask_rate(p: float) -> None:
    mask = keep_mask(1000, 77, p, torch.Generator().manual_seed(3))
    assert mask.dtype == torch.int32 and set(mask.unique().tolist()) <= {0, -1}
    kept = (mask != 0).float()
    assert abs(kept.mean().item() - (1 - p)) < 0.01
    assert abs(kept[:, :8].mean().item() - (1 - p)) < 0.02  # every bit position is used, none stuck
    assert kept[:, -1].std() > 0.4


def test_inference_needs_no_graph_and_matches() -> None:
    mlp = make_mlp(14, 8, 0.5).eval()
    tokens = torch.randn(3, 4, 5, 12).half()
    tef = torch.rand(3, 4, 2)
    with torch.inference_mode():
        out, cls = token_mlp(tokens, tef, mlp, dropout=False)
        expected = reference(tokens, tef, mlp)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, expected[:, :, 0], atol=1e-5, rtol=1e-5)


def test_unequal_dropout_rates_are_rejected() -> None:
    mlp = make_mlp(14, 8, 0.5)
    mlp[5].p = 0.1
    with pytest.raises(ValueError, match="one dropout rate"):
        token_mlp(torch.randn(1, 2, 3, 12), torch.rand(1, 2, 2), mlp, dropout=True)


def test_two_thread_chunk_split_is_bitwise_the_one_thread_result() -> None:
    """Chunks run two at a time on two threads (one intra-op thread each) or in order on one thread: the same bits
    (each chunk draws its own masks and sums its own weight gradients; partial sums are added in chunk order)."""
    mlp = make_mlp(14, 8, 0.5)
    tokens = torch.randn(3, 7, 5, 12).half()
    tef = torch.rand(3, 7, 2)
    weight = torch.randn(3, 7, 5, 8)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the autouse fixture restores the count
        torch.manual_seed(5)
        runs.append(gradients(lambda: token_mlp(tokens, tef, mlp, dropout=True), mlp, weight))
    for one, two in zip([*runs[0][:2], *runs[0][2]], [*runs[1][:2], *runs[1][2]], strict=True):
        assert torch.equal(one, two)


@pytest.mark.skipif(not token_mlp_module.fused_rows.available(), reason="numba is not installed: no fused pass")
def test_without_numba_the_torch_pass_gives_the_same_result_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numba input pass and the torch ops it replaces read the same mask bits: the same outputs and gradients
    (up to rounding), and the slower path is announced, not silent."""
    mlp = make_mlp(14, 8, 0.5)
    tokens = torch.randn(2, 7, 5, 12).half()
    tef = torch.rand(2, 7, 2)
    weight = torch.randn(2, 7, 5, 8)
    torch.manual_seed(3)
    fused = gradients(lambda: token_mlp(tokens, tef, mlp, dropout=True), mlp, weight)
    monkeypatch.setattr(token_mlp_module.fused_rows, "available", lambda: False)
    token_mlp_module._warn_no_numba.cache_clear()
    torch.manual_seed(3)
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        plain = gradients(lambda: token_mlp(tokens, tef, mlp, dropout=True), mlp, weight)
    token_mlp_module._warn_no_numba.cache_clear()
    for want, have in zip([*plain[:2], *plain[2]], [*fused[:2], *fused[2]], strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)
