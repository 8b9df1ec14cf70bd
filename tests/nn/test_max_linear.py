"""vtgkit.nn.max_linear: the Linear's backward from the max's sparse gradient equals the dense GEMMs."""

from __future__ import annotations

import pytest
import torch

from vtgkit.nn import max_linear
from vtgkit.nn.max_linear import linear_max_backward


def sparse_gradient(clips: int, queries: int, channels: int, width: int, seed: int, ties: bool = False):  # noqa: ANN201
    """grad_z of best = max_L(pooled·Wᵀ + q): the max's gradient, split over exact ties like ``amax``."""
    generator = torch.Generator().manual_seed(seed)
    pooled = torch.randn(clips, queries, width, generator=generator)
    weight = torch.randn(channels, width, generator=generator)
    if ties:  # two equal queries: their rows tie wherever they win
        pooled[:, -1] = pooled[:, -2]
    z = (pooled @ weight.t()).requires_grad_()
    grad_best = torch.randn(clips, channels, generator=generator)
    (z.amax(dim=1) * grad_best).sum().backward()
    return z.grad, pooled, weight


@pytest.mark.parametrize("shape", [(75, 20, 256, 256), (3, 4, 37, 11), (1, 1, 5, 3)], ids=["official", "odd", "one"])
@pytest.mark.parametrize("ties", [False, True], ids=["no_ties", "ties"])
def test_matches_the_dense_gemms(shape: tuple[int, int, int, int], ties: bool) -> None:
    grad_z, pooled, weight = sparse_gradient(*shape, seed=sum(shape), ties=ties and shape[1] > 1)
    grad_pooled, grad_weight = linear_max_backward(grad_z, pooled, weight)
    flat = grad_z.reshape(-1, grad_z.size(2)).double()
    want_pooled = (flat @ weight.double()).view(pooled.shape)
    want_weight = flat.t() @ pooled.reshape(-1, pooled.size(2)).double()
    torch.testing.assert_close(grad_pooled.double(), want_pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_weight.double(), want_weight, atol=1e-4, rtol=1e-5)
    if shape[1] > 1:
        assert (grad_z != 0).sum() < grad_z.numel()  # the case the kernel is for: most entries are zero


def test_without_numba_the_gemms_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    grad_z, pooled, weight = sparse_gradient(6, 5, 9, 7, seed=1, ties=True)
    with_kernel = linear_max_backward(grad_z, pooled, weight)
    monkeypatch.setattr(max_linear, "_kernels", lambda: None)
    without = linear_max_backward(grad_z, pooled, weight)
    for got, want in zip(without, with_kernel, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_shapes_that_do_not_fit_are_refused() -> None:
    grad_z, pooled, weight = sparse_gradient(2, 3, 4, 5, seed=2)
    with pytest.raises(ValueError, match="expected \\(n, L, H\\)"):
        linear_max_backward(grad_z, pooled, weight.t())
