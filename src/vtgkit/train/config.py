"""Typed training configuration: one frozen dataclass, printable, overridable from ``key=value`` strings.

A recipe (``vtgkit.train.recipes``) is a ``TrainConfig`` whose defaults reproduce one official training script.
Every run writes its resolved config next to its checkpoints (``config.json``) so that a run can be repeated.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from vtgkit.errors import ConfigError

ScheduleName = Literal["r2tuning_step", "flashvtg_step", "constant"]
PrecisionName = Literal["fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data on disk.

    ``batch_size`` is the official *effective* batch (all processes, all accumulation micro-steps). Each process
    runs micro-batches of ``micro_batch_size`` and accumulates ``batch_size / (micro_batch_size * world_size)`` of
    them per optimiser step, because the official batches do not fit a 24 GiB CPU machine (notes cpu-performance
    §6.1). Accumulation is not numerically the same as one big batch for these models: the contrastive terms
    (SampledNCE columns, InfoNCE) take their negatives from within a micro-batch.
    """

    recipe: str = "custom"
    model: str = "r2tuning"
    model_preset: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    dataset: str = "qvhighlights"  # a vtgkit.data benchmark name, or "synthvtg"
    domain: str | None = None  # TVSum category / YouTube Highlights domain
    data_root: str = ""  # folder with annotations and feature folders; recipe-specific layout
    train_split: str = "train"
    eval_split: str = "val"
    # Annotation files, relative to data_root (or absolute); "" = the recipe's official file names
    # (vtgkit.train.benchmark_data). splits_file: TVSum / YouTube split table for the official .json files.
    train_annotations: str = ""
    eval_annotations: str = ""
    test_annotations: str = ""  # scored once with the best checkpoint for metrics.json; "" = eval_annotations
    splits_file: str = ""
    repeat_train: int = 1  # R2-Tuning QVHighlights wraps its train set in RepeatDataset x4 (spec r2-tuning.md §1.2)
    min_video_len: float = 0.0  # train annotations with duration < this are dropped and counted (spec §1.2: 5)

    epochs: int = 30
    batch_size: int = 32
    micro_batch_size: int | None = None  # None: the whole per-process batch in one forward
    drop_last: bool = False  # FlashVTG YouTube-HL drops the last incomplete batch (spec flashvtg.md §7)
    lr: float = 5e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: ScheduleName = "r2tuning_step"
    lr_milestones: tuple[int, ...] = ()  # epochs (0-based index at which the step applies)
    lr_gamma: float = 0.1
    lr_drop: int = 0  # FlashVTG StepLR step_size
    flashvtg_loss_as_epoch: bool = False  # FlashVTG MR scripts: scheduler.step(loss) (spec flashvtg.md §7)
    warmup_iters: int = 0
    warmup_ratio: float = 0.001
    grad_clip: float | None = 35.0

    eval_every_epochs: int = 1
    eval_batch_size: int = 1
    best_metric: str = "MR-full-mAP"  # an evaluator key, or keys joined by "+" for their mean
    best_metric_higher_is_better: bool = True
    early_stop_evals: int | None = None  # FlashVTG max_es_cnt: stop after this many evals without improvement

    seed: int = 2024
    deterministic: bool = False
    precision: PrecisionName = "fp32"
    num_workers: int = 0
    log_every_steps: int = 10
    checkpoint_every_steps: int | None = None  # extra mid-epoch resume points; epochs always end with one
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests, benchmarks)
    tensorboard: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def format(self) -> str:
        """Human-readable ``key = value`` lines, in field order."""
        return "\n".join(f"{item.name:<24} = {getattr(self, item.name)!r}" for item in dataclasses.fields(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config written by :meth:`to_dict` (e.g. a run's ``config.json``); unknown keys raise."""
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown TrainConfig keys {unknown}; known keys: {sorted(names)}")
        hints = typing.get_type_hints(cls)
        converted = {key: _coerce(key, value, hints[key]) for key, value in values.items()}
        return cls(**converted)


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Return ``config`` with ``key=value`` overrides applied (values parsed as JSON when they parse, else text).

    ``model_overrides.<name>=value`` sets one entry of the model's config overrides.

    Raises:
        ConfigError: an override without ``=``, an unknown key, or a value of the wrong type.
    """
    hints = typing.get_type_hints(TrainConfig)
    changes: dict[str, Any] = {}
    model_overrides = dict(config.model_overrides)
    for override in overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {override!r} must look like key=value")
        value = _parse_value(text)
        if key.startswith("model_overrides."):
            model_overrides[key.removeprefix("model_overrides.")] = value
            continue
        if key not in hints:
            raise ConfigError(f"override {override!r}: unknown key {key!r}; known keys: {sorted(hints)}")
        changes[key] = _coerce(key, value, hints[key])
    changes["model_overrides"] = model_overrides
    return dataclasses.replace(config, **changes)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type hint and convert lists to tuples where the field is a tuple."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: got {value!r}, expected {hint}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: got {value!r}, expected one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: got {value!r}, expected a list")
        inner = args[0] if args else Any
        return tuple(_coerce(key, item, inner) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: got {value!r}, expected a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: got {value!r}, expected an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {value!r}, expected text")
        return value
    return value
