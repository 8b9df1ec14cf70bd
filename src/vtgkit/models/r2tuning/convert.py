"""Official R²-Tuning checkpoints ↔ vtgkit (spec r2-tuning.md §11).

Official files are ``{'state_dict', 'meta'}`` .pth files (or a bare state dict), loaded with ``weights_only=True``.
vtgkit keeps the official parameter names; the table below lists the only renamed entry.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch

from vtgkit.atomic_files import torch_save_atomic
from vtgkit.errors import CheckpointError
from vtgkit.models.checkpoint_io import (
    config_from_dict,
    extract_state_dict,
    load_vtgkit_checkpoint,
    save_vtgkit_checkpoint,
    torch_load_safely,
)
from vtgkit.models.r2tuning.config import CLIP_ARCHS, PRESETS, R2TuningConfig
from vtgkit.models.r2tuning.model import R2Tuning

MODEL_NAME = "r2tuning"

# Official key → vtgkit key where they differ. Every other key keeps its official name.
RENAMED_KEYS: dict[str, str] = {
    "loss._loss_sal.scale": "criterion.saliency_log_scale",  # persistent SampledNCE buffer ln(1/0.07), spec §6.4
}
_OFFICIAL_PREFIXES = ("coef", "adapter.", "pyramid.", "pooling.", "class_head.", "coord_head.")
# The official loader is non-strict: these may be absent from a file without changing any output.
OPTIONAL_KEYS = frozenset({"criterion.saliency_log_scale"})


def official_to_vtgkit_key(key: str) -> str | None:
    """vtgkit name of an official key, or None when the key is not an R²-Tuning key."""
    if key in RENAMED_KEYS:
        return RENAMED_KEYS[key]
    if key == "coef" or key.startswith(_OFFICIAL_PREFIXES[1:]):
        return key
    return None


def vtgkit_to_official_key(key: str) -> str:
    reverse = {ours: theirs for theirs, ours in RENAMED_KEYS.items()}
    return reverse.get(key, key)


def infer_config(state_dict: dict[str, torch.Tensor], preset: str | None = None) -> R2TuningConfig:
    """Config whose shapes match an official state dict.

    Shapes give: strides (from ``coef``'s length), FFN ratio, use_tef (video_map input width vs the CLIP width
    of the arch implied by the query width), coord head presence, hidden width and K. Loss weights and dropout
    cannot be read from weights: they come from ``preset`` (default ``qvhighlights``, or the TVSum/YouTube set for
    models without a coord head).
    """
    try:
        num_levels = state_dict["coef"].numel()
        hidden, video_in = state_dict["adapter.video_map.2.weight"].shape
        query_dims = state_dict["adapter.query_map.0.weight"].numel()
    except KeyError as error:
        raise CheckpointError(
            f"not an R2-Tuning state dict: key {error} is missing; first keys: {list(state_dict)[:8]}"
        ) from error
    has_coord = any(key.startswith("coord_head.") for key in state_dict)
    if preset is None:
        preset = "qvhighlights" if has_coord else "youtube_dog"
    if preset not in PRESETS:
        raise CheckpointError(f"unknown R2-Tuning preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[preset]
    archs = [name for name, (_, dq, _) in CLIP_ARCHS.items() if dq == query_dims]
    arch = base.clip_arch if base.clip_arch in archs else (archs[0] if archs else None)
    if arch is None:
        raise CheckpointError(f"query_map width {query_dims} matches no known CLIP arch {sorted(CLIP_ARCHS)}")
    video_dims, _, tokens = CLIP_ARCHS[arch]
    if video_in not in (video_dims, video_dims + 2):
        raise CheckpointError(f"video_map input width {video_in} fits neither {video_dims} nor {video_dims} + 2 "
                              f"(CLIP {arch} with/without temporal encoding)")
    num_layers = state_dict["adapter.scale"].numel() if "adapter.scale" in state_dict else base.num_layers
    return replace(
        base, clip_arch=arch, video_dims=video_dims, query_dims=query_dims, tokens_per_frame=tokens,
        hidden_dims=hidden, ffn_ratio=state_dict["adapter.tem.ffn.mapping.0.weight"].shape[0] // hidden
        if "adapter.tem.ffn.mapping.0.weight" in state_dict else base.ffn_ratio,
        strides=tuple(2**level for level in range(num_levels)), use_tef=video_in == video_dims + 2,
        use_coord_head=has_coord, num_layers=num_layers,
        query_modulated_pooling="adapter.v_map.weight" in state_dict,
        recurrent_gate="adapter.gate" in state_dict or num_layers == 1,
    )


def convert_official_state_dict(
    official: dict[str, torch.Tensor], model: R2Tuning, source: str | Path = "<state dict>"
) -> OrderedDict[str, torch.Tensor]:
    """Map official keys to vtgkit keys and check every shape against ``model``.

    Raises:
        CheckpointError listing unexpected keys (not R²-Tuning keys, or keys this config has no place for),
        missing keys and shape mismatches, by name.
    """
    expected = model.state_dict()
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    unexpected, mismatched = [], []
    for key, value in official.items():
        ours = official_to_vtgkit_key(key)
        if ours is None or ours not in expected:
            unexpected.append(key)
            continue
        if tuple(value.shape) != tuple(expected[ours].shape):
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(expected[ours].shape)}")
            continue
        mapped[ours] = value.to(expected[ours].dtype)
    missing = [key for key in expected if key not in mapped and key not in OPTIONAL_KEYS]
    if unexpected or missing or mismatched:
        parts = []
        if not any(official_to_vtgkit_key(key) for key in official):
            parts.append("this does not look like an R2-Tuning checkpoint (no adapter./pyramid./class_head. keys)")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {unexpected}")
        if missing:
            parts.append(f"missing keys ({len(missing)}): {[vtgkit_to_official_key(k) for k in missing]}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {mismatched}")
        raise CheckpointError(f"{source}: cannot load into R2Tuning: " + "; ".join(parts))
    for key in OPTIONAL_KEYS:  # official non-strict loading: keep the model's own value
        mapped.setdefault(key, expected[key])
    return mapped


def load_official_checkpoint(
    path: str | Path, preset: str | None = None, config: R2TuningConfig | None = None
) -> R2Tuning:
    """Build an R2Tuning from an official checkpoint (config from ``config``, else inferred with ``preset``)."""
    state = extract_state_dict(torch_load_safely(path), path)
    if config is None:
        try:
            config = infer_config(state, preset)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error}") from error
    model = R2Tuning(config)
    model.load_state_dict(convert_official_state_dict(state, model, path))
    return model.eval()


def to_official_state_dict(model: R2Tuning) -> OrderedDict[str, torch.Tensor]:
    """vtgkit state dict with the official key names, in the official order (spec §11.2)."""
    return OrderedDict((vtgkit_to_official_key(key), value.detach().cpu()) for key, value in model.state_dict().items())


def save_official_checkpoint(model: R2Tuning, path: str | Path) -> Path:
    """Write ``{'state_dict', 'meta'}`` like nncore's publish step, loadable by the official code."""
    path = Path(path)
    meta = {"nncore_version": "0.4.4", "create_time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
    torch_save_atomic({"state_dict": to_official_state_dict(model), "meta": meta}, path)
    return path


def save_vtgkit(model: R2Tuning, path: str | Path) -> tuple[Path, Path]:
    """Write vtgkit's format: safetensors weights + JSON config."""
    return save_vtgkit_checkpoint(path, MODEL_NAME, model.config, model.state_dict())


def load_vtgkit(path: str | Path) -> R2Tuning:
    """Read vtgkit's format back into an eval-mode R2Tuning."""
    name, config_data, state = load_vtgkit_checkpoint(path)
    if name != MODEL_NAME:
        raise CheckpointError(f"{path}: holds a {name!r} model, not {MODEL_NAME!r}")
    model = R2Tuning(config_from_dict(R2TuningConfig, config_data, path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{path}: weights do not match its config: missing {missing}, unexpected {unexpected}, "
                              f"shape mismatches {mismatched}")
    model.load_state_dict(state)
    return model.eval()
