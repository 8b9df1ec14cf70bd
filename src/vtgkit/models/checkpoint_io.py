"""Safe checkpoint files: ``torch.load(weights_only=True)`` with clear errors, vtgkit's own format (safetensors weights
+ JSON config) written atomically through :mod:`vtgkit.atomic_files`. Shared by every model's ``convert.py``.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from vtgkit.atomic_files import atomic_path, write_text_atomic
from vtgkit.errors import CheckpointError

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def torch_load_safely(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; every failure becomes a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        named = _unsafe_globals(path, error)
        if named and set(named) <= _TRAINING_OPTION_GLOBALS:
            raise CheckpointError(
                f"{path}: refused by the safe loader: it pickles training options ({', '.join(named)}), as an "
                "official FlashVTG model_best.ckpt does; R2-Tuning checkpoints are plain state dicts. For FlashVTG "
                "use --model flashvtg (or model='flashvtg'); nothing from the file was executed"
            ) from None
        what = f"it names Python globals outside the allow-list: {', '.join(named)}" if named else str(error)
        raise CheckpointError(
            f"{path}: refused by the safe loader (weights_only=True) because {what}. Only tensors and plain "
            "containers are accepted and nothing from the file was executed; only load it if you trust it, and "
            "convert it to plain tensors first"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {error}") from error


# What official FlashVTG training checkpoints pickle besides tensors (see restricted_unpickler).
_TRAINING_OPTION_GLOBALS = {"argparse.Namespace", "nncore.utils.config.Config"}


def _unsafe_globals(path: Path, error: Exception) -> list[str]:
    """Globals the file names beyond torch's allow-list: a read-only scan of zip files; for the legacy format
    torch's message names the first one."""
    try:
        return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))))
    except Exception:  # legacy or unreadable file
        return re.findall(r"GLOBAL ([\w.]+)", str(error))[:1]


def extract_state_dict(checkpoint: Any, path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: ``checkpoint['state_dict']`` if present, else the dict itself;
    a ``module.`` prefix (DataParallel) is removed when the first key has it, as the official loader does."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a dict (a state dict or {{'state_dict': ...}}); "
                              f"found {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: 'state_dict' must be a non-empty dict of tensors; found {type(state).__name__}")
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: state dict entries that are not tensors: {not_tensors[:10]}")
    keys = list(state)
    if keys[0].startswith("module."):
        return OrderedDict((key.removeprefix("module."), value) for key, value in state.items())
    return OrderedDict(state)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A frozen config dataclass as JSON-ready data (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, data: dict[str, Any], source: str | Path) -> Any:
    """Rebuild a config dataclass from JSON data; lists become tuples; unknown fields raise."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise CheckpointError(f"{source}: unknown {config_class.__name__} field(s) {unknown}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    try:
        return config_class(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{source}: invalid {config_class.__name__}: {error}") from error


def _weights_and_config_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    return path / WEIGHTS_NAME, path / CONFIG_NAME


def save_vtgkit_checkpoint(
    path: str | Path, model_name: str, config: Any, state_dict: dict[str, torch.Tensor]
) -> tuple[Path, Path]:
    """Write ``model.safetensors`` + ``config.json`` into the directory ``path`` (or ``X.safetensors`` + ``X.json``
    when ``path`` ends in .safetensors). Both files are written atomically. Returns (weights, config) paths."""
    from safetensors.torch import save_file

    weights_path, config_path = _weights_and_config_paths(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    with atomic_path(weights_path) as temporary:
        save_file(tensors, str(temporary), metadata={"model": model_name, "format_version": str(FORMAT_VERSION)})
    record = {"format_version": FORMAT_VERSION, "model": model_name, "config": config_to_dict(config)}
    write_text_atomic(config_path, json.dumps(record, indent=2) + "\n")
    return weights_path, config_path


def load_vtgkit_checkpoint(path: str | Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Read a checkpoint written by :func:`save_vtgkit_checkpoint`. Returns (model name, config data, state dict)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, config_path = _weights_and_config_paths(path)
    for required in (weights_path, config_path):
        if not required.is_file():
            raise CheckpointError(f"{required}: not found (a vtgkit checkpoint is {WEIGHTS_NAME} + {CONFIG_NAME})")
    try:
        record = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_path}: not valid JSON: {error}") from error
    if not isinstance(record, dict) or not {"model", "config"} <= set(record):
        raise CheckpointError(f"{config_path}: expected keys 'model' and 'config'; found "
                              f"{sorted(record) if isinstance(record, dict) else type(record).__name__}")
    if record.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format_version {record['format_version']} is newer than this vtgkit "
                              f"({FORMAT_VERSION}); upgrade vtgkit")
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file (truncated or corrupt?): {error}") \
            from error
    return str(record["model"]), record["config"], state_dict
