"""FlashVTG unit tests on tiny random configurations (shapes, masks, quirks, losses, gradients, checkpoints)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.models import MODELS, create_model, list_presets
from vtgkit.models.flashvtg import PRESETS, FlashVTG, FlashVTGConfig, config_from_options
from vtgkit.models.flashvtg.convert import convert_state_dict, load_official_checkpoint
from vtgkit.models.flashvtg.loss import FlashVTGLoss, clip_aware_score_loss, rank_contrastive_loss
from vtgkit.models.flashvtg.model import video_identity
from vtgkit.structures import Batch

TINY = dict(video_dim=10, query_dim=6, hidden_dim=16, num_heads=4, feedforward_dim=32, num_dummies=3,
            num_dummy_layers=1, num_t2v_layers=2, num_encoder_layers=1, max_query_len=8, buffer_size=128)


def tiny_config(preset: str = "qvhighlights", **overrides) -> FlashVTGConfig:
    return dataclasses.replace(PRESETS[preset], **{**TINY, **overrides})


def make_batch(config: FlashVTGConfig, video_lengths, query_lengths, vids=None, seed=0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    batch_size, num_clips, num_tokens = len(video_lengths), max(video_lengths), max(query_lengths)
    video = torch.randn(batch_size, num_clips, config.video_dim, generator=generator)
    query = torch.randn(batch_size, num_tokens, config.query_dim, generator=generator)
    video_mask = torch.zeros(batch_size, num_clips)
    query_mask = torch.zeros(batch_size, num_tokens)
    for index, (clips, tokens) in enumerate(zip(video_lengths, query_lengths, strict=True)):
        video_mask[index, :clips] = 1
        query_mask[index, :tokens] = 1
    video, query = video * video_mask[..., None], query * query_mask[..., None]
    saliency = torch.zeros(batch_size, num_clips)
    pos, neg = [], []
    for index, clips in enumerate(video_lengths):
        saliency[index, : clips // 2 + 1] = torch.arange(1, clips // 2 + 2).float().clamp(max=12)
        # hard positive = the most salient clip, as the official dataset draws it (otherwise SampledNCE can have
        # a clip column masked for every sample, whose log-softmax backward is NaN in the official code too)
        pos.append([clips // 2, 0])
        neg.append([clips - 1, clips - 1])
    boundaries = torch.full((batch_size, 2, 2), float("inf"))
    boundaries[:, 0] = torch.tensor([0.0, 2.0 * (max(video_lengths) // 2 + 1)])
    return Batch(
        video=video, query=query, video_mask=video_mask, query_mask=query_mask,
        fps=torch.full((batch_size,), 1 / config.clip_len), boundaries=boundaries, saliency=saliency,
        extras={"vids": vids or [f"v{i}_0.0_150.0" for i in range(batch_size)],
                "saliency_pos_labels": torch.tensor(pos), "saliency_neg_labels": torch.tensor(neg)},
    )


def test_registered_in_models():
    assert MODELS["flashvtg"] is FlashVTG
    assert set(list_presets("flashvtg")) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_forward_eval(preset):
    config = tiny_config(preset)
    model = FlashVTG(config).eval()
    batch = make_batch(config, [9], [4])
    with torch.no_grad():
        output = model(batch)
    assert output.saliency.shape == (1, 9)
    num_candidates = sum(9 // s for s in config.strides if 9 >= s)
    assert output.boundaries.shape == (1, min(num_candidates, config.max_num_moment), 3)
    scores = output.boundaries[0, :, 2]
    assert torch.all(scores[:-1] >= scores[1:]) and torch.isfinite(output.boundaries).all()


def test_full_size_parameter_count():
    state = create_model("flashvtg").state_dict()
    assert len(state) == 212
    assert sum(value.numel() for value in state.values()) == 10_469_400  # spec §9


def test_candidate_count_and_short_videos():
    config = tiny_config()
    model = FlashVTG(config).eval()
    for length, expected in [(75, 139), (3, 4), (1, 1)]:
        with torch.no_grad():
            output = model(make_batch(config, [length], [3]))
        assert output.extras["point"].shape[0] == expected  # spec §3.7 / §11


@pytest.mark.parametrize("preset", ["qvhighlights", "tvsum"])
def test_training_losses_and_gradients(preset):
    config = tiny_config(preset, dropout=0.0, input_dropout=0.0, dummy_encoder_dropout=0.0)
    model = FlashVTG(config).train()
    batch = make_batch(config, [8, 6, 8], [4, 4, 2], vids=["a_0_2", "b_0_2", "a_5_7"])
    output = model(batch)
    losses = model.compute_losses(output, batch)
    expected = {"loss_cls", "loss_sal", "loss_saliency", "loss_label", "total"}
    if not config.highlight_only:
        expected.add("loss_reg")
    assert set(losses) == expected
    assert all(torch.isfinite(value) for value in losses.values())
    losses["total"].backward()
    unused = {"txt_position_embed.position_embeddings.weight", "txt_position_embed.LayerNorm.weight",
              "txt_position_embed.LayerNorm.bias", "pooling.att.weight" if config.highlight_only else ""}
    if config.highlight_only:  # spec §4.7: no regression loss, so the coordinate head gets no gradient
        unused |= {n for n, _ in model.named_parameters() if n.startswith("coord_head") or n == "coef"}
    for name, parameter in model.named_parameters():
        if name in unused:
            continue
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_weighted_terms_use_config_weights():
    config = tiny_config(dropout=0.0, input_dropout=0.0, dummy_encoder_dropout=0.0)
    model = FlashVTG(config).train()
    batch = make_batch(config, [8, 8], [3, 3])
    output = model(batch)
    criterion = FlashVTGLoss(config)
    terms, weighted = criterion.terms(output, batch), criterion(output, batch)
    for key, weight in criterion.weights.items():
        torch.testing.assert_close(weighted[key], terms[key] * weight)
    torch.testing.assert_close(weighted["total"], sum(weighted[k] for k in criterion.weights))


def test_official_mask_layout_only_matters_with_padding():
    config = tiny_config()
    official = FlashVTG(config).eval()
    corrected = FlashVTG(dataclasses.replace(config, official_attention_mask=False)).eval()
    corrected.load_state_dict(official.state_dict())
    with torch.no_grad():
        unpadded = make_batch(config, [7, 7, 7], [4, 4, 4])
        torch.testing.assert_close(official(unpadded).saliency, corrected(unpadded).saliency)
        padded = make_batch(config, [7, 4, 5], [4, 2, 3])
        assert not torch.allclose(official(padded).saliency, corrected(padded).saliency, atol=1e-6)


def test_corrected_mask_blocks_each_items_own_padding():
    model = FlashVTG(tiny_config())
    video_mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    key_mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    official = model.transformer.t2v_encoder.blocked_keys(video_mask, key_mask, official_layout=True)
    corrected = model.transformer.t2v_encoder.blocked_keys(video_mask, key_mask, official_layout=False)
    # item 0, query clip 2 is padding and key 1 is padding: blocked in every head when corrected
    assert corrected[0, :, 2, 1].all()
    # official: head h of item b uses item (b*H + h) mod B's mask -> item 1 (B=2, H=4) borrows from item 0 too
    heads = model.config.num_heads
    for b in range(2):
        for h in range(heads):
            source = (b * heads + h) % 2
            assert bool(official[b, h, 2, 1]) == (source == 0 or b == 0)


def test_unpadded_items_match_batch_size_one():
    """Spec §11: items with unpadded videos in a batch with equal query lengths match their B=1 outputs."""
    config = tiny_config()
    model = FlashVTG(config).eval()
    batch = make_batch(config, [6, 6], [3, 3])
    with torch.no_grad():
        joint = model(batch)
        for index in range(2):
            single = Batch(video=batch.video[index:index + 1], query=batch.query[index:index + 1],
                           video_mask=batch.video_mask[index:index + 1], query_mask=batch.query_mask[index:index + 1],
                           fps=batch.fps[index:index + 1])
            alone = model(single)
            torch.testing.assert_close(joint.saliency[index], alone.saliency[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(joint.boundaries[index], alone.boundaries[0], rtol=1e-5, atol=1e-5)


def test_ragged_eval_batch_flags_padding_candidates():
    config = tiny_config()
    model = FlashVTG(config).eval()
    with torch.no_grad():
        output = model(make_batch(config, [8, 3], [3, 2]))
    assert output.boundary_mask is not None
    # item 1 has 3 valid clips: stride 1 → 3 valid, stride 2 → 2 (pool covers clip 2), stride 4 → 1, stride 8 → 1
    assert int(output.boundary_mask[1].sum()) == 3 + 2 + 1 + 1
    assert output.boundary_mask[0].all()


def test_video_identity_follows_official_cut():
    assert video_identity("abc_60.0_210.0", "hl") == "abc"
    assert video_identity("_a_b_210.0_360.0", "hl") == "_a_b"
    assert video_identity("noscore", "hl") == "noscore"
    assert video_identity("one_part", "hl") == "one"
    assert video_identity("abc_60.0_210.0", "tacos") == "abc_60.0_210.0"


def test_negative_pairs_only_for_different_videos():
    config = tiny_config(dropout=0.0, input_dropout=0.0, dummy_encoder_dropout=0.0)
    model = FlashVTG(config).train()
    output = model(make_batch(config, [5, 5, 5], [2, 3, 2], vids=["x_0_1", "x_2_3", "y_0_1"]))
    assert output.extras["real_neg_mask"].tolist() == [False, True, True]
    assert output.extras["saliency_scores_neg"].shape == (2, 5)
    single = model(make_batch(config, [5], [2]))
    assert single.extras["saliency_scores_neg"] is None


def test_rank_contrastive_singleton_axis_quirk():
    """Spec §4.6 step 3: with a (1, 1, T) tensor every per-row reduction acts on the singleton axis."""
    labels = torch.tensor([[[0.0, 3.0, 5.0]]])
    scores = torch.tensor([[[0.2, -1.0, 4.0]]])
    mask = torch.ones(1, 1, 3)
    value = rank_contrastive_loss(scores, labels, mask)
    per_rank = []
    for rank in range(1, 12):
        positive = (labels >= rank).float()
        if positive.sum() == 0:
            continue
        per_rank.append((positive * torch.log(torch.tensor(1 + 1e-6)) / (positive + 1e-6)).mean())
    torch.testing.assert_close(value, torch.stack(per_rank).sum() / 12)


def test_clip_aware_score_loss_normalises_globally():
    labels = torch.tensor([[0.0, 4.0], [2.0, 0.0]])
    logits = torch.tensor([[[1.0], [3.0], [9.0]], [[2.0], [1.0], [9.0]]])  # third candidate is a stride-2 point
    expected = ((torch.tensor([[0.0, 1.0], [0.5, 0.0]]) - torch.tensor([[0.0, 1.0], [0.5, 0.0]])) ** 2).mean()
    torch.testing.assert_close(clip_aware_score_loss(labels, logits), expected)


def test_config_from_json_options_adds_tef(tmp_path):
    options = json.loads(json.dumps({
        "v_feat_dim": 2816, "t_feat_dim": 512, "hidden_dim": 256, "nheads": 8, "num_dummies": 40, "t2v_layers": 6,
        "enc_layers": 3, "dummy_layers": 2, "dim_feedforward": 1024, "kernel_size": 5, "num_conv_layers": 1,
        "num_mlp_layers": 5, "clip_length": 2, "ctx_mode": "video_tef", "config": "data/MR.py", "lw_cls": 5.0,
        "label_loss_coef": 4.0, "max_q_l": 40, "max_v_l": 75, "dset_name": "hl",
    }))
    config = config_from_options(options)
    assert config.video_dim == 2818 and config.strides == (1, 2, 4, 8)
    assert config_from_options({**options, "config": "data/HD.py"}).highlight_only
    assert config_from_options({**options, "config": "data/MR_16.py"}).strides == (1, 2, 4, 8, 16)
    with pytest.raises(ConfigError, match="t2v_layers"):
        config_from_options({k: v for k, v in options.items() if k != "t2v_layers"})


def test_official_layout_round_trip(tmp_path):
    config = tiny_config()
    model = FlashVTG(config)
    options = argparse.Namespace(
        v_feat_dim=config.video_dim, use_tef=True, t_feat_dim=config.query_dim, hidden_dim=16, nheads=4,
        num_dummies=3, t2v_layers=2, enc_layers=1, dummy_layers=1, dim_feedforward=32, kernel_size=5,
        num_conv_layers=1, num_mlp_layers=5, clip_length=2, max_q_l=8, dset_name="hl", device=torch.device("cpu"),
    )
    path = tmp_path / "model_best.ckpt"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "opt": options, "epoch": 3},
               path)
    loaded = load_official_checkpoint(path)
    assert loaded.config.video_dim == config.video_dim and loaded.config.num_t2v_layers == 2
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_state_dict_mismatch_names_keys():
    model = FlashVTG(tiny_config())
    state = dict(model.state_dict())
    state.pop("x")
    state["extra.weight"] = torch.zeros(1)
    state["coef"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as error:
        convert_state_dict(state, model, "ckpt")
    message = str(error.value)
    assert "missing keys ['x']" in message and "extra.weight" in message and "coef" in message
