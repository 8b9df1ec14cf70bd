"""``GroundingDataset``: annotation samples + cached features -> per-item tensors with the official targets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from vtgkit.data.benchmarks import Benchmark
from vtgkit.data.grounding_targets import (
    draw_positive_clip,
    repair_windows,
    saliency_from_scores,
    saliency_from_windows,
)
from vtgkit.errors import AnnotationError, ConfigError
from vtgkit.structures import GroundingSample


class FeatureSource(Protocol):
    """What the dataset needs from a feature cache (``R2TuningFeatureReader`` is one)."""

    def read_video(self, video_id: str) -> np.ndarray: ...

    def read_query(self, query_id: str) -> np.ndarray: ...


@dataclass
class GroundingItem:
    """One dataset item before collation.

    ``video`` (T, ...) and ``query`` (L, ...) keep the stored dtype and per-token layout (R²-Tuning: (T, K, P, Dv)
    and (L, K, Dq)). Targets are None when the annotation has none (e.g. QVHighlights test) or were not requested.
    """

    sample: GroundingSample
    video: torch.Tensor
    query: torch.Tensor
    fps: float
    boundaries: torch.Tensor | None = None  # (W, 2) seconds after the official repairs
    saliency: torch.Tensor | None = None  # (T,) float32 targets
    pos_clip: int | None = None

    @property
    def num_clips(self) -> int:
        return int(self.video.shape[0])


def describe(sample: GroundingSample) -> str:
    """Short location of a sample for error messages."""
    return f"qid {sample.qid!r} (vid {sample.vid!r})"


def filter_min_duration(
    samples: list[GroundingSample], min_duration: float | None
) -> tuple[list[GroundingSample], Counter[str]]:
    """Training filter of the official Grounding dataset (``min_video_len``): drop samples shorter than
    ``min_duration`` seconds. Returns the kept samples and a ``Counter`` of skip reasons for the caller to report."""
    if min_duration is None or min_duration <= 0:
        return list(samples), Counter()
    kept = [s for s in samples if s.duration is None or s.duration >= min_duration]
    skipped: Counter[str] = Counter()
    if len(kept) != len(samples):
        skipped[f"duration < {min_duration:g} s (training filter min_video_len)"] = len(samples) - len(kept)
    return kept, skipped


class GroundingDataset(Dataset):
    """Turns validated samples into ``GroundingItem``s the way the official R²-Tuning datasets do.

    Args:
        samples: parsed annotations (filter them first with ``filter_min_duration`` for training).
        features: a feature cache reader (``R2TuningFeatureReader`` for the official layout).
        benchmark: the benchmark's settings (fps, feature file naming, highlight target rules).
        with_targets: build boundaries / saliency / pos_clip (training, loss checks); prediction needs none.
    """

    def __init__(self, samples: list[GroundingSample], features: FeatureSource, benchmark: Benchmark,
                 *, with_targets: bool = True) -> None:
        self.samples = list(samples)
        self.features = features
        self.benchmark = benchmark
        self.with_targets = with_targets

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> GroundingItem:
        sample = self.samples[index]
        video = torch.from_numpy(self.features.read_video(self.benchmark.feature_video_id(sample)))
        query = torch.from_numpy(self.features.read_query(self.benchmark.feature_query_id(sample)))
        item = GroundingItem(sample=sample, video=video, query=query, fps=self.benchmark.sample_fps(sample))
        if self.benchmark.align_clip_count is not None:  # TVSum / YouTube: per-clip labels, no windows
            self._bind_clip_labels(item)
        elif self.with_targets:
            self._bind_moment_targets(item)
        return item

    def _bind_moment_targets(self, item: GroundingItem) -> None:
        sample, where = item.sample, describe(item.sample)
        if sample.windows:
            item.boundaries = repair_windows(sample.windows, item.num_clips, item.fps)
        if sample.saliency_scores is not None and sample.relevant_clip_ids is not None:
            if sample.duration is None:
                raise AnnotationError(f"{where}: saliency scores need the video duration")
            item.saliency = saliency_from_scores(sample.relevant_clip_ids, sample.saliency_scores, sample.duration,
                                                 item.fps, item.num_clips, self.benchmark.max_saliency, where)
        elif item.boundaries is not None:
            item.saliency = saliency_from_windows(item.boundaries, item.fps, item.num_clips, where)
        if item.saliency is not None:
            candidates = item.saliency.nonzero()[:, 0].tolist()
            item.pos_clip = draw_positive_clip(candidates, where)

    def _bind_clip_labels(self, item: GroundingItem) -> None:
        sample, where = item.sample, describe(item.sample)
        align, positives = self.benchmark.align_clip_count, self.benchmark.positive_clips
        if align is None or positives is None:
            raise ConfigError(f"benchmark {self.benchmark.name!r} needs both align_clip_count and positive_clips")
        if sample.clip_saliency is None:
            raise AnnotationError(f"{where}: {self.benchmark.name} samples need per-clip saliency labels")
        saliency = torch.tensor(sample.clip_saliency, dtype=torch.float32)
        # Features and labels are reconciled even without targets: TVSum cuts the video (spec §8.2).
        num_clips = align(item.num_clips, len(saliency), where)
        item.video = item.video[:num_clips]
        if self.with_targets:
            item.saliency = saliency[:num_clips]
            item.pos_clip = draw_positive_clip(positives(item.saliency.numpy()), where)
