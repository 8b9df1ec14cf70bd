"""One training run from a recipe: build model and data, train with evaluation, score the best checkpoint.

The caller (the CLI) says where the data is through ``TrainingData``; this module never branches on a dataset
name. At the end the best checkpoint (or the last, when no evaluation ran) is scored on the held-out split with the
official evaluator and the full JSON is written to ``output_dir/metrics.json``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from vtgkit.atomic_files import write_text_atomic
from vtgkit.data import GroundingDataset, collate_grounding, filter_min_duration
from vtgkit.data.benchmarks import Benchmark
from vtgkit.data.domain_splits import select_domain_split
from vtgkit.errors import AnnotationError
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
class AnnotationSplit:
    """An annotation file, optionally restricted to one domain (TVSum category / YouTube Highlights domain).

    With ``splits_file`` (the official R²-Tuning ``*_anno.json`` holding every video) the videos are the
    ``split`` list of ``domain`` in that table, in table order; without it the file's rows whose ``domain`` field
    equals ``domain`` (FlashVTG's per-split jsonl files). Records left out are counted and logged.
    """

    path: Path
    domain: str | None = None
    split: str = "val"
    splits_file: Path | None = None


AnnotationRef = Path | AnnotationSplit


@dataclass(frozen=True)
class TrainingData:
    """Where a run's data is and how it is scored."""

    source: DataSource
    train_file: AnnotationRef
    eval_file: AnnotationRef  # selects the best checkpoint
    test_file: AnnotationRef | None  # scored once with the best checkpoint (metrics.json); None: eval_file
    postprocess: PostprocessConfig
    evaluator_dataset: str  # vtgkit.evaluation.evaluate's dataset name for these annotation files
    evaluator_protocol: str | None = None  # None: that dataset's default protocol
    # FlashVTG removes the saliency field from Charades-STA / TACoS submissions (spec flashvtg.md §6.6).
    keep_saliency: bool = True
    # Extra entries of every checkpoint, e.g. FlashVTG's official training options ("opt") for `vtgkit predict`.
    checkpoint_extras: dict[str, Any] = field(default_factory=dict)


def load_split(data: TrainingData, ref: AnnotationRef) -> list[GroundingSample]:
    """The samples of one annotation file (or one domain of it); records left out are logged with the reason.

    Raises:
        AnnotationError: nothing is left (e.g. an unknown domain), naming the file and the domains it has.
    """
    split = ref if isinstance(ref, AnnotationSplit) else AnnotationSplit(Path(ref))
    samples = data.source.load(split.path)
    skipped: Counter[str] = Counter()
    where = str(split.path)
    if split.domain is not None and split.splits_file is not None:
        samples, skipped = select_domain_split(samples, split.splits_file, split.domain, split.split)
        where = f"{split.path} (domain {split.domain!r}, split {split.split!r} of {split.splits_file})"
    elif split.domain is not None:
        kept = [sample for sample in samples if sample.domain == split.domain]
        if not kept:
            raise AnnotationError(f"{split.path}: no record of domain {split.domain!r}; domains in the file: "
                                  f"{sorted({str(sample.domain) for sample in samples})}")
        if len(kept) != len(samples):
            skipped[f"other domain than {split.domain!r}"] = len(samples) - len(kept)
        samples = kept
        where = f"{split.path} (domain {split.domain!r})"
    for reason, count in skipped.items():
        logger.warning("%s: left out %d records: %s", where, count, reason)
    if not samples:
        raise AnnotationError(f"{where}: no samples to use")
    return samples


def _ground_truth(ref: AnnotationRef, samples: list[GroundingSample]) -> tuple[Any, Path | None]:
    """What the evaluator scores against: R²-Tuning's annotation object + split table, or the samples' records."""
    if isinstance(ref, AnnotationSplit) and ref.splits_file is not None:
        return ref.path, ref.splits_file
    return [sample.raw for sample in samples], None


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
    samples = load_split(data, data.train_file)
    kept, skipped = filter_min_duration(samples, config.min_video_len)
    for reason, count in skipped.items():
        logger.warning("%s: skipped %d training samples: %s", data.train_file, count, reason)
    dataset = data.source.build(kept, True)
    if config.repeat_train > 1:
        # spec r2-tuning.md §1.2: QVHighlights wraps its train set in RepeatDataset x4.
        dataset = ConcatDataset([dataset] * config.repeat_train)
    return dataset


def score_split(model: torch.nn.Module, config: TrainConfig, data: TrainingData, path: AnnotationRef,
                device: torch.device, cache: dict[Any, Any] | None = None) -> dict[str, Any]:
    """The official evaluator's JSON for ``model`` on the annotation file (or domain split) ``path``.

    ``cache`` (a dict the caller keeps) holds the built evaluation dataset between calls: FlashVTG's items hold
    their features in memory, so repeated evaluations read the feature files once.
    """
    key = str(path)
    if cache is not None and key in cache:
        samples, dataset = cache[key]
    else:
        samples = load_split(data, path)
        dataset = data.source.build(samples, False)
        if cache is not None:
            cache[key] = (samples, dataset)
    predictions = predict_records(model, dataset, data.source.collate, data.postprocess,
                                  batch_size=config.eval_batch_size, device=device)
    if not data.keep_saliency:
        for record in predictions:
            record.pop("pred_saliency_scores", None)
    ground_truth, splits = _ground_truth(path, samples)
    return evaluate_records(data.evaluator_dataset, predictions, ground_truth, data.evaluator_protocol, splits)


def run_training(config: TrainConfig, data: TrainingData, output_dir: str | Path, *, resume: bool = False,
                 progress_bar: bool = True) -> tuple[TrainResult, dict[str, Any] | None]:
    """Train ``config`` on ``data`` into ``output_dir``; returns the result and the held-out metrics JSON."""
    output_dir = Path(output_dir)
    context = distributed.init_distributed("cpu" if not torch.cuda.is_available() else None)
    seed_everything(config.seed, config.deterministic)  # the same initial weights on every process
    model = build_model(config)

    eval_cache: dict[Any, Any] = {}

    def evaluate_fn(current: torch.nn.Module) -> dict[str, Any]:
        return flatten_metrics(score_split(current, config, data, data.eval_file, context.device, eval_cache))

    trainer = Trainer(model, config, _train_dataset(config, data), data.source.collate, output_dir,
                      evaluate_fn=evaluate_fn, context=context, progress_bar=progress_bar,
                      checkpoint_extras=data.checkpoint_extras)
    result = trainer.fit(resume=resume)
    metrics = None
    if context.is_main:
        best = output_dir / "best.pt"
        checkpoint = load_checkpoint(best if best.is_file() else output_dir / "last.pt")
        model.load_state_dict(checkpoint["model"])
        metrics = score_split(model, config, data, data.test_file or data.eval_file, context.device, eval_cache)
        write_text_atomic(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    distributed.barrier(context)
    distributed.shutdown(context)
    return result, metrics
