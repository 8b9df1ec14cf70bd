"""The token MLP fused with the spatial pooling (vtgkit.nn.token_pool) against the token MLP's u pooled by plain ops."""

from __future__ import annotations

import pytest
import torch
from tests.nn.test_token_mlp import make_mlp

from vtgkit.nn import token_mlp as token_mlp_module
from vtgkit.nn.token_mlp import token_mlp_before_output
from vtgkit.nn.token_pool import attention_pool, token_mlp_pool

BATCH, CLIPS, TOKENS, DV, DIMS, QUERIES = 3, 7, 5, 12, 8, 4


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 4 clips per chunk over videos of 7 clips: most chunks span two videos, the last one is ragged
    monkeypatch.setattr(token_mlp_module, "ROWS_PER_CHUNK", 4 * TOKENS)


def inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(BATCH, CLIPS, TOKENS, DV, generator=generator).half()
    tef = torch.rand(BATCH, CLIPS, 2, generator=generator)
    queries = torch.randn(BATCH, QUERIES, DIMS, generator=generator)
    bias = torch.randn(BATCH, QUERIES, 1, generator=generator)
    weights = (torch.randn(BATCH, CLIPS, QUERIES, DIMS, generator=generator),
               torch.randn(BATCH, CLIPS, DIMS, generator=generator))
    return tokens, tef, queries, bias, weights


def run(fused: bool, mlp, tokens, tef, queries, bias, weights, dropout: bool, seed: int = 1, use=("pooled", "cls")):  # noqa: ANN001
    """Outputs and the gradients of every MLP parameter, the queries and the bias, for the same dropout seed."""
    mlp.zero_grad()
    queries = queries.clone().requires_grad_()
    bias = bias.clone().requires_grad_()
    torch.manual_seed(seed)
    if fused:
        pooled, cls = token_mlp_pool(tokens, tef, mlp, dropout, queries, bias)
    else:  # the same masks: token_mlp_before_output draws the same seed and chunks as token_mlp_pool
        u, cls = token_mlp_before_output(tokens, tef, mlp, dropout)
        pooled = attention_pool(u, queries, bias)
    loss = 0
    if "pooled" in use:
        loss = loss + (pooled * weights[0]).sum()
    if "cls" in use:
        loss = loss + (cls * weights[1]).sum()
    loss.backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in list(mlp.parameters())[:6]]
    grads += [torch.zeros_like(t) if t.grad is None else t.grad for t in (queries, bias)]
    return [pooled.detach(), cls.detach(), *grads]


@pytest.mark.parametrize("p", [0.5, 0.3])
@pytest.mark.parametrize("dropout", [False, True], ids=["eval", "dropout"])
def test_matches_the_token_mlp_pooled_by_plain_ops(p: float, dropout: bool) -> None:
    mlp = make_mlp(DV + 2, DIMS, p)
    tokens, tef, queries, bias, weights = inputs()
    expected = run(False, mlp, tokens, tef, queries, bias, weights, dropout)
    got = run(True, mlp, tokens, tef, queries, bias, weights, dropout)
    for index, (have, want) in enumerate(zip(got, expected, strict=True)):
        # rtol 1e-4: the weight-gradient sums run chunk by chunk
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4, msg=f"output {index}")
    if dropout:
        assert (got[1] == 0).any()  # dropout did act on u


def test_eval_matches_the_module_sequence() -> None:
    """Without dropout the pooled rows are the pooling of the plain module sequence's u (independent of chunking)."""
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, queries, bias, _ = inputs(2)
    pooled, cls = token_mlp_pool(tokens, tef, mlp, False, queries, bias)
    norm1, _, linear1, _, norm2, _, _ = mlp
    x = torch.cat((tokens.float(), tef[:, :, None].expand(-1, -1, TOKENS, -1)), dim=-1)
    u = norm2(torch.relu(linear1(norm1(x))))
    scores = torch.einsum("blh,btph->btlp", queries, u) + bias[:, None]
    want = torch.einsum("btlp,btph->btlh", scores.softmax(-1), u)
    torch.testing.assert_close(pooled, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, u[:, :, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use", [("pooled",), ("cls",)], ids=["pooled_only", "cls_only"])
def test_one_output_unused(use: tuple[str, ...]) -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, queries, bias, weights = inputs(3)
    expected = run(False, mlp, tokens, tef, queries, bias, weights, True, use=use)
    got = run(True, mlp, tokens, tef, queries, bias, weights, True, use=use)
    for index, (have, want) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4, msg=f"output {index}")


def test_two_thread_chunk_split_is_bitwise_the_one_thread_result() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, queries, bias, weights = inputs(4)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the autouse fixture restores the count
        runs.append(run(True, mlp, tokens, tef, queries, bias, weights, True, seed=5))
    for index, (one, two) in enumerate(zip(*runs, strict=True)):
        assert torch.equal(one, two), index
