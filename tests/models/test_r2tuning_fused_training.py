"""R²-Tuning's fused training path: the folded pooling on the token MLP's pre-output u (with or without dropout), more
configurations against the plain module path, and the two-thread chunk split giving the one-thread results."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.models.test_r2tuning import make_batch, tiny_model
from tests.models.test_r2tuning_fused import losses_and_grads

from vtgkit.nn import token_mlp as token_mlp_module
from vtgkit.nn.token_pool import attention_pool, max_over_queries


def with_pooling_weight(model):  # noqa: ANN001, ANN201
    """The pooled term's weight tanh(scale) starts at 0, which cuts the pooling out of every gradient but scale's:
    give it a weight so that the comparisons cover the pooling's backward."""
    with torch.no_grad():
        model.adapter.scale.copy_(torch.linspace(0.4, 0.9, model.adapter.scale.numel()))
    return model


@pytest.mark.parametrize("overrides", [{"num_layers": 1}, {"num_layers": 3}, {"layer_order": "shallow_to_deep"}],
                         ids=["k1", "k3", "shallow_first"])
def test_fused_matches_the_plain_path_for_other_layer_counts(overrides: dict) -> None:
    torch.manual_seed(0)
    model = with_pooling_weight(tiny_model(**overrides).eval())  # dropout off: both paths compute the same function
    batch = make_batch(model.config, [8, 5, 3], [5, 3, 4], stored_layers=4)
    plain_losses, plain_grads = losses_and_grads(model, batch, fused=False)
    fused_losses, fused_grads = losses_and_grads(model, batch, fused=True)
    for name, value in plain_losses.items():
        torch.testing.assert_close(fused_losses[name], value, atol=1e-5, rtol=1e-5, msg=name)
    assert set(fused_grads) == set(plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("masked", [False, True], ids=["all_tokens", "query_mask"])
def test_folded_pooling_on_u_equals_pooling_on_v(masked: bool) -> None:
    """pool_tokens_folded of u pooled with pool_queries' queries and bias, then through max_over_queries, =
    pool_tokens(v = W2 u + b2) for any u, e.g. a dropout output (values and gradients w.r.t. u, q and every
    parameter involved)."""
    torch.manual_seed(0)
    block = tiny_model().adapter.train()
    last = block.video_map[-1]
    for parameter in (last.bias, block.v_map.bias, block.q_map.bias, block.scale):
        torch.nn.init.normal_(parameter, 0.0, 0.5)
    dims = block.config.hidden_dims
    u = F.dropout(torch.randn(2, 3, 5, dims), 0.5).requires_grad_()  # zeros and 2× scaled values, as in training
    q = torch.randn(2, 4, dims, requires_grad=True)
    query_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]) if masked else None
    weight = torch.randn(2, 3, dims)
    params = [last.weight, last.bias, block.v_map.weight, block.v_map.bias, block.q_map.weight, block.q_map.bias,
              block.scale]

    def grads(out: torch.Tensor) -> list[torch.Tensor]:
        return torch.autograd.grad((out * weight).sum(), [u, q, *params])

    reference = block.pool_tokens(last(u), q, 1, query_mask)
    best = max_over_queries(attention_pool(u, *block.pool_queries(q)), last, q, query_mask)
    folded = block.pool_tokens_folded(best, last(u[:, :, 0]), 1)
    torch.testing.assert_close(folded, reference, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads(folded), grads(reference), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_two_thread_chunk_split_matches_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """With dropout on and several token-MLP chunks, a training step with two intra-op threads (chunks two at a time,
    one per thread) gives the one-thread losses and gradients up to the rounding of the other ops' threading (the
    token MLP itself is bitwise equal: tests/nn/test_token_mlp.py)."""
    monkeypatch.setattr(token_mlp_module, "ROWS_PER_CHUNK", 10)  # two clips of P = 5 tokens per chunk
    model = with_pooling_weight(tiny_model().train())
    batch = make_batch(model.config, [9, 6, 3], [5, 3, 4])
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)  # the autouse fixture restores the count
        torch.manual_seed(3)
        runs.append(losses_and_grads(model, batch, fused=True))
    (losses_1, grads_1), (losses_2, grads_2) = runs
    for name, value in losses_1.items():
        torch.testing.assert_close(losses_2[name], value, atol=1e-6, rtol=1e-6, msg=name)
    for name, grad in grads_1.items():
        torch.testing.assert_close(grads_2[name], grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("official_padding", [True, False], ids=["official_padding", "per_sample"])
def test_fused_matches_the_plain_path_with_chunks_spanning_videos(
    monkeypatch: pytest.MonkeyPatch, official_padding: bool
) -> None:
    """Token-MLP chunks of 3 clips over padded videos of 7 clips (most chunks hold the end of one video and the start
    of the next), with query masks in the pooling (per-sample semantics) or without (official)."""
    monkeypatch.setattr(token_mlp_module, "ROWS_PER_CHUNK", 15)
    torch.manual_seed(0)
    model = with_pooling_weight(tiny_model().eval())
    batch = make_batch(model.config, [7, 4, 6], [5, 2, 3])

    plain_losses, plain_grads = losses_and_grads(model, batch, False, official_padding)
    fused_losses, fused_grads = losses_and_grads(model, batch, True, official_padding)
    for name, value in plain_losses.items():
        torch.testing.assert_close(fused_losses[name], value, atol=1e-5, rtol=1e-5, msg=name)
    assert set(fused_grads) == set(plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
