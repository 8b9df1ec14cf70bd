"""Model registry: ``MODELS`` maps a name to its model class; ``create_model`` builds one from a preset.

Each model package exports its model class, its frozen config dataclass and ``PRESETS`` (name → config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from vtgkit.errors import ConfigError
from vtgkit.models.flashvtg import PRESETS as FLASHVTG_PRESETS
from vtgkit.models.flashvtg import FlashVTG, FlashVTGConfig
from vtgkit.models.r2tuning import PRESETS as R2TUNING_PRESETS
from vtgkit.models.r2tuning import R2Tuning, R2TuningConfig


@dataclass(frozen=True)
class ModelEntry:
    model_class: type[nn.Module]
    config_class: type
    presets: dict[str, Any]
    default_preset: str


_ENTRIES: dict[str, ModelEntry] = {
    "r2tuning": ModelEntry(R2Tuning, R2TuningConfig, R2TUNING_PRESETS, "qvhighlights"),
    "flashvtg": ModelEntry(FlashVTG, FlashVTGConfig, FLASHVTG_PRESETS, "qvhighlights"),
}

MODELS: dict[str, type[nn.Module]] = {name: entry.model_class for name, entry in _ENTRIES.items()}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(MODELS)


def list_presets(name: str) -> list[str]:
    """Preset names of one model."""
    return sorted(_entry(name).presets)


def _entry(name: str) -> ModelEntry:
    if name not in _ENTRIES:
        raise ConfigError(f"unknown model {name!r}; choose one of {list_models()}")
    return _ENTRIES[name]


def create_config(name: str, preset: str | None = None, **overrides: Any) -> Any:
    """The config of ``preset`` (default: the model's main preset) with field overrides."""
    entry = _entry(name)
    preset = entry.default_preset if preset is None else preset
    if preset not in entry.presets:
        raise ConfigError(f"unknown {name} preset {preset!r}; choose one of {sorted(entry.presets)}")
    fields = {f.name for f in dataclasses.fields(entry.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown {entry.config_class.__name__} field(s) {unknown}; valid: {sorted(fields)}")
    return dataclasses.replace(entry.presets[preset], **overrides)


def create_model(name: str, preset: str | None = None, **overrides: Any) -> nn.Module:
    """Build a randomly initialised model, e.g. ``create_model("r2tuning", "charades", adapter_dropout=0.3)``."""
    return _entry(name).model_class(create_config(name, preset, **overrides))


__all__ = ["MODELS", "create_config", "create_model", "list_models", "list_presets"]
