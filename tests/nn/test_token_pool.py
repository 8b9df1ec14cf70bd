"""The token MLP fused with the spatial pooling, the last Linear and the max over the queries (vtgkit.nn.token_pool)
against the token MLP's u taken through the same steps by plain ops."""

from __future__ import annotations

import pytest
import torch
from tests.nn.test_token_mlp import make_mlp

from vtgkit.nn import token_mlp as token_mlp_module
from vtgkit.nn.token_mlp import token_mlp_before_output
from vtgkit.nn.token_pool import (
    DeferredTokenMLPGradients,
    PoolingRun,
    attention_pool,
    max_over_queries,
    token_mlp_pool,
)

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
    q = torch.randn(BATCH, QUERIES, DIMS, generator=generator)
    weights = (torch.randn(BATCH, CLIPS, DIMS, generator=generator),
               torch.randn(BATCH, CLIPS, DIMS, generator=generator))
    return tokens, tef, (queries, bias, q), weights


def with_tied_queries(pool: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The last two queries of every sample equal (as the official padding makes padded query tokens): their rows are
    tied for the max in every clip and channel where they win it."""
    queries, bias, q = (t.clone() for t in pool)
    for t in (queries, bias, q):
        t[:, -1] = t[:, -2]
    q[:, -2:] += 5.0  # make the tied pair win the max nearly everywhere
    return queries, bias, q


def run(fused: bool, mlp, tokens, tef, pool, weights, dropout: bool, seed: int = 1, use=("best", "cls"),  # noqa: ANN001
        query_mask=None):  # noqa: ANN001
    """Outputs and the gradients of every MLP parameter, the queries, bias and q, for the same dropout seed."""
    mlp.zero_grad()
    pool = [t.clone().requires_grad_() for t in pool]
    torch.manual_seed(seed)
    if fused:
        best, cls = token_mlp_pool(tokens, tef, mlp, dropout, *pool, query_mask)
    else:  # the same masks: token_mlp_before_output draws the same seed and chunks as token_mlp_pool
        u, cls = token_mlp_before_output(tokens, tef, mlp, dropout)
        best = max_over_queries(attention_pool(u, pool[0], pool[1]), mlp[-1], pool[2], query_mask)
    loss = 0
    if "best" in use:
        loss = loss + (best * weights[0]).sum()
    if "cls" in use:
        loss = loss + (cls * weights[1]).sum()
    loss.backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in mlp.parameters()]
    grads += [torch.zeros_like(t) if t.grad is None else t.grad for t in pool]
    return [best.detach(), cls.detach(), *grads]


def assert_same(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for index, (have, want) in enumerate(zip(got, expected, strict=True)):
        # rtol 1e-4: the weight-gradient sums run chunk by chunk
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4, msg=f"output {index}")


@pytest.mark.parametrize("p", [0.5, 0.3])
@pytest.mark.parametrize("dropout", [False, True], ids=["eval", "dropout"])
def test_matches_the_token_mlp_pooled_by_plain_ops(p: float, dropout: bool) -> None:
    mlp = make_mlp(DV + 2, DIMS, p)
    tokens, tef, pool, weights = inputs()
    expected = run(False, mlp, tokens, tef, pool, weights, dropout)
    got = run(True, mlp, tokens, tef, pool, weights, dropout)
    assert_same(got, expected)
    if dropout:
        assert (got[1] == 0).any()  # dropout did act on u


def test_query_mask_leaves_masked_queries_out() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(5)
    query_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    expected = run(False, mlp, tokens, tef, pool, weights, True, query_mask=query_mask)
    got = run(True, mlp, tokens, tef, pool, weights, True, query_mask=query_mask)
    assert_same(got, expected)
    unmasked = run(True, mlp, tokens, tef, pool, weights, True)
    assert not torch.equal(got[0], unmasked[0])  # the mask did change the max
    grad_q = got[-1]
    assert torch.all(grad_q[1, 2:] == 0) and torch.all(grad_q[2, 1:] == 0)  # no gradient into masked queries


def test_ties_share_the_gradient_as_amax_does() -> None:
    """Equal queries (the official padding's padded query tokens) tie for the max: each gets half the gradient."""
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(6)
    pool = with_tied_queries(pool)
    expected = run(False, mlp, tokens, tef, pool, weights, True)
    got = run(True, mlp, tokens, tef, pool, weights, True)
    assert_same(got, expected)
    grad_q = got[-1]
    torch.testing.assert_close(grad_q[:, -1], grad_q[:, -2], atol=0, rtol=0)  # split evenly, not all to one
    assert grad_q[:, -2:].abs().sum() > 0


def test_eval_matches_the_module_sequence() -> None:
    """Without dropout the result is the plain module sequence's u pooled, mapped and maxed (independent of
    chunking)."""
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, (queries, bias, q), _ = inputs(2)
    best, cls = token_mlp_pool(tokens, tef, mlp, False, queries, bias, q)
    norm1, _, linear1, _, norm2, _, linear2 = mlp
    x = torch.cat((tokens.float(), tef[:, :, None].expand(-1, -1, TOKENS, -1)), dim=-1)
    u = norm2(torch.relu(linear1(norm1(x))))
    scores = torch.einsum("blh,btph->btlp", queries, u) + bias[:, None]
    v = linear2(u)  # the last Linear on every token, as the official pooling does
    want = (torch.einsum("btlp,btph->btlh", scores.softmax(-1), v) + q[:, None]).amax(dim=2)
    torch.testing.assert_close(best, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, u[:, :, 0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use", [("best",), ("cls",)], ids=["best_only", "cls_only"])
def test_one_output_unused(use: tuple[str, ...]) -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(3)
    expected = run(False, mlp, tokens, tef, pool, weights, True, use=use)
    got = run(True, mlp, tokens, tef, pool, weights, True, use=use)
    assert_same(got, expected)


def test_two_thread_chunk_split_is_bitwise_the_one_thread_result() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(4)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the autouse fixture restores the count
        runs.append(run(True, mlp, tokens, tef, with_tied_queries(pool), weights, True, seed=5,
                        query_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]])))
    for index, (one, two) in enumerate(zip(*runs, strict=True)):
        assert torch.equal(one, two), index


def run_two_layers(mlp, tokens, tef, pool, weights, deferred: bool, seed: int = 7):  # noqa: ANN001
    """Two pooling calls on the same MLP (two R² layers), their weight gradients deferred to one collecting node or
    not; returns every gradient."""
    mlp.zero_grad()
    pool = [t.clone().requires_grad_() for t in pool]
    torch.manual_seed(seed)
    gradients = DeferredTokenMLPGradients(mlp, True) if deferred else None
    loss = 0
    for layer in range(2):
        best, cls = token_mlp_pool(tokens[:, :, layer], tef, mlp, True, *pool, deferred=gradients)
        loss = loss + (best * weights[0] * (layer + 1)).sum() + (cls * weights[1]).sum()
    loss.backward()
    return [p.grad.clone() for p in mlp.parameters()] + [t.grad for t in pool]


def test_deferred_weight_gradients_equal_the_per_call_ones() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(7)
    tokens = torch.stack((tokens, tokens.flip(1)), dim=2)  # (B, T, 2 layers, P, Dv)
    expected = run_two_layers(mlp, tokens, tef, pool, weights, deferred=False)
    for threads in (1, 2):
        torch.set_num_threads(threads)  # 2: the weight-gradient halves run on the helper thread
        got = run_two_layers(mlp, tokens, tef, pool, weights, deferred=True)
        assert torch.get_num_threads() == threads  # the caller's intra-op threads are back after backward
        assert_same(got, expected)
        assert all(grad.abs().sum() > 0 for grad in got[:6])


def test_deferred_two_thread_run_is_bitwise_the_one_thread_run() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(8)
    tokens = torch.stack((tokens, tokens.flip(1)), dim=2)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs.append(run_two_layers(mlp, tokens, tef, pool, weights, deferred=True))
    for index, (one, two) in enumerate(zip(*runs, strict=True)):
        assert torch.equal(one, two), index


def test_deferred_gradients_refuse_another_dropout_rate() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, _ = inputs(9)
    with pytest.raises(ValueError, match="dropout 0.5"):
        token_mlp_pool(tokens, tef, mlp, False, *pool, deferred=DeferredTokenMLPGradients(mlp, True))


def test_deferred_gradients_of_a_retained_graph_backward_twice() -> None:
    """A second backward of a retained graph defers again and adds the same gradients (the collecting node starts a
    new round of chunk work)."""
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(10)
    torch.set_num_threads(2)
    mlp.zero_grad()
    gradients = DeferredTokenMLPGradients(mlp, True)
    best, cls = token_mlp_pool(tokens, tef, mlp, True, *pool, deferred=gradients)
    loss = (best * weights[0]).sum() + (cls * weights[1]).sum()
    loss.backward(retain_graph=True)
    once = [p.grad.clone() for p in mlp.parameters()]
    loss.backward()
    assert torch.get_num_threads() == 2
    for first, total in zip(once, mlp.parameters(), strict=True):
        torch.testing.assert_close(total.grad, 2 * first, atol=1e-5, rtol=1e-5)


def run_layers_in_one_run(mlp, tokens, tef, pool, weights, use_run: bool, seed: int = 11):  # noqa: ANN001
    """Two layers pooled call by call or as one PoolingRun (with a decoder-like step between the results); returns
    outputs and every gradient."""
    mlp.zero_grad()
    pool = [t.clone().requires_grad_() for t in pool]
    torch.manual_seed(seed)
    gradients = DeferredTokenMLPGradients(mlp, True)
    calls = [{"tokens": tokens[:, :, layer], "tef": tef, "mlp": mlp, "dropout": True, "queries": pool[0],
              "bias": pool[1], "q": pool[2], "query_mask": None, "deferred": gradients} for layer in range(2)]
    outputs = []
    if use_run:
        with PoolingRun(calls) as run:
            for layer in range(2):
                best, cls = run.result(layer)
                outputs += [torch.tanh(best), cls]  # work between the layers while the next one pools
    else:
        for call in calls:  # the same seed order: PoolingRun draws every call's seed when it is created
            best, cls = token_mlp_pool(**call)
            outputs += [torch.tanh(best), cls]
    loss = sum((out * weights[index % 2]).sum() for index, out in enumerate(outputs))
    loss.backward()
    return [out.detach() for out in outputs] + [p.grad.clone() for p in mlp.parameters()] + [t.grad for t in pool]


def test_pooling_run_equals_call_by_call_and_does_not_depend_on_threads() -> None:
    mlp = make_mlp(DV + 2, DIMS, 0.5)
    tokens, tef, pool, weights = inputs(12)
    tokens = torch.stack((tokens, tokens.flip(1)), dim=2)  # (B, T, 2 layers, P, Dv)
    expected = run_layers_in_one_run(mlp, tokens, tef, pool, weights, use_run=False)
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # 2: the pieces run on the caller and the helper thread
        runs.append(run_layers_in_one_run(mlp, tokens, tef, pool, weights, use_run=True))
        assert torch.get_num_threads() == threads
    for one, two, want in zip(*runs, expected, strict=True):
        assert torch.equal(one, two)
        torch.testing.assert_close(one, want, atol=0, rtol=0)  # the same pieces and sums: the same bits
