"""Load official FlashVTG checkpoints (spec flashvtg.md §9) into :class:`FlashVTG`.

Our module tree keeps the official parameter names, so the key table is the identity; the only rewrite is the
``module.`` prefix of DataParallel-saved files. Every key and shape is checked, and mismatches are listed by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.models.flashvtg.config import FlashVTGConfig, config_from_options
from vtgkit.models.flashvtg.model import FlashVTG
from vtgkit.models.restricted_unpickler import load_restricted_checkpoint, namespace_to_dict


def official_to_vtgkit_key(key: str) -> str:
    """Map an official state-dict key to ours (identity but for the DataParallel ``module.`` prefix)."""
    return key.removeprefix("module.")


def convert_state_dict(
    official: Mapping[str, torch.Tensor], model: FlashVTG, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Rename and check an official state dict against ``model``.

    Raises:
        CheckpointError: listing missing keys, unexpected keys and shape mismatches.
    """
    converted = {official_to_vtgkit_key(key): value for key, value in official.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    mismatched = [
        f"{key}: checkpoint {tuple(converted[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in converted and converted[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if mismatched:
            parts.append(f"shape mismatches {mismatched}")
        raise CheckpointError(
            f"{source}: the state dict does not fit FlashVTG with this configuration: {'; '.join(parts)}"
        )
    return {key: value.float() for key, value in converted.items()}


def _options(checkpoint: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    if "opt" in checkpoint:
        return namespace_to_dict(checkpoint["opt"]), f"{path} ['opt']"
    beside = path.with_name("opt.json")
    if beside.is_file():
        return json.loads(beside.read_text(encoding="utf-8")), str(beside)
    raise CheckpointError(
        f"{path}: no training options ('opt' entry) and no opt.json beside it; pass a config explicitly"
    )


_R2TUNING_PREFIXES = ("coef", "adapter.", "pyramid.", "class_head.", "coord_head.")


def refuse_other_model(checkpoint: Any, path: str | Path) -> None:
    """Raise a clear error when a loaded file is an R²-Tuning checkpoint (``{'state_dict', 'meta'}`` with its keys)
    rather than FlashVTG's ``{'model', 'opt', ...}``."""
    if not isinstance(checkpoint, Mapping) or "model" in checkpoint or "opt" in checkpoint:
        return
    state = checkpoint.get("state_dict", checkpoint)
    keys = [key for key in state if isinstance(key, str)] if isinstance(state, Mapping) else []
    if any(key.removeprefix("module.").startswith(_R2TUNING_PREFIXES) for key in keys[:20]):
        raise CheckpointError(f"{path}: an R2-Tuning checkpoint (state dict keys {keys[:3]}...), not FlashVTG's "
                              "{'model', 'opt'} file; use --model r2tuning (or model='r2tuning')")


@dataclass
class OfficialCheckpoint:
    """An official checkpoint loaded into vtgkit: the model (eval mode), its config and the training options."""

    model: FlashVTG
    config: FlashVTGConfig
    options: dict[str, Any]


def load_official_checkpoint(
    path: str | Path, config: FlashVTGConfig | None = None, map_location: str | torch.device = "cpu"
) -> OfficialCheckpoint:
    """Build a :class:`FlashVTG` from an official ``model_best.ckpt`` (or a plain state-dict file).

    The configuration is read from the checkpoint's ``opt`` (or the ``opt.json`` next to it) unless ``config`` is
    given. Loading goes through :func:`load_restricted_checkpoint`, so nothing in the file is executed.

    Returns:
        The model in eval mode with the official weights, its configuration and the training options (empty when
        neither ``opt`` nor ``opt.json`` exists and ``config`` was given).
    """
    path = Path(path)
    checkpoint = load_restricted_checkpoint(path, map_location=map_location)
    refuse_other_model(checkpoint, path)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(checkpoint).__name__}")
    if "model" in checkpoint:
        state_dict = checkpoint["model"]
    elif "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
    elif all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise CheckpointError(f"{path}: no 'model' or 'state_dict' entry; found keys {sorted(checkpoint)[:10]}")
    options: dict[str, Any] = {}
    if config is None or "opt" in checkpoint or path.with_name("opt.json").is_file():
        options, source = _options(checkpoint, path)
    if config is None:
        try:
            config = config_from_options(options, source)
        except ConfigError as error:
            raise CheckpointError(str(error)) from None
    model = FlashVTG(config)
    model.load_state_dict(convert_state_dict(state_dict, model, str(path)), strict=True)
    # Kept on the model so that predictors find the feature folder names the checkpoint was trained with.
    model.official_options = options
    return OfficialCheckpoint(model.eval(), config, options)


def save_official_layout(model: FlashVTG, path: str | Path) -> None:
    """Write ``model``'s weights as an official-layout ``{"model": state_dict}`` file (round-trip tests)."""
    torch.save({"model": model.state_dict()}, Path(path))
