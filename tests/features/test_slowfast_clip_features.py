"""The CLIP half of FlashVTG's SlowFast+CLIP features, against the reference ``clip`` package on random weights.

What the released Moment-DETR/FlashVTG files hold (HERO ``clip/extract.py``; Moment-DETR ``run_on_video``):
video rows = ``encode_image`` (projected, E); text ``last_hidden_state`` = ``ln_final`` output of the first
count_nonzero(ids) positions (not projected, D) and ``pooler_output`` = the end-of-text row projected (E), float32.
A random CLIP with D ≠ E tells the projected and un-projected rows apart.
"""

from __future__ import annotations

import pytest
import torch
from tests.features.test_clip_reference_parity import _reference_model

from vtgkit.features.clip_model import CLIPConfig, build_clip
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.frame_transforms import clip_input_from_uint8
from vtgkit.features.tokenizer import default_tokenizer

CONFIG = CLIPConfig(embed_dim=32, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=32,
                    context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                    transformer_layers=2)


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, ClipEncoder]:
    reference = _reference_model(CONFIG, seed=11)
    ours = build_clip({k: v.clone() for k, v in reference.state_dict().items()})
    return reference, ClipEncoder(ours, "flashvtg")


def test_text_is_moment_detr_run_on_video_encode_text(models: tuple) -> None:
    reference, encoder = models
    tokenizer = default_tokenizer()
    texts = ["a man opens the door", "stop !| now"]  # the second has a token id 0 before its end
    results = encoder.encode_queries(tokenizer, texts)
    tokens = tokenizer.tokenize(texts)
    with torch.inference_mode():  # run_on_video/clip/model.py encode_text, step by step on the reference model
        x = reference.token_embedding(tokens) + reference.positional_embedding
        x = reference.ln_final(reference.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))  # (B, 77, D)
        pooled = x[torch.arange(2), tokens.argmax(dim=-1)] @ reference.text_projection  # (B, E)
    for index, result in enumerate(results):
        length = int((tokens[index] != 0).sum())
        assert result["last_hidden_state"].dtype == "float32" and result["pooler_output"].dtype == "float32"
        assert result["last_hidden_state"].shape == (length, CONFIG.transformer_width)
        assert torch.allclose(torch.from_numpy(result["last_hidden_state"]), x[index, :length], atol=1e-5)
        assert torch.allclose(torch.from_numpy(result["pooler_output"]), pooled[index], atol=1e-5)
    assert encoder.query_row_shape == (CONFIG.transformer_width,) and encoder.query_dtype == "float32"


def test_video_rows_are_the_projected_image_embedding(models: tuple) -> None:
    reference, encoder = models
    frames = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rows = encoder.encode_frames(clip_input_from_uint8(frames))
    with torch.inference_mode():
        expected = reference.encode_image(clip_input_from_uint8(frames))  # (3, E)
    assert rows.shape == (3, CONFIG.embed_dim) and rows.dtype == "float16"  # HERO saves float16
    assert torch.allclose(torch.from_numpy(rows).float(), expected.half().float(), atol=2e-3)
