"""Inference over an annotation file: dataset → model (eval) → official post-processing → ``Prediction`` records.

Used by ``vtgkit predict``. Each model plugs in through one ``PredictorEntry`` in ``PREDICTORS`` (how to load its
checkpoint, read its features, collate, post-process), so the loop itself never branches on the model.

Adding a model = adding one ``PredictorEntry`` to ``PREDICTORS``: ``build_dataset`` returns any map-style dataset
whose items have ``.sample`` (the ``GroundingSample``) and ``.video`` (T, ...), raising a ``VTGKitError`` for an
item that cannot be built; ``collate`` turns a list of them into the ``Batch`` the model's ``forward`` takes; the
loop then reads ``GroundingOutput.saliency`` / ``boundaries`` / ``boundary_mask`` and ``Batch.video_mask``.

Queries that cannot be predicted (missing or bad feature files, annotations that contradict the features, videos
outside the model's supported length) are never dropped silently: each becomes a ``FailedQuery`` with its reason.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vtgkit import predict_flashvtg
from vtgkit.atomic_files import atomic_write
from vtgkit.data.benchmarks import Benchmark
from vtgkit.data.collate import collate_grounding
from vtgkit.data.domain_splits import select_domain_split
from vtgkit.data.features_r2tuning import R2TuningFeatureReader
from vtgkit.data.grounding_dataset import GroundingDataset, GroundingItem
from vtgkit.errors import AnnotationError, ConfigError, FeatureError, FeatureFileNotFoundError, VTGKitError
from vtgkit.evaluation.postprocess import (
    PostprocessConfig,
    postprocess_boundaries,
    postprocess_config,
    postprocess_saliency,
)
from vtgkit.structures import Batch, GroundingSample, Prediction


@dataclass(frozen=True)
class FailedQuery:
    """A query that got no prediction, with a short category (for counts) and the full message."""

    sample: GroundingSample
    category: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"qid": self.sample.qid, "vid": self.sample.vid, "reason": self.category, "message": self.message}


@dataclass(frozen=True)
class PredictorEntry:
    """How ``vtgkit predict`` runs one model.

    Attributes:
        load_model: (checkpoint path, benchmark) -> model in eval mode on CPU.
        build_dataset: (samples, data root, benchmark, model) -> dataset of items without training targets.
        collate: items -> Batch the model's ``forward`` accepts.
        postprocess: (benchmark name, model) -> the model's official post-processing of boundary rows.
        clip_range: model -> (min, max) number of clips a video may have (None: no bound).
        infer_benchmark: checkpoint path -> benchmark name, for models whose checkpoints record it (then
            ``--dataset`` may be omitted); None when the benchmark must be given.
    """

    load_model: Callable[[Path, Benchmark], nn.Module]
    build_dataset: Callable[[list[GroundingSample], Path, Benchmark, nn.Module], Dataset]
    collate: Callable[[list[Any]], Batch]
    postprocess: Callable[[str, nn.Module], PostprocessConfig]
    clip_range: Callable[[nn.Module], tuple[int | None, int | None]]
    infer_benchmark: Callable[[Path], str] | None = None


# ----------------------------------------------------------------------------------------------- R²-Tuning entry
# Official config name of each benchmark (spec r2-tuning.md §1.2). Presets differ only in training settings; the
# architecture itself is read from the checkpoint's shapes.
_R2TUNING_PRESETS = {"qvhighlights": "qvhighlights", "charades_sta": "charades", "tacos": "tacos",
                     "ego4d_nlq": "ego4d", "youtube_highlights": "youtube_dog", "tvsum": "tvsum_bk"}


def _load_r2tuning(checkpoint: Path, benchmark: Benchmark) -> nn.Module:
    from vtgkit.models.r2tuning import convert

    if checkpoint.is_dir() or checkpoint.suffix in {".safetensors", ".json"}:
        return convert.load_vtgkit(checkpoint)  # vtgkit's own format: safetensors weights + JSON config
    return convert.load_official_checkpoint(checkpoint, preset=_R2TUNING_PRESETS[benchmark.name])


def _r2tuning_dataset(samples: list[GroundingSample], data_root: Path, benchmark: Benchmark,
                      model: nn.Module) -> Dataset:
    config = model.config
    reader = R2TuningFeatureReader(data_root, arch=config.clip_arch, num_layers=config.num_layers,
                                   video_tokens=(config.tokens_per_frame, config.video_dims),
                                   query_dims=config.query_dims)
    for folder in (reader.video_dir, reader.query_dir):
        if not folder.is_dir():
            raise FeatureFileNotFoundError(f"feature folder not found: {folder} (expected the official cache layout "
                                           f"<data root>/{reader.video_dir.name} and {reader.query_dir.name})")
    return GroundingDataset(samples, reader, benchmark, with_targets=False)


def _r2tuning_postprocess(benchmark_name: str, model: nn.Module) -> PostprocessConfig:
    return postprocess_config("r2tuning", benchmark_name)


PREDICTORS: dict[str, PredictorEntry] = {
    "r2tuning": PredictorEntry(
        load_model=_load_r2tuning,
        build_dataset=_r2tuning_dataset,
        collate=collate_grounding,
        postprocess=_r2tuning_postprocess,
        clip_range=lambda model: (1, model.config.buffer_size),  # the point tables hold buffer_size clips
    ),
    "flashvtg": PredictorEntry(  # spec flashvtg.md §6; the pieces live in vtgkit.predict_flashvtg
        load_model=predict_flashvtg.load_flashvtg,
        build_dataset=predict_flashvtg.flashvtg_dataset,
        collate=predict_flashvtg.collate_flashvtg_items,
        postprocess=predict_flashvtg.flashvtg_postprocess,
        clip_range=lambda model: (1, model.config.buffer_size),
    ),
}


def get_predictor(name: str) -> PredictorEntry:
    if name not in PREDICTORS:
        raise ConfigError(f"no predictor for model {name!r}; choose one of {sorted(PREDICTORS)}")
    return PREDICTORS[name]


def resolve_benchmark_name(model_name: str, dataset: str | None, checkpoint: str | Path) -> str:
    """The benchmark to predict: ``dataset`` when given, else what the checkpoint records (if the model can say).

    A given ``dataset`` that contradicts the checkpoint's record is an error rather than a silent choice.
    """
    entry = get_predictor(model_name)
    recorded = entry.infer_benchmark(Path(checkpoint)) if entry.infer_benchmark is not None else None
    if dataset is None:
        if recorded is None:
            raise ConfigError(f"--dataset is required for --model {model_name}: its checkpoints do not record "
                              "the benchmark they were trained on")
        return recorded
    if recorded is not None and recorded != dataset:
        raise ConfigError(f"{checkpoint}: the checkpoint was trained on {recorded!r} but --dataset is {dataset!r}")
    return dataset


# ----------------------------------------------------------------------------------------------- the loop
_FAILURE_CATEGORIES: tuple[tuple[type[Exception], str], ...] = (
    (FeatureFileNotFoundError, "missing feature file"),
    (FeatureError, "bad feature file"),
    (AnnotationError, "annotation does not fit the features"),
)


def _categorise(error: Exception) -> str:
    for kind, category in _FAILURE_CATEGORIES:
        if isinstance(error, kind):
            return category
    return type(error).__name__


class _CheckedItems(Dataset):
    """Wraps a dataset so that an item that cannot be built becomes a ``FailedQuery`` instead of stopping the run."""

    def __init__(self, dataset: Dataset, samples: list[GroundingSample], clip_range: tuple[int | None, int | None]):
        self.dataset = dataset
        self.samples = samples
        self.min_clips, self.max_clips = clip_range

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> GroundingItem | FailedQuery:
        sample = self.samples[index]
        try:
            item = self.dataset[index]
        except VTGKitError as error:
            return FailedQuery(sample, _categorise(error), str(error))
        num_clips = int(item.video.shape[0])  # any item type whose video is (T, ...)
        if self.min_clips is not None and num_clips < self.min_clips:
            return FailedQuery(sample, "video too short for the model",
                               f"{num_clips} clips; the model needs at least {self.min_clips}")
        if self.max_clips is not None and num_clips > self.max_clips:
            return FailedQuery(sample, "video too long for the model",
                               f"{num_clips} clips; the model supports at most {self.max_clips}")
        return item


@dataclass
class PredictionRun:
    """Result of ``predict``: predictions in annotation order and the queries that failed."""

    predictions: list[Prediction] = field(default_factory=list)
    failures: list[FailedQuery] = field(default_factory=list)

    def failure_counts(self) -> Counter[str]:
        return Counter(failure.category for failure in self.failures)


def _split_batch(collate: Callable[[list[Any]], Batch]) -> Callable[[list[Any]], tuple[Batch | None, list]]:
    def collate_checked(entries: list[Any]) -> tuple[Batch | None, list[FailedQuery]]:
        failed = [entry for entry in entries if isinstance(entry, FailedQuery)]
        items = [entry for entry in entries if not isinstance(entry, FailedQuery)]
        return (collate(items) if items else None), failed

    return collate_checked


def predict(
    model_name: str,
    model: nn.Module,
    samples: list[GroundingSample],
    benchmark: Benchmark,
    data_root: str | Path,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    num_workers: int = 0,
    nms: bool = True,
    precision: str = "fp32",
    progress: bool = False,
) -> PredictionRun:
    """Predict every sample with ``model`` (already loaded) and the benchmark's official post-processing.

    Args:
        nms: apply the benchmark's NMS (False: clamp and unit rounding only, rows sorted by score).
        precision: "fp32", or "bf16" autocast for the adapter (heads stay float32 inside the model).
    """
    from tqdm import tqdm

    entry = get_predictor(model_name)
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch size must be >= 1 and workers >= 0; got {batch_size} and {num_workers}")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be 'fp32' or 'bf16'; got {precision!r}")
    config = None
    if benchmark.has_moments:
        config = entry.postprocess(benchmark.name, model)
        if not nms:
            config = dataclasses.replace(config, nms_method=None)
    dataset = _CheckedItems(entry.build_dataset(samples, Path(data_root), benchmark, model), samples,
                            entry.clip_range(model))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_split_batch(entry.collate))
    model = model.to(device).eval()
    device_type = torch.device(device).type
    run = PredictionRun()
    for batch, failed in tqdm(loader, desc=f"predict {benchmark.name}", unit="batch", disable=not progress):
        run.failures.extend(failed)
        if batch is None:
            continue
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            output = model(batch.to(device))
        run.predictions.extend(_records(batch, output, config))
    return run


def _records(batch: Batch, output: Any, config: PostprocessConfig | None) -> Iterator[Prediction]:
    lengths = batch.video_mask.sum(dim=1).tolist()
    for index, sample in enumerate(batch.samples):
        num_clips = int(lengths[index])
        saliency = output.saliency[index, :num_clips].float().cpu()  # (T,)
        scores = saliency.tolist() if config is None else postprocess_saliency(saliency, config)
        windows: list[list[float]] = []
        if config is not None and output.boundaries is not None:
            rows = output.boundaries[index].float().cpu()  # (N, 3)
            if output.boundary_mask is not None:
                rows = rows[output.boundary_mask[index].cpu()]
            if sample.duration is None:
                raise AnnotationError(f"qid {sample.qid!r}: predicted windows are clamped to the annotated "
                                      "duration, but the annotation has none")
            windows = postprocess_boundaries(rows, sample.duration, config)
        yield Prediction(qid=sample.qid, vid=sample.vid, query=sample.query,
                         pred_relevant_windows=windows, pred_saliency_scores=scores)


def load_samples(
    benchmark: Benchmark,
    annotations: str | Path,
    *,
    domain: str | None = None,
    split: str = "val",
    splits_file: str | Path | None = None,
) -> tuple[list[GroundingSample], Counter[str]]:
    """Samples to predict from an annotation file, plus a ``Counter`` of records left out and why.

    TVSum / YouTube Highlights: the official ``*_anno.json`` holds every video, so a ``domain`` and ``split`` pick
    the videos through the splits table (default ``<name>_splits.json`` beside the annotations); JSON-lines files
    are used as given, optionally restricted to one ``domain``.
    """
    if benchmark.has_moments and domain is not None:
        raise ConfigError(f"--domain applies to TVSum / YouTube Highlights, not {benchmark.name}")
    samples = benchmark.load(annotations)
    skipped: Counter[str] = Counter()
    if benchmark.has_moments:
        return samples, skipped
    if Path(annotations).suffix == ".json":
        if domain is None:
            raise ConfigError(f"{annotations}: the official {benchmark.name} annotation file holds every domain; "
                              "choose one with --domain (and --split)")
        if splits_file is None:
            splits_file = Path(annotations).with_name(f"{benchmark.name.split('_')[0]}_splits.json")
        return select_domain_split(samples, splits_file, domain, split)
    if domain is not None:
        kept = [sample for sample in samples if sample.domain == domain]
        if len(kept) != len(samples):
            skipped[f"other domain than {domain!r}"] = len(samples) - len(kept)
        if not kept:
            raise AnnotationError(f"{annotations}: no record of domain {domain!r}; domains: "
                                  f"{sorted({str(s.domain) for s in samples})}")
        samples = kept
    return samples, skipped


# ----------------------------------------------------------------------------------------------- output files
def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Write one JSON object per line atomically (a temporary file beside ``path``, renamed when complete)."""
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record) + "\n")
    return path


def failures_path(output: str | Path) -> Path:
    """Side file listing failed queries: ``OUT.jsonl`` -> ``OUT.failed.jsonl``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.failed.jsonl")
