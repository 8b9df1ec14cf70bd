"""What ``Grounder.from_pretrained`` loads: the R²-Tuning model (released name, official .pth or vtgkit checkpoint)
and a CLIP that fits it. FlashVTG checkpoints (released names, official ``.ckpt`` files, vtgkit-format files written
by ``vtgkit train``) are recognised by :func:`is_flashvtg_checkpoint` and loaded by :mod:`vtgkit.flashvtg_grounding`
instead (vtgkit-format ones through :func:`load_vtgkit_flashvtg`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vtgkit.errors import CheckpointError, ConfigError


def vtgkit_checkpoint_model(name_or_path: str | os.PathLike[str]) -> str | None:
    """The model a vtgkit-format checkpoint (folder with config.json, or ``X.safetensors`` / ``X.json``) says it
    holds, from its JSON record; None when the path is not one (or its JSON cannot be read: the loader then says
    why)."""
    from vtgkit.models.checkpoint_io import CONFIG_NAME

    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_dir():
        record_path = path / CONFIG_NAME
    elif path.suffix in {".safetensors", ".json"}:
        record_path = path.with_suffix(".json")
    else:
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        return str(record["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_flashvtg_checkpoint(name_or_path: str | os.PathLike[str]) -> bool:
    """True for a released ``flashvtg-*`` name, an official FlashVTG ``.ckpt`` file (``model_best.ckpt``) and a
    vtgkit-format FlashVTG checkpoint (``best.safetensors`` + ``best.json`` of ``vtgkit train``)."""
    from vtgkit.pretrained import PRETRAINED

    text = os.fspath(name_or_path)
    entry = PRETRAINED.get(text)
    if entry is not None:
        return entry.model == "flashvtg"
    if Path(text).expanduser().suffix == ".ckpt":  # FlashVTG's released files are model_best.ckpt (spec §9)
        return True
    return vtgkit_checkpoint_model(text) == "flashvtg"


def load_vtgkit_flashvtg(path: str | os.PathLike[str]) -> torch.nn.Module:
    """An eval-mode FlashVTG from a vtgkit-format checkpoint (safetensors weights + JSON ``FlashVTGConfig``).

    The JSON holds the whole model configuration (widths, clip length, length caps, ``dataset_name``) but not the
    official training options; the feature folders are then those of the ``dataset_name``'s official layout
    (``vtgkit.predict_flashvtg.feature_layout``), which is what every ``vtgkit train flashvtg-*`` recipe reads.

    Raises:
        CheckpointError: unreadable files, a config that is not a FlashVTG one, weights that do not fit it.
    """
    from vtgkit.models.checkpoint_io import config_from_dict, load_vtgkit_checkpoint
    from vtgkit.models.flashvtg.config import FlashVTGConfig
    from vtgkit.models.flashvtg.model import FlashVTG

    path = Path(os.fspath(path)).expanduser()
    weights = path.with_suffix(".safetensors") if path.suffix == ".json" else path
    model_name, data, state = load_vtgkit_checkpoint(weights)
    if model_name != "flashvtg":
        raise CheckpointError(f"{path}: a {model_name} checkpoint, not FlashVTG")
    try:
        config = config_from_dict(FlashVTGConfig, data, path)
    except ConfigError as error:  # the config's own checks (heads, strides)
        raise CheckpointError(f"{path}: invalid FlashVTG config: {error}") from None
    model = FlashVTG(config)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key, value in state.items() if key in expected and expected[key].shape != value.shape]
    if missing or unexpected or reshaped:
        raise CheckpointError(f"{weights}: the weights do not fit the FlashVTG config beside them: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}, other shapes {reshaped[:5]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_grounding_model(name_or_path: str | os.PathLike[str], preset: str | None, cache_dir: Any,
                         progress: bool) -> tuple[torch.nn.Module, str | None, str]:
    """(eval-mode R2Tuning, preset it was trained with if known, description of the source)."""
    from vtgkit.pretrained import PRETRAINED, load_pretrained

    text = os.fspath(name_or_path)
    entry = PRETRAINED.get(text)
    if entry is not None:
        if entry.model != "r2tuning":
            raise ConfigError(f"{entry.name}: a {entry.model} checkpoint; load it with Grounder.from_pretrained")
        loaded = load_pretrained(text, preset=preset, cache_dir=cache_dir, progress=progress)
        return loaded.model, preset or entry.preset, entry.name
    path = Path(text).expanduser()
    if path.is_dir() or path.suffix in {".safetensors", ".json"}:
        from vtgkit.models.checkpoint_io import load_vtgkit_checkpoint
        from vtgkit.models.r2tuning.convert import load_vtgkit

        model_name, _, _ = load_vtgkit_checkpoint(path.with_suffix(".safetensors") if path.suffix == ".json" else path)
        if model_name != "r2tuning":
            raise ConfigError(f"{path}: a {model_name} checkpoint; load it with Grounder.from_pretrained")
        return load_vtgkit(path.with_suffix(".safetensors") if path.suffix == ".json" else path), preset, str(path)
    if path.suffix == ".ckpt":  # FlashVTG's released files are model_best.ckpt (spec flashvtg.md §9)
        raise ConfigError(f"{path}: a FlashVTG checkpoint (.ckpt); load it with Grounder.from_pretrained")
    loaded = load_pretrained(path, model="r2tuning", preset=preset, cache_dir=cache_dir, progress=progress)
    recorded = preset or (loaded.entry.preset if loaded.entry is not None else None)
    return loaded.model, recorded, str(loaded.path)


def load_clip_for_grounding(weights: str | os.PathLike[str], cache_dir: Any) -> tuple[Any, str]:
    """(frozen CLIP, identity string for the feature-cache key: resolved file + size + mtime)."""
    from vtgkit.features.clip_weights import download_weights, load_clip

    text = os.fspath(weights)
    path = Path(text).expanduser()
    if not path.is_file():
        if not text.startswith("ViT-"):
            raise CheckpointError(f"CLIP weights {text}: no such file (give a weight file or an OpenAI arch name "
                                  "such as ViT-B/32)")
        try:
            path = download_weights(text, Path(cache_dir) / "clip" if cache_dir is not None else None)
        except ConfigError as error:
            raise CheckpointError(f"the checkpoint needs CLIP {text}, which vtgkit cannot download ({error}); "
                                  "pass its weight file with clip_weights= / --clip-weights") from error
    stat = path.stat()
    return load_clip(path), f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def clip_fingerprint(clip: Any) -> str:
    """sha256 of a CLIP's patch embedding, positional embeddings and first text block: tells weight files apart
    for the feature-cache key when the CLIP did not come from a file (hashing all ~600 MB would take seconds)."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in (clip.visual.conv1.weight, clip.visual.positional_embedding, clip.positional_embedding,
                   clip.transformer.resblocks[0].attn.in_proj_weight):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return "weights-sha256:" + digest.hexdigest()


def check_clip_fits(clip: Any, config: Any) -> None:
    found = (clip.config.vision_width, clip.config.tokens_per_image, clip.config.transformer_width)
    expected = (config.video_dims, config.tokens_per_frame, config.query_dims)
    if found != expected:
        raise CheckpointError(
            f"the CLIP weights give (visual width, tokens per frame, text width) = {found} but the checkpoint expects "
            f"{expected} (CLIP {config.clip_arch}); pass the matching --clip-weights")
    layers = min(clip.config.vision_layers, clip.config.transformer_layers) + 1
    if config.num_layers > layers:
        raise CheckpointError(f"the checkpoint reads {config.num_layers} CLIP layers but this CLIP has {layers}")
