"""Fixtures of the feature-extraction tests: a tiny random CLIP weight file and generated videos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from vtgkit.features.clip_model import CLIP, CLIPConfig

TINY_CLIP = CLIPConfig(embed_dim=32, image_resolution=224, vision_layers=3, vision_width=64, vision_patch_size=32,
                       context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                       transformer_layers=3)


def random_clip_state_dict(config: CLIPConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter random (LayerNorm weights around 1), so that no test passes on default values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in CLIP(config).state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
            state[key] = 1 + 0.2 * noise
        elif key == "logit_scale":
            state[key] = torch.tensor(4.6)
        else:
            state[key] = 0.05 * noise
    return state


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP (224 px, patch 32, widths 64) saved as an fp16 ``torch.save`` state dict."""
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save({k: v.half() for k, v in random_clip_state_dict(TINY_CLIP).items()}, path)
    return path


@pytest.fixture(scope="session")
def make_video(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make_video(name, seconds, **options)`` → a generated video in a session folder (cached by arguments)."""
    from vtgkit.features.synthetic_video import write_test_video

    folder = tmp_path_factory.mktemp("videos")
    made: dict[tuple, Path] = {}

    def make(name: str, seconds: float, **options: object) -> Path:
        key = (name, seconds, tuple(sorted(options.items())))
        if key not in made:
            options.setdefault("width", 160)
            options.setdefault("height", 96)
            options.setdefault("fps", 10)
            # one subfolder per distinct video: two tests asking for "a.mp4" with other lengths must not overwrite
            # each other's file (the name is kept: tests look up outputs by the video's stem)
            target = folder / str(len(made)) / name
            target.parent.mkdir()
            made[key] = write_test_video(target, seconds, **options)
        return made[key]

    return make
