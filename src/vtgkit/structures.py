"""Dataclasses that cross package borders.

Letters used in shape comments: B batch, T clips, L query tokens, N candidate moments, W ground-truth windows.
Times are in seconds unless a name says otherwise. Masks are 1 (valid) / 0 (padding).

Owners may add fields with defaults at the end; existing fields keep their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class GroundingSample:
    """One (video, query) record of an annotation file, validated by a benchmark parser in ``vtgkit.data``.

    ``qid`` keeps the type the file uses (QVHighlights uses ints) so that written predictions round-trip.
    """

    qid: int | str
    vid: str
    query: str
    duration: float | None
    windows: list[tuple[float, float]] = field(default_factory=list)  # ground-truth moments in seconds, as annotated
    relevant_clip_ids: list[int] | None = None  # QVHighlights: indices of the rated 2-s clips
    saliency_scores: list[list[float]] | None = None  # QVHighlights: one [s1, s2, s3] per relevant clip
    clip_saliency: list[float] | None = None  # per-clip saliency targets in [0, 1] (TVSum / YouTube Highlights)
    domain: str | None = None  # TVSum category / YouTube Highlights domain
    raw: dict[str, Any] = field(default_factory=dict)  # the annotation line as read, for writing it back


@dataclass
class Batch:
    """Model inputs for a batch, padded to the longest video (T) and query (L) of the batch."""

    video: torch.Tensor  # (B, T, ...) per-clip features; layout depends on the model
    query: torch.Tensor  # (B, L, ...) per-token features
    video_mask: torch.Tensor  # (B, T) 1 valid / 0 padding
    query_mask: torch.Tensor  # (B, L)
    fps: torch.Tensor  # (B,) clips per second of each sample
    boundaries: torch.Tensor | None = None  # (B, W, 2) seconds, padding rows +inf (official collation)
    saliency: torch.Tensor | None = None  # (B, T) saliency targets, padding 0
    pos_clip: torch.Tensor | None = None  # (B, 1) index of a positive clip per sample (saliency / calibration losses)
    samples: list[GroundingSample] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # model-specific inputs (e.g. FlashVTG saliency labels)

    @property
    def batch_size(self) -> int:
        return int(self.video.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor to ``device`` (non-tensor fields are shared)."""

        def move(value: Any) -> Any:
            return value.to(device) if isinstance(value, torch.Tensor) else value

        return Batch(
            video=move(self.video),
            query=move(self.query),
            video_mask=move(self.video_mask),
            query_mask=move(self.query_mask),
            fps=move(self.fps),
            boundaries=move(self.boundaries),
            saliency=move(self.saliency),
            pos_clip=move(self.pos_clip),
            samples=self.samples,
            extras={key: move(value) for key, value in self.extras.items()},
        )


@dataclass
class GroundingOutput:
    """What every model's ``forward`` returns, so predictors, trainers and evaluators never branch on the model."""

    saliency: torch.Tensor  # (B, T) per-clip highlight scores
    boundaries: torch.Tensor | None = None  # (B, N, 3) [start_s, end_s, score], best first, before post-processing
    boundary_mask: torch.Tensor | None = None  # (B, N) bool, False on padding rows of unequal-length batches
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # weighted terms plus "total" when targets are given
    extras: dict[str, Any] = field(default_factory=dict)  # model-specific intermediates (debug, loss inputs)


@dataclass
class Prediction:
    """One line of a QVHighlights-format submission (after the official post-processing)."""

    qid: int | str
    vid: str
    query: str | None
    pred_relevant_windows: list[list[float]]  # [[start_s, end_s, score], ...] best first
    pred_saliency_scores: list[float]  # one score per clip

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"qid": self.qid}
        if self.query is not None:
            record["query"] = self.query
        record["vid"] = self.vid
        record["pred_relevant_windows"] = self.pred_relevant_windows
        record["pred_saliency_scores"] = self.pred_saliency_scores
        return record


@dataclass(frozen=True)
class Moment:
    """One time span of a video with a score: a retrieved moment, a summary segment or a ground-truth window.

    Times are seconds on the full video's timeline (after window merging); ``score`` is model-specific (higher is
    better) and 1.0 for ground truth.
    """

    start: float
    end: float
    score: float = 1.0

    @property
    def duration(self) -> float:
        return self.end - self.start
