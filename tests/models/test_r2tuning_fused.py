"""R²-Tuning's fused autograd path (fused token MLP + folded key projection) against the plain module path."""

from __future__ import annotations

import pytest
import torch
from tests.models.test_r2tuning import make_batch, tiny_model


def losses_and_grads(model, batch, fused: bool, official_padding: bool = True) -> tuple[dict, dict]:  # noqa: ANN001
    model.fused_training = fused
    model.zero_grad(set_to_none=True)
    losses = model.compute_losses(model(batch, official_padding=official_padding), batch)
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


# ------------------------------------------------------------------------------------------- inference (fast) path
def _fast_and_reference(model, batch, official_padding: bool):  # noqa: ANN001
    with torch.inference_mode():
        model.fast_inference = False
        reference = model(batch, official_padding=official_padding)
        model.fast_inference = True
        fast = model(batch, official_padding=official_padding)
    return fast, reference


def _assert_outputs_close(fast, reference, atol: float = 2e-5) -> None:  # noqa: ANN001
    torch.testing.assert_close(fast.saliency, reference.saliency, atol=atol, rtol=1e-5)
    if reference.boundaries is not None:
        torch.testing.assert_close(fast.boundaries, reference.boundaries, atol=atol, rtol=1e-5)
        assert torch.equal(fast.boundary_mask, reference.boundary_mask)
    for name in ("video_emb", "query_emb", "out_class", "layer_query_emb"):
        torch.testing.assert_close(fast.extras[name], reference.extras[name], atol=atol, rtol=1e-5, msg=name)
    for got, expected in zip(fast.extras["layer_video_cls"], reference.extras["layer_video_cls"], strict=True):
        torch.testing.assert_close(got, expected, atol=atol, rtol=1e-5)


def _shared_and_distinct(model, lengths: list[int], query_lengths: list[int]):  # noqa: ANN001
    """Rows 0, 1 and 3 share one video (same length), row 2 has its own."""
    import dataclasses

    batch = make_batch(model.config, lengths, query_lengths)
    video = batch.video.clone()
    video[1], video[3] = video[0], video[0]
    mask = batch.video_mask.clone()
    mask[1], mask[3] = mask[0], mask[0]
    return dataclasses.replace(batch, video=video, video_mask=mask)


OVERRIDES = [{}, {"use_tef": False}, {"query_modulated_pooling": False}, {"num_layers": 1}, {"num_layers": 3},
             {"layer_order": "shallow_to_deep"}, {"recurrent_gate": False}, {"preset": "youtube_dog"},
             {"head_kernel_size": 5}]
OVERRIDE_IDS = ["default", "no_tef", "no_pooling", "k1", "k3", "shallow_first", "no_gate", "youtube", "head_k5"]


@pytest.fixture(params=["one_piece", "small_pieces"])
def piece_tokens(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The visual side in one piece per layer, or in pieces of two clips (P = 5 tokens) with token-MLP chunks of one
    clip, as long videos are cut."""
    from vtgkit.models.r2tuning import blocks
    from vtgkit.nn import token_mlp_inference

    if request.param == "small_pieces":
        monkeypatch.setattr(blocks, "PIECE_TOKENS", {"one_thread": 10, "threads": 10})
        monkeypatch.setattr(token_mlp_inference, "ROWS_PER_CHUNK", 5)
        monkeypatch.setattr(token_mlp_inference, "LARGE_ROWS_PER_CHUNK", 5)


@pytest.mark.parametrize("overrides", OVERRIDES, ids=OVERRIDE_IDS)
def test_fast_inference_matches_the_reference_path(overrides: dict, piece_tokens: None) -> None:
    """Odd and padded lengths, query masks, both padding semantics, distinct and shared videos, long queries (the
    last Linear applied per token) and short ones (applied after the pooling)."""
    model = tiny_model(**overrides).eval()
    cases = [
        make_batch(model.config, [7, 4, 1], [5, 2, 4]),  # distinct, L = 5 ≥ P: last Linear per token
        make_batch(model.config, [9, 3], [3, 1]),  # distinct, L = 3 < P − 1: last Linear after pooling
        make_batch(model.config, [5], [2]),
        _shared_and_distinct(model, [6, 6, 3, 6], [5, 2, 4, 1]),
        _shared_and_distinct(model, [6, 6, 3, 6], [1, 1, 1, 1]),
    ]
    for batch in cases:
        for official_padding in (False, True):
            fast, reference = _fast_and_reference(model, batch, official_padding)
            _assert_outputs_close(fast, reference)


@pytest.mark.parametrize("overrides", OVERRIDES, ids=OVERRIDE_IDS)
def test_fast_inference_split_over_two_threads_equals_one_thread(overrides: dict, piece_tokens: None) -> None:
    """With two intra-op threads the fast path runs its pieces on two threads (one intra-op thread each): the same
    results as the single-thread fast path, within float noise."""
    model = tiny_model(**overrides).eval()
    cases = (make_batch(model.config, [9, 6, 3], [3, 2, 3]), _shared_and_distinct(model, [7, 7, 2, 7], [4, 2, 3, 1]))
    for batch in cases:
        outputs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)  # the autouse fixture restores the count
            with torch.inference_mode():
                outputs.append(model(batch))
        _assert_outputs_close(outputs[1], outputs[0], atol=1e-6)


def test_fast_inference_from_several_caller_threads(piece_tokens: None) -> None:
    """Callers on several threads (e.g. `vtgkit serve` workers) share the split's helper thread: each gets its
    single-thread results."""
    import threading

    model = tiny_model().eval()
    batches = [make_batch(model.config, [9, 4], [3, 2]), make_batch(model.config, [7], [3]),
               make_batch(model.config, [8, 8, 5], [2, 3, 1])]
    with torch.inference_mode():
        expected = [model(batch) for batch in batches]
    got: dict[int, object] = {}
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        try:
            torch.set_num_threads(2)
            with torch.inference_mode():
                for _ in range(3):
                    got[index] = model(batches[index])
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for index, reference in enumerate(expected):
        _assert_outputs_close(got[index], reference, atol=1e-6)
