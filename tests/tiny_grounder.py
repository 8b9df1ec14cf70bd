"""Tiny random CLIP + R²-Tuning checkpoint and a generated video for the Grounder and CLI tests.

The CLIP takes 64-px frames in 16-px patches (17 tokens, width 64, 2 blocks per tower); the R²-Tuning config uses the
same widths, K = 2 layers and hidden width 16, saved in vtgkit's format. Random weights: the tests check shapes,
ranges, caching and plumbing, never what the model finds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from vtgkit.features.clip_model import CLIPConfig

TINY_CLIP = CLIPConfig(embed_dim=32, image_resolution=64, vision_layers=2, vision_width=64, vision_patch_size=16,
                       context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                       transformer_layers=2)
TINY_R2TUNING = {"clip_arch": "ViT-Tiny/16", "video_dims": 64, "query_dims": 64, "tokens_per_frame": 17,
                 "hidden_dims": 16, "num_heads": 2, "num_layers": 2}
VIDEO_SECONDS = 21.0  # 11 clips at 0.5 fps, the last one 1 s long


def write_tiny_clip(path: Path, config: CLIPConfig = TINY_CLIP, seed: int = 0) -> Path:
    """A random CLIP in OpenAI key names as safetensors."""
    from vtgkit.synth.tiny_clip import build_tiny_clip

    clip = build_tiny_clip(seed, config)
    save_file({key: value.contiguous() for key, value in clip.state_dict().items()}, str(path))
    return path


def write_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A random R²-Tuning model matching :data:`TINY_CLIP`, saved as model.safetensors + config.json."""
    from vtgkit.models import create_model
    from vtgkit.models.r2tuning.convert import save_vtgkit

    torch.manual_seed(seed)
    save_vtgkit(create_model("r2tuning", **TINY_R2TUNING), folder)
    return folder


def write_video(path: Path, seconds: float = VIDEO_SECONDS) -> Path:
    """A small generated H.264 video (96x64, 10 fps)."""
    from vtgkit.features.synthetic_video import write_test_video

    return write_test_video(path, seconds, fps=10, width=96, height=64, gop=20)
