"""One training run from a recipe: build model and data, train with evaluation, score the best checkpoint.

The caller (the CLI) says where the data is through ``TrainingData``; this module never branches on a dataset
name. At the end the best checkpoint (or the last, when no evaluation ran) is scored on the held-out split with the
official evaluator and the full JSON is written to ``output_dir/metrics.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from vtgkit.data import GroundingDataset, collate_grounding, filter_min_duration
from vtgkit.data.benchmarks import Benchmark
from vtgkit.evaluation.postprocess import PostprocessConfig
from vtgkit.structures import Batch, GroundingSample
from vtgkit.train import distributed
from vtgkit.train.checkpointing import load_checkpoint
from vtgkit.train.config import TrainConfig
from vtgkit.train.loop import Trainer, TrainResult, seed_everything
from vtgkit.train.validation import evaluate_records, flatten_metrics, predict_records

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSource:
    """How one model family turns annotation samples into a dataset and batches.

    ``build(samples, with_targets)`` returns a map-style dataset; ``collate`` turns a list of its items into a
    ``Batch``; ``load`` parses an annotation file into ``GroundingSample``s.
    """

    load: Callable[[Path], list[GroundingSample]]
    build: Callable[[list[GroundingSample], bool], Any]
    collate: Callable[[list[Any]], Batch]


@dataclass(frozen=True)
class TrainingData:
    """Where a run's data is and how it is scored."""

    source: DataSource
    train_file: Path
    eval_file: Path  # selects the best checkpoint
    test_file: Path | None  # scored once with the best checkpoint (metrics.json); None: eval_file
    postprocess: PostprocessConfig
    evaluator_dataset: str  # vtgkit.evaluation.evaluate's dataset name for these annotation files
    evaluator_protocol: str | None = None  # None: that dataset's default protocol


def r2tuning_source(benchmark: Benchmark, features: Any) -> DataSource:
    """R²-Tuning cached CLIP tokens through ``GroundingDataset`` and the official collation."""
    return DataSource(
        load=benchmark.load,
        build=lambda samples, with_targets: GroundingDataset(samples, features, benchmark, with_targets=with_targets),
        collate=collate_grounding,
    )


def flashvtg_source(benchmark: Benchmark, reader: Any, label_kind: str, seed: int) -> DataSource:
    """FlashVTG features (normalised + TEF) with its saliency labels, drawn once per item (data layer)."""
    from vtgkit.data.flashvtg_batches import build_flashvtg_items, collate_flashvtg

    return DataSource(
        load=benchmark.load,
        build=lambda samples, with_targets: build_flashvtg_items(
            samples, reader, label_kind if with_targets else None, seed=seed),
        collate=collate_flashvtg,
    )


def build_model(config: TrainConfig) -> torch.nn.Module:
    """The model of ``config.model`` from its preset plus ``config.model_overrides`` (``vtgkit.models``)."""
    from vtgkit.models import create_model

    return create_model(config.model, config.model_preset, **config.model_overrides)


def _train_dataset(config: TrainConfig, data: TrainingData) -> Any:
    samples = data.source.load(data.train_file)
    kept, skipped = filter_min_duration(samples, config.min_video_len)
    for reason, count in skipped.items():
        logger.warning("%s: skipped %d training samples: %s", data.train_file, count, reason)
    dataset = data.source.build(kept, True)
    if config.repeat_train > 1:
        # spec r2-tuning.md §1.2: QVHighlights wraps its train set in RepeatDataset x4.
        dataset = ConcatDataset([dataset] * config.repeat_train)
    return dataset


def score_split(model: torch.nn.Module, config: TrainConfig, data: TrainingData, path: Path,
                device: torch.device) -> dict[str, Any]:
    """The official evaluator's JSON for ``model`` on the annotation file ``path``."""
    samples = data.source.load(path)
    dataset = data.source.build(samples, False)
    predictions = predict_records(model, dataset, data.source.collate, data.postprocess,
                                  batch_size=config.eval_batch_size, device=device)
    ground_truth = [sample.raw for sample in samples]
    return evaluate_records(data.evaluator_dataset, predictions, ground_truth, data.evaluator_protocol)


def run_training(config: TrainConfig, data: TrainingData, output_dir: str | Path, *, resume: bool = False,
                 progress_bar: bool = True) -> tuple[TrainResult, dict[str, Any] | None]:
    """Train ``config`` on ``data`` into ``output_dir``; returns the result and the held-out metrics JSON."""
    output_dir = Path(output_dir)
    context = distributed.init_distributed("cpu" if not torch.cuda.is_available() else None)
    seed_everything(config.seed, config.deterministic)  # the same initial weights on every process
    model = build_model(config)

    def evaluate_fn(current: torch.nn.Module) -> dict[str, Any]:
        return flatten_metrics(score_split(current, config, data, data.eval_file, context.device))

    trainer = Trainer(model, config, _train_dataset(config, data), data.source.collate, output_dir,
                      evaluate_fn=evaluate_fn, context=context, progress_bar=progress_bar)
    result = trainer.fit(resume=resume)
    metrics = None
    if context.is_main:
        best = output_dir / "best.pt"
        checkpoint = load_checkpoint(best if best.is_file() else output_dir / "last.pt")
        model.load_state_dict(checkpoint["model"])
        metrics = score_split(model, config, data, data.test_file or data.eval_file, context.device)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    distributed.barrier(context)
    distributed.shutdown(context)
    return result, metrics
