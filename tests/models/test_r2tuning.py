"""R²-Tuning on tiny random inputs (hidden 16, T 8, L 5, P 5, K 2) for every preset."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vtgkit.errors import ConfigError
from vtgkit.models import create_config, create_model, list_models, list_presets
from vtgkit.models.r2tuning import PRESETS, TRAINING_PRESETS, R2Tuning, R2TuningConfig
from vtgkit.structures import Batch

TINY = {"video_dims": 12, "query_dims": 10, "tokens_per_frame": 5, "num_layers": 2, "hidden_dims": 16,
        "num_heads": 4}


def tiny_model(preset: str = "qvhighlights", **overrides: object) -> R2Tuning:
    return create_model("r2tuning", preset, **{**TINY, **overrides})


def make_batch(config: R2TuningConfig, lengths: list[int], query_lengths: list[int], stored_layers: int = 3) -> Batch:
    """Zero-padded fp16 batch with targets; sample i has lengths[i] clips and query_lengths[i] tokens."""
    batch, num_clips, num_tokens = len(lengths), max(lengths), max(query_lengths)
    video = torch.zeros(batch, num_clips, stored_layers, config.tokens_per_frame, config.video_dims,
                        dtype=torch.float16)
    query = torch.zeros(batch, num_tokens, stored_layers, config.query_dims, dtype=torch.float16)
    video_mask = torch.zeros(batch, num_clips, dtype=torch.long)
    query_mask = torch.zeros(batch, num_tokens, dtype=torch.long)
    saliency = torch.zeros(batch, num_clips)
    boundaries = torch.full((batch, 2, 2), math.inf)
    pos_clip = torch.zeros(batch, 1, dtype=torch.long)
    for i, (n, m) in enumerate(zip(lengths, query_lengths, strict=True)):
        video[i, :n] = torch.randn(n, stored_layers, config.tokens_per_frame, config.video_dims).half()
        query[i, :m] = torch.randn(m, stored_layers, config.query_dims).half()
        video_mask[i, :n] = 1
        query_mask[i, :m] = 1
        saliency[i, :n] = torch.rand(n)
        pos_clip[i, 0] = int(saliency[i, :n].argmax())
        boundaries[i, 0] = torch.tensor([0.0, 2.0 * n * 0.6])  # seconds at fps 0.5
    return Batch(video=video, query=query, video_mask=video_mask, query_mask=query_mask,
                 fps=torch.full((batch,), 0.5), boundaries=boundaries, saliency=saliency, pos_clip=pos_clip)


def test_registry() -> None:
    assert "r2tuning" in list_models()
    assert set(list_presets("r2tuning")) == set(PRESETS) == set(TRAINING_PRESETS)
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("nope")
    with pytest.raises(ConfigError, match="preset"):
        create_model("r2tuning", "nope")
    with pytest.raises(ConfigError, match="field"):
        create_config("r2tuning", "qvhighlights", not_a_field=1)


def test_presets_follow_the_official_configs() -> None:
    assert PRESETS["qvhighlights"] == R2TuningConfig()
    assert PRESETS["charades"].adapter_dropout == 0.35 and PRESETS["charades"].loss_sal_weight == 0.01
    assert PRESETS["ego4d"].adapter_dropout == 0.3
    assert PRESETS["tacos"].loss_sal_weight == 0.05
    youtube = PRESETS["youtube_ski"]
    assert youtube.strides == (1,) and not youtube.use_tef and not youtube.merge_cls_sal
    assert not youtube.use_coord_head and youtube.loss_cls == "dynamic_bce" and youtube.loss_sal_directions == ("row",)
    assert PRESETS["tvsum_vu"] == youtube
    assert TRAINING_PRESETS["qvhighlights"].train_repeat == 4
    assert TRAINING_PRESETS["tvsum_bk"].epochs == 500 and TRAINING_PRESETS["youtube_dog"].epochs == 200


def test_parameter_count_of_the_qvhighlights_model() -> None:
    # spec §11.2: 2,836,242 learnable values (the buffer loss._loss_sal.scale is not learnable)
    assert R2Tuning().num_learnable_parameters() == 2_836_242


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_and_infers(preset: str) -> None:
    model = tiny_model(preset)
    config = model.config
    batch = make_batch(config, [8, 5, 3], [5, 2, 4])
    model.train()
    output = model(batch)
    losses = model.compute_losses(output, batch)
    expected_terms = {"loss_cls", "loss_sal", "loss_video_cal", "loss_layer_cal", "total"}
    if config.use_coord_head:
        expected_terms.add("loss_reg")
    assert set(losses) == expected_terms
    assert all(torch.isfinite(value) for value in losses.values()), losses
    losses["total"].backward()
    for name, parameter in model.named_parameters():
        if name == "coef" and not config.use_coord_head:
            assert parameter.grad is None  # official: coef exists (state-dict parity) but only scales the coord head
            continue
        assert parameter.grad is not None, f"{preset}: no gradient for {name}"
        assert torch.isfinite(parameter.grad).all(), name

    model.eval()
    with torch.inference_mode():
        output = model(batch)
    assert output.saliency.shape == (3, 8)
    assert torch.isfinite(output.saliency).all()
    if config.use_coord_head:
        assert output.boundaries.shape[0] == 3 and output.boundaries.shape[2] == 3
        # points per sample: T=8 → 8+4+2+1; T=5 → 5+2+1; T=3 → 3+1
        assert output.boundary_mask.sum(dim=1).tolist() == [15, 8, 4]
        scores = output.boundaries[0, :, 2]
        assert torch.all(scores[:-1] >= scores[1:])
    else:
        assert output.boundaries is None


@pytest.mark.parametrize("preset", ["qvhighlights", "youtube_dog"])
@pytest.mark.parametrize("fast", [False, True])
def test_batched_eval_equals_one_by_one(preset: str, fast: bool) -> None:
    model = tiny_model(preset).eval()
    model.fast_inference = fast
    lengths, query_lengths = [8, 5, 1, 3], [5, 2, 4, 1]
    batch = make_batch(model.config, lengths, query_lengths)
    with torch.no_grad():
        together = model(batch)
        for i, (n, m) in enumerate(zip(lengths, query_lengths, strict=True)):
            alone = model(Batch(video=batch.video[i: i + 1, :n], query=batch.query[i: i + 1, :m],
                                video_mask=batch.video_mask[i: i + 1, :n], query_mask=batch.query_mask[i: i + 1, :m],
                                fps=batch.fps[i: i + 1]))
            torch.testing.assert_close(together.saliency[i, :n], alone.saliency[0], atol=1e-5, rtol=1e-5)
            assert torch.all(together.saliency[i, n:] == 0)
            if alone.boundaries is not None:
                rows = together.boundaries[i][together.boundary_mask[i]]
                torch.testing.assert_close(rows, alone.boundaries[0], atol=1e-5, rtol=1e-5)


def test_shared_video_is_mapped_once_with_equal_outputs() -> None:
    """Several queries on one video (the fast path maps the video once) give each query's lone outputs."""
    model = tiny_model().eval()
    base = make_batch(model.config, [6, 6, 6], [5, 2, 4])
    video = base.video[:1].expand(3, -1, -1, -1, -1).clone()
    video[2] = base.video[2]  # one other video of the same length
    batch = dataclasses.replace(base, video=video)
    with torch.inference_mode():
        together = model(batch)
        for i in range(3):
            m = int(batch.query_mask[i].sum())
            alone = model(Batch(video=video[i: i + 1], query=batch.query[i: i + 1, :m],
                                video_mask=batch.video_mask[i: i + 1], query_mask=batch.query_mask[i: i + 1, :m],
                                fps=batch.fps[i: i + 1]))
            torch.testing.assert_close(together.saliency[i], alone.saliency[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together.boundaries[i], alone.boundaries[0], atol=1e-5, rtol=1e-5)


def test_group_identical_rows() -> None:
    from vtgkit.models.r2tuning.blocks import group_identical_rows

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [1.0, 2.0]])
    representatives, inverse = group_identical_rows(x)
    assert representatives == [0, 1] and inverse.tolist() == [0, 1, 0, 0]
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1]])
    representatives, inverse = group_identical_rows(x, mask)
    assert representatives == [0, 1, 2] and inverse.tolist() == [0, 1, 2, 0]


def test_official_padding_differs_for_short_samples() -> None:
    """Training semantics (spec §6.6): tef / positional encoding over the padded T and padded query tokens in the
    max-pool change a short sample's outputs; per-sample eval semantics do not."""
    model = tiny_model().eval()
    batch = make_batch(model.config, [8, 4], [5, 2])
    with torch.no_grad():
        official = model(batch, official_padding=True)
        per_sample = model(batch, official_padding=False)
    torch.testing.assert_close(official.saliency[0], per_sample.saliency[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(official.extras["video_emb"][1, :4], per_sample.extras["video_emb"][1, :4])


def test_fast_path_matches_reference() -> None:
    model = tiny_model().eval()
    batch = make_batch(model.config, [8, 6], [5, 3])
    with torch.no_grad():
        model.fast_inference = False
        reference = model(batch)
        model.fast_inference = True
        fast = model(batch)
    torch.testing.assert_close(fast.saliency, reference.saliency, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.boundaries, reference.boundaries, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [{"recurrent_gate": False}, {"query_modulated_pooling": False}, {"layer_order": "shallow_to_deep"},
     {"use_tef": False}, {"num_layers": 1}, {"loss_video_cal_weight": 0.0, "loss_layer_cal_weight": 0.0}],
    ids=lambda o: ",".join(o),
)
def test_ablation_switches(overrides: dict) -> None:
    model = tiny_model(**overrides)
    batch = make_batch(model.config, [8, 5], [5, 3])
    output = model(batch)
    losses = model.compute_losses(output, batch)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    if overrides.get("loss_video_cal_weight") == 0.0:
        assert "loss_video_cal" not in losses and "loss_layer_cal" not in losses
    if not model.config.recurrent_gate:
        assert not hasattr(model.adapter, "gate")


def test_bad_batch_shapes_are_reported() -> None:
    model = tiny_model()
    batch = make_batch(model.config, [4], [3])
    bad = dataclasses.replace(batch, video=batch.video[..., :-1])
    with pytest.raises(ValueError, match="batch.video"):
        model(bad)
    too_few_layers = dataclasses.replace(batch, video=batch.video[:, :, :1], query=batch.query[:, :, :1])
    with pytest.raises(ValueError, match="last 2 CLIP layers"):
        model(too_few_layers)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="strides"):
        R2TuningConfig(strides=(1, 3))
    with pytest.raises(ConfigError, match="num_heads"):
        R2TuningConfig(hidden_dims=10, num_heads=4)
