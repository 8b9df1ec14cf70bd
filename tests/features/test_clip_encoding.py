"""What the caches store: the official query-length quirk, truncation equivalence, bf16 closeness, presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.features.conftest import TINY_CLIP, random_clip_state_dict

from vtgkit.errors import ConfigError
from vtgkit.features.clip_model import build_clip
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.presets import PRESETS, get_preset
from vtgkit.features.tokenizer import default_tokenizer


@pytest.fixture(scope="module")
def encoder() -> ClipEncoder:
    return ClipEncoder(build_clip(random_clip_state_dict(TINY_CLIP)), "r2tuning", 3)


def test_query_keeps_the_first_count_nonzero_positions(encoder: ClipEncoder) -> None:
    """spec r2-tuning.md §10.2: a token with id 0 ('!' before a symbol) shortens the kept range from the end."""
    tokenizer = default_tokenizer()
    text = "stop !| now"
    ids = tokenizer.tokenize(text)[0]
    eot = int(ids.argmax())
    assert (ids[:eot] == 0).sum() == 1  # the case under test really occurs
    (result,) = encoder.encode_queries(tokenizer, [text])
    full = encoder.model.encode_text_layers(ids[None], 3)[0]  # (K, 77, D)
    assert result["features"].shape == (eot, 3, TINY_CLIP.transformer_width)  # EOT itself is cut off
    expected = full[:, :eot].permute(1, 0, 2).half().numpy()
    np.testing.assert_allclose(result["features"].astype(np.float32), expected.astype(np.float32), atol=2e-3)


def test_batched_truncated_queries_equal_single_full_length(encoder: ClipEncoder) -> None:
    tokenizer = default_tokenizer()
    texts = ["a short one", "a somewhat longer query about a box moving across the bars", "x"]
    batched = encoder.encode_queries(tokenizer, texts)
    for text, result in zip(texts, batched, strict=True):
        ids = tokenizer.tokenize(text)
        length = int((ids != 0).sum())
        full = encoder.model.encode_text_layers(ids, 3)[0, :, :length].permute(1, 0, 2)
        np.testing.assert_allclose(result["features"].astype(np.float32), full.float().numpy(), rtol=2**-9,
                                   atol=2e-4)


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_is_close_to_fp32() -> None:
    model = build_clip(random_clip_state_dict(TINY_CLIP))
    images = torch.randn(4, 3, 224, 224)
    exact = ClipEncoder(model, "r2tuning", 2, "fp32").encode_frames(images).astype(np.float32)
    fast = ClipEncoder(model, "r2tuning", 2, "bf16").encode_frames(images).astype(np.float32)
    assert np.linalg.norm(fast - exact) / np.linalg.norm(exact) < 0.05
    assert not np.array_equal(fast, exact)


def test_presets_name_the_official_folders() -> None:
    qv = get_preset("r2tuning-qvhighlights")
    assert (qv.frames_dir(0.5), qv.video_dir(0.5), qv.text_dir()) == (
        "frames_224_0.5fps", "clip_b32_vid_k4", "clip_b32_txt_k4")
    assert qv.video_dir(1.0) == "clip_b32_vid_k4_1.0fps" and qv.frames_dir(1) == "frames_224_1.0fps"
    charades = get_preset("r2tuning-charades")
    assert charades.video_dir(1.0) == "clip_b32_vid_k4" and charades.frames_dir(1.0) == "frames_224_1.0fps"
    large = get_preset("r2tuning-qvhighlights", arch="ViT-L/14@336px", num_layers=2)
    assert (large.video_dir(0.5), large.frame_size) == ("clip_l14_336px_vid_k2", 336)
    assert get_preset("r2tuning-youtube").frames_dir(None) == "frames_224_auto"
    assert {p.layout for p in PRESETS.values()} == {"r2tuning", "flashvtg"}
    with pytest.raises(ConfigError, match="unknown extraction preset"):
        get_preset("nope")


@pytest.mark.skipif(torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has native bf16")
def test_bf16_is_refused_without_native_support() -> None:
    with pytest.raises(ConfigError, match="native bf16"):
        ClipEncoder(build_clip(random_clip_state_dict(TINY_CLIP)), "r2tuning", 2, "bf16")


def test_too_many_layers_is_refused() -> None:
    with pytest.raises(ConfigError, match="K ≤ blocks"):
        ClipEncoder(build_clip(random_clip_state_dict(TINY_CLIP)), "r2tuning", TINY_CLIP.vision_layers + 2)
