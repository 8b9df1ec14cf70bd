"""Random SlowFast weights in the three released namings, for the SlowFast tests (no download, no network)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vtgkit.features.slowfast.key_table import caffe2_table, pytorchvideo_table
from vtgkit.features.slowfast.model import SlowFast, SlowFastConfig

R50 = SlowFastConfig()
# Real widths/depths on a small input (64 px, 8 fast frames): the pooling window follows the input.
R50_SMALL_INPUT = replace(R50, crop_size=64, num_frames=8)
# A scaled-down model that still takes the real 32 × 224² clips (what `vtgkit extract` feeds): fast in tests.
TINY = replace(R50, stage_blocks=(1, 1, 1, 1), width=4, beta_inv=4)


def random_state(config: SlowFastConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor random, scaled so that activations stay O(1) through the depth (BN stats included)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in SlowFast(config).state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if value.dim() > 1:  # conv: He-like scale
            state[key] = noise * (1.0 / value[0].numel()) ** 0.5
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith("weight"):
            state[key] = 1 + 0.2 * noise
        else:
            state[key] = 0.1 * noise
    return state


def write_caffe2(path: Path, state: dict[str, torch.Tensor], config: SlowFastConfig, extra: bool = True) -> Path:
    """A Caffe2-style ``{"blobs": {...}}`` pickle (protocol 2, like the Python 2 originals), optimiser blobs added."""
    inverse = {ours: name for name, ours in caffe2_table(list(state), config.stage_blocks).items()}
    blobs = {inverse[key]: value.numpy().astype(np.float32) for key, value in state.items()}
    if extra:
        blobs["conv1_w_momentum"] = np.zeros_like(blobs["conv1_w"])
        blobs["lr"] = np.array([0.1], dtype=np.float32)
        blobs["model_iter"] = np.array([1000], dtype=np.int64)
        blobs["pred_w"] = np.zeros((400, config.feature_dim), dtype=np.float32)
        blobs["pred_b"] = np.zeros(400, dtype=np.float32)
    with open(path, "wb") as file:
        pickle.dump({"blobs": blobs}, file, protocol=2)
    return path


def write_pyslowfast(path: Path, state: dict[str, torch.Tensor], config: SlowFastConfig) -> Path:
    """A PySlowFast ``torch.save`` checkpoint: ``model_state`` with BN counters and the classifier, plus ``epoch``."""
    model_state = dict(state)
    for key in list(state):
        if key.endswith("running_var"):
            model_state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    model_state["head.projection.weight"] = torch.zeros(400, config.feature_dim)
    model_state["head.projection.bias"] = torch.zeros(400)
    torch.save({"epoch": 196, "model_state": model_state}, path)
    return path


def write_pytorchvideo(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """A pytorchvideo hub checkpoint: ``model_state`` under ``create_slowfast`` names."""
    inverse = {ours: name for name, ours in pytorchvideo_table(list(state)).items()}
    model_state = {inverse[key]: value for key, value in state.items()}
    model_state["blocks.6.proj.weight"] = torch.zeros(400, 2304)
    torch.save({"model_state": model_state}, path)
    return path
