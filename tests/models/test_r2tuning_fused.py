"""R²-Tuning's fused autograd path (fused token MLP + folded key projection) against the plain module path."""

from __future__ import annotations

import pytest
import torch
from tests.models.test_r2tuning import make_batch, tiny_model


def losses_and_grads(model, batch, fused: bool) -> tuple[dict, dict]:  # noqa: ANN001
    model.fused_training = fused
    model.zero_grad(set_to_none=True)
    losses = model.compute_losses(model(batch, official_padding=True), batch)
    losses["total"].backward()
    return ({k: v.detach() for k, v in losses.items()},
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})


@pytest.mark.parametrize("overrides", [{}, {"use_tef": False}, {"query_modulated_pooling": False}],
                         ids=["default", "no_tef", "no_pooling"])
def test_fused_losses_and_gradients_match_the_plain_path(overrides: dict) -> None:
    torch.manual_seed(0)
    model = tiny_model(**overrides).eval()  # dropout off: both paths compute the same function
    batch = make_batch(model.config, [8, 5, 3], [5, 3, 4])
    plain_losses, plain_grads = losses_and_grads(model, batch, fused=False)
    fused_losses, fused_grads = losses_and_grads(model, batch, fused=True)
    for name, value in plain_losses.items():
        torch.testing.assert_close(fused_losses[name], value, atol=1e-5, rtol=1e-5, msg=name)
    assert set(fused_grads) == set(plain_grads)  # v_map.bias keeps its (analytically zero) gradient
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_fused_training_step_with_dropout_is_reproducible() -> None:
    model = tiny_model().train()
    batch = make_batch(model.config, [8, 6], [5, 3])
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        _, grads = losses_and_grads(model, batch, fused=True)
        runs.append(grads)
    for name, grad in runs[0].items():
        assert torch.isfinite(grad).all(), name
        torch.testing.assert_close(runs[1][name], grad, atol=0, rtol=0, msg=name)
    torch.manual_seed(8)
    _, other = losses_and_grads(model, batch, fused=True)
    assert not torch.equal(other["adapter.video_map.2.weight"], runs[0]["adapter.video_map.2.weight"])


def test_bf16_autocast_falls_back_to_the_module_sequence() -> None:
    model = tiny_model().train()
    batch = make_batch(model.config, [8, 6], [5, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(batch)
    output.extras["video_emb"].float().sum().backward()
    grad = model.adapter.video_map[2].weight.grad
    assert grad is not None and torch.isfinite(grad).all()
