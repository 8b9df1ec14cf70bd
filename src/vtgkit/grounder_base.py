"""What every raw-video grounder shares: result types, the query checks, and ground / highlights / summarize on top
of one windowed model pass.

A grounder subclass supplies three things: ``encode_query(text)`` (model-ready query features, cached per text),
``encode_video(path)`` (per-clip features with ``num_clips``, ``clip_len`` and ``duration``, cached per video) and
``_run_window(features, window, query)`` → (saliency (t,), moments (N, 3) window-local seconds after the model's
official post-processing). :meth:`WindowedGrounder.predict` cuts the video into the model's training-length windows
and merges them with :mod:`vtgkit.windowing`; the public calls are built on it. Used by :class:`vtgkit.api.Grounder`
(R²-Tuning) and :class:`vtgkit.flashvtg_grounding.FlashVTGGrounder`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.errors import ConfigError, QueryError, VideoError
from vtgkit.grounding_inputs import (
    QueryTruncatedWarning,
    check_query,
    existing_file,
    parse_budget,
    shorten,
    warn_if_not_latin,
)
from vtgkit.structures import Moment
from vtgkit.summary import DEFAULT_BUDGET_FRACTION, select_summary
from vtgkit.windowing import Window, merge_moments, merge_saliency, plan_windows

# Both models' highlights are query-conditioned; summarize() without a query asks for this (override it per call).
DEFAULT_SUMMARY_QUERY = "the most important and interesting moments of the video"
DUPLICATE_IOU = 0.7  # moments found by two overlapping windows with IoU >= this are one moment


@dataclass(frozen=True)
class Highlights:
    """Per-clip saliency of one (video, query) on the video's timeline."""

    saliency: np.ndarray  # (T,) float64; clip i covers [i * clip_len, min((i + 1) * clip_len, duration))
    clip_len: float
    duration: float

    def clips(self) -> list[Moment]:
        """Every clip as a Moment (time order) scored by its saliency."""
        return [Moment(i * self.clip_len, min((i + 1) * self.clip_len, self.duration), float(score))
                for i, score in enumerate(self.saliency) if i * self.clip_len < self.duration]

    def top(self, k: int | None = None) -> list[Moment]:
        """The ``k`` highest-saliency clips, best first (ties: earlier clip first)."""
        return sorted(self.clips(), key=lambda moment: -moment.score)[:k]


@dataclass(frozen=True)
class GroundingResult:
    """Everything one model pass gives: merged moments (best first) and per-clip saliency."""

    moments: list[Moment]
    highlights: Highlights


def checked_query_text(query: str, tokenizer: Any, context_length: int) -> str:
    """The cleaned query; QueryError when CLIP's tokenizer leaves nothing, warnings when it is cut or not Latin."""
    text = check_query(query)
    num_tokens = len(tokenizer.encode(text)) + 2  # + start/end of text
    if num_tokens == 2:
        raise QueryError(f"query {shorten(text)!r} is empty after CLIP's text cleaning")
    if num_tokens > context_length:
        warnings.warn(QueryTruncatedWarning(
            f"query has {num_tokens} CLIP tokens; only the first {context_length} are read (CLIP's context length, "
            "truncated like the official tool)"), stacklevel=3)
    warn_if_not_latin(text)
    return text


def window_duration(features: Any, window: Window) -> float:
    """Seconds of the video a window covers: its clips, the last window ending at the video's duration."""
    offset = window.start_clip * features.clip_len
    return min(window.end_clip * features.clip_len, features.duration) - offset


class WindowedGrounder:
    """ground / highlights / summarize / predict for a model run on training-length windows of a video.

    Subclasses set ``checkpoint`` (name shown in outputs), ``window_clips``, ``overlap_clips`` (None: a third of the
    window), ``has_moments`` and implement ``clip_len``, ``encode_query``, ``encode_video`` and ``_run_window``.
    """

    checkpoint: str = ""
    window_clips: int
    overlap_clips: int | None = None

    @property
    def has_moments(self) -> bool:
        """False for highlight-only models (no boundaries): ground() refuses, predict() gives no moments."""
        raise NotImplementedError

    @property
    def clip_len(self) -> float:
        raise NotImplementedError

    def encode_query(self, query: str) -> Any:
        raise NotImplementedError

    def encode_video(self, video: str | os.PathLike[str]) -> Any:
        raise NotImplementedError

    def _run_window(self, features: Any, window: Window, query: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _cached_or_probed(self, video: str | os.PathLike[str], clip: str) -> tuple[Path, str, Any, Any]:
        """(path, feature-cache key, cached features, None) on a cache hit, else (path, key, None, probe info).

        Subclasses keep ``cache`` (a FeatureCache) and ``extractor_settings``. A video shorter than one clip is a
        VideoError; ``clip`` describes the clip in that message.
        """
        from vtgkit.video_feature_cache import video_cache_key

        path = existing_file(video)
        key = video_cache_key(path, self.extractor_settings)  # type: ignore[attr-defined]
        cached = self.cache.get(key)  # type: ignore[attr-defined]
        if cached is not None:
            return path, key, cached, None
        from vtgkit.features.decoding import probe_video

        info = probe_video(path)
        if info.duration is not None and info.duration < self.clip_len:
            raise VideoError(f"{path}: the video lasts {info.duration:.2f} s, shorter than one clip ({clip})")
        return path, key, None, info

    # ------------------------------------------------------------------ public calls
    def ground(self, video: str | os.PathLike[str], query: str, top_k: int | None = 5) -> list[Moment]:
        """Moments of ``video`` matching ``query``, best first, at most ``top_k`` (None: all)."""
        if not self.has_moments:
            raise ConfigError(f"{self.checkpoint or 'this model'} is a highlight-only model (no boundary head): "
                              "use highlights() or summarize()")
        return self.predict(video, query).moments[:top_k]

    def highlights(self, video: str | os.PathLike[str], query: str) -> Highlights:
        """Per-clip saliency of ``video`` for ``query``."""
        return self.predict(video, query).highlights

    def summarize(self, video: str | os.PathLike[str], budget: float | str | None = None, *,
                  fraction: float = DEFAULT_BUDGET_FRACTION, query: str = DEFAULT_SUMMARY_QUERY) -> list[Moment]:
        """Highest-saliency clips within ``budget`` (seconds, or a string like ``"15%"``; default ``fraction`` of
        the video), joined where adjacent, in time order."""
        if isinstance(budget, str):
            budget, fraction = parse_budget(budget)
        highlights = self.highlights(video, query)
        try:
            return select_summary(highlights.saliency, highlights.clip_len, budget, duration=highlights.duration,
                                  fraction=fraction)
        except ValueError as error:
            raise ConfigError(f"{video}: cannot summarise: {error}") from error

    def predict(self, video: str | os.PathLike[str], query: str) -> GroundingResult:
        """One model pass: merged moments (all of them, best first; empty for highlight-only models) + saliency."""
        query_features = self.encode_query(query)
        features = self.encode_video(video)
        windows = plan_windows(features.num_clips, self.window_clips, self.overlap_clips)
        window_saliency, window_moments = [], []
        for window in windows:
            saliency, moments = self._run_window(features, window, query_features)
            window_saliency.append(saliency)
            window_moments.append(moments)
        saliency = merge_saliency(window_saliency, windows, features.num_clips)
        highlights = Highlights(saliency=saliency, clip_len=features.clip_len, duration=features.duration)
        if not self.has_moments:
            return GroundingResult(moments=[], highlights=highlights)
        merged = merge_moments(window_moments, windows, features.clip_len, iou_threshold=DUPLICATE_IOU)
        # Unit rounding after the official clamp may reach past the video's end (FlashVTG: a 13-s video's last 2-s
        # step ends at 14 s): a user-facing moment ends with the video. Rows clamped onto the video's end
        # (start == end) have no length: not a moment anyone can watch.
        moments = [Moment(float(s), float(min(e, features.duration)), float(score)) for s, e, score in merged
                   if min(e, features.duration) > s]
        return GroundingResult(moments=moments, highlights=highlights)
