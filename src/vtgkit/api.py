"""Grounding on your own videos: ``Grounder.from_pretrained(...)`` then ``ground`` / ``highlights`` / ``summarize``.

>>> from vtgkit import Grounder                                       # doctest: +SKIP
>>> grounder = Grounder.from_pretrained("r2tuning-qvhighlights")      # doctest: +SKIP
>>> grounder.ground("match.mp4", "a goal is scored", top_k=3)         # doctest: +SKIP
[Moment(start=84.0, end=96.0, score=0.81), ...]

What happens (docs/grounding.md has the long version):

1. The video is decoded as a stream and sampled at the checkpoint's clip rate (0.5 fps for QVHighlights); each frame
   goes through the frozen CLIP and its last K layers' tokens are kept as float16, one row per clip. By default the
   frames follow the official feature-extraction tool (ffmpeg fps filter, resize-then-crop, CLIP's normalisation,
   spec r2-tuning.md §10), i.e. exactly what the released checkpoints were trained on; ``pipeline="inference-tool"``
   follows ``tools/inference.py`` instead (frame-index stride, crop-then-resize, rounded constants, all 77 query
   positions, spec §14).
2. Features are cached per video (:mod:`vtgkit.video_feature_cache`): a second query on the same file runs only the
   text tower and the small R² model.
3. Videos longer than the model's training videos are cut into overlapping windows of that length and merged
   (:mod:`vtgkit.windowing`): saliency is averaged where windows overlap, moments are pooled and de-duplicated.
4. Each window's moments get the benchmark's official post-processing (clamp, unit rounding, NMS,
   :mod:`vtgkit.evaluation.postprocess`).

Only R²-Tuning runs on raw videos. FlashVTG needs SlowFast features, which vtgkit cannot extract yet: its checkpoints
raise a clear error (use ``vtgkit predict`` on extracted features).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vtgkit.errors import ConfigError, QueryError, VideoError
from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_boundaries
from vtgkit.grounder_loading import check_clip_fits, clip_fingerprint, load_clip_for_grounding, load_grounding_model
from vtgkit.grounding_inputs import (
    QueryScriptWarning,
    QueryTruncatedWarning,
    check_query,
    check_video,
    existing_file,
    parse_budget,
    shorten,
    warn_if_not_latin,
)
from vtgkit.structures import Batch, Moment
from vtgkit.summary import DEFAULT_BUDGET_FRACTION, select_summary
from vtgkit.video_feature_cache import DEFAULT_MEMORY_BYTES, FeatureCache, VideoFeatures, video_cache_key
from vtgkit.windowing import merge_moments, merge_saliency, plan_windows

__all__ = [
    "CLIP_SETTINGS", "DEFAULT_SUMMARY_QUERY", "ClipSettings", "Grounder", "GroundingResult", "Highlights",
    "QueryScriptWarning", "QueryTruncatedWarning", "check_query", "check_video", "parse_budget",
]

Pipeline = Literal["extraction", "inference-tool"]
PIPELINES: tuple[str, ...] = ("extraction", "inference-tool")
DEFAULT_CHECKPOINT = "r2tuning-qvhighlights"
# R²-Tuning highlights are query-conditioned; summarize() without a query asks for this (override it per call).
DEFAULT_SUMMARY_QUERY = "the most important and interesting moments of the video"
DUPLICATE_IOU = 0.7  # moments found by two overlapping windows with IoU >= this are one moment


@dataclass(frozen=True)
class ClipSettings:
    """How a benchmark's checkpoints see a video: clip rate, training-video length and moment post-processing."""

    benchmark: str
    fps: float  # clips per second
    window_seconds: float  # length of the videos the model was trained on: the window for long videos
    postprocess: PostprocessConfig | None  # None for highlight-only models

    @property
    def clip_len(self) -> float:
        return 1.0 / self.fps


# Official clip rate, unit and NMS (spec r2-tuning.md §1.2, §5); window = typical training-video length of the
# benchmark (QVHighlights videos are cut to 150 s; Charades-STA ~30 s; TACoS ~5 min; Ego4D-NLQ clips 8 min;
# TVSum ~4 min). YouTube Highlights features have a per-video rate (one frame per labelled segment, §10.1), which a
# raw video does not have: vtgkit samples those at 0.5 fps.
CLIP_SETTINGS: dict[str, ClipSettings] = {
    "qvhighlights": ClipSettings("qvhighlights", 0.5, 150.0, PostprocessConfig("r2tuning", 2.0, None, "normal", 0.7)),
    "charades_sta": ClipSettings("charades_sta", 1.0, 30.0, PostprocessConfig("r2tuning", 0.1, None, "linear")),
    "tacos": ClipSettings("tacos", 0.5, 300.0, PostprocessConfig("r2tuning", None, None, "linear")),
    "ego4d_nlq": ClipSettings("ego4d_nlq", 0.5, 480.0, PostprocessConfig("r2tuning", None, None, "linear")),
    "youtube_highlights": ClipSettings("youtube_highlights", 0.5, 150.0, None),
    "tvsum": ClipSettings("tvsum", 0.5, 240.0, None),
}
_PRESET_BENCHMARK = {"qvhighlights": "qvhighlights", "charades": "charades_sta", "tacos": "tacos",
                     "ego4d": "ego4d_nlq", "youtube": "youtube_highlights", "tvsum": "tvsum"}


def benchmark_of_preset(preset: str) -> str:
    """Benchmark whose settings a model preset uses (``youtube_dog`` → ``youtube_highlights``)."""
    benchmark = _PRESET_BENCHMARK.get(preset) or _PRESET_BENCHMARK.get(preset.split("_")[0])
    if benchmark is None:
        raise ConfigError(f"no clip settings for preset {preset!r}; pass benchmark= one of {sorted(CLIP_SETTINGS)}")
    return benchmark


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


class Grounder:
    """A frozen CLIP + an R²-Tuning model, with a per-video feature cache. Build it with :meth:`from_pretrained`.

    Args:
        model: an eval-mode ``R2Tuning``.
        clip: the CLIP whose layers the model reads (``vtgkit.features.clip_model.CLIP``).
        settings: clip rate, window and post-processing (:data:`CLIP_SETTINGS`).
        device: where CLIP and the model run; cached features stay on the CPU in float16.
        precision: ``"fp32"`` (exact) or ``"bf16"`` (CPU autocast, ~3× faster CLIP where the CPU has native bf16,
            ~1 % feature error; ``vtgkit.features`` refuses it where bf16 would be emulated).
        pipeline: ``"extraction"`` or ``"inference-tool"`` (module docstring).
        window_seconds: override the window length (the training-video length of the benchmark).
        overlap_seconds: overlap of consecutive windows; default a third of the window.
        memory_cache_bytes: in-memory feature LRU budget; ``feature_cache_dir``: optional on-disk level.
        checkpoint: name shown in outputs; clip_source: identity of the CLIP weights in the feature-cache key
            (default: a hash of some of its weights, ``grounder_loading.clip_fingerprint``).
        batch_frames: frames per CLIP forward.
        progress: show a progress bar (clips) while a video is decoded and encoded.
    """

    def __init__(self, model: torch.nn.Module, clip: Any, settings: ClipSettings, *, device: str = "cpu",
                 precision: str = "fp32", pipeline: Pipeline = "extraction", window_seconds: float | None = None,
                 overlap_seconds: float | None = None, memory_cache_bytes: int = DEFAULT_MEMORY_BYTES,
                 feature_cache_dir: str | os.PathLike[str] | None = None, batch_frames: int = 16,
                 progress: bool = False, checkpoint: str = "", clip_source: str = "") -> None:
        from vtgkit.features.encoding import ClipEncoder
        from vtgkit.features.tokenizer import default_tokenizer

        if pipeline not in PIPELINES:
            raise ConfigError(f"unknown pipeline {pipeline!r}; choose one of {PIPELINES}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        check_clip_fits(clip, self.config)
        self.clip = clip.to(self.device)
        self.encoder = ClipEncoder(self.clip, "r2tuning", num_layers=self.config.num_layers, precision=precision)
        self.tokenizer = default_tokenizer()
        self.settings = settings
        self.precision = precision
        self.pipeline = pipeline
        self.checkpoint = checkpoint
        window = settings.window_seconds if window_seconds is None else window_seconds
        if not window > 0:
            raise ConfigError(f"window must be > 0 seconds, got {window}")
        self.window_clips = min(max(1, round(window / settings.clip_len)), self.config.buffer_size)
        self.overlap_clips = None if overlap_seconds is None else round(overlap_seconds / settings.clip_len)
        if self.overlap_clips is not None and not 0 <= self.overlap_clips < self.window_clips:
            raise ConfigError(f"overlap {overlap_seconds} s must be >= 0 and shorter than the window "
                              f"({self.window_clips * settings.clip_len:g} s)")
        self.batch_frames = batch_frames
        self.progress = progress
        self.cache = FeatureCache(memory_cache_bytes, feature_cache_dir)
        self._queries: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.extractor_settings = {
            "clip": clip_source or clip_fingerprint(clip), "layers": self.config.num_layers, "fps": settings.fps,
            "pipeline": pipeline, "size": clip.config.image_resolution, "precision": precision,
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT, *,
                        clip_weights: str | os.PathLike[str] | None = None, benchmark: str | None = None,
                        preset: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        progress: bool = True, **options: Any) -> Grounder:
        """Load a released checkpoint by name (downloaded on first use) or a local checkpoint.

        Args:
            name_or_path: a name of ``vtgkit.pretrained.list_pretrained()``, an official ``.pth`` file, or a
                vtgkit checkpoint (folder with model.safetensors + config.json, or ``X.safetensors`` + ``X.json``).
            clip_weights: CLIP weight file (OpenAI ``.pt``, state dict or safetensors) or arch name; default the
                checkpoint's arch (ViT-B/32), downloaded into the cache on first use.
            benchmark: whose clip rate / window / post-processing to use; default the checkpoint's, else that of
                ``preset``, else QVHighlights (moment models) or TVSum (highlight-only models).
            preset: R²-Tuning preset for official files that are not released checkpoints (spec §11.1).
            cache_dir: cache root for checkpoints (``checkpoints/``), CLIP weights (``clip/``); default
                ``$VTGKIT_CACHE`` or ``~/.cache/vtgkit``.
            progress: show progress bars (downloads, and decoding + encoding of each new video).
            options: keyword arguments of :class:`Grounder` (device, precision, pipeline, window_seconds, ...).

        Raises:
            CheckpointError: unknown name, unreadable file, offline without the file (the message says which file
                to place where), a CLIP that does not fit the model.
            ConfigError: a FlashVTG checkpoint (raw videos need SlowFast features, not supported yet).
        """
        model, recorded_preset, source = load_grounding_model(name_or_path, preset, cache_dir, progress)
        chosen = benchmark or (benchmark_of_preset(recorded_preset) if recorded_preset else None)
        if chosen is None:
            chosen = "qvhighlights" if model.config.use_coord_head else "tvsum"
        if chosen not in CLIP_SETTINGS:
            raise ConfigError(f"unknown benchmark {chosen!r}; choose one of {sorted(CLIP_SETTINGS)}")
        clip, clip_source = load_clip_for_grounding(clip_weights or model.config.clip_arch, cache_dir)
        options.setdefault("progress", progress)
        return cls(model, clip, CLIP_SETTINGS[chosen], checkpoint=source, clip_source=clip_source, **options)

    # ------------------------------------------------------------------ public calls
    @property
    def clip_len(self) -> float:
        return self.settings.clip_len

    def ground(self, video: str | os.PathLike[str], query: str, top_k: int | None = 5) -> list[Moment]:
        """Moments of ``video`` matching ``query``, best first, at most ``top_k`` (None: all)."""
        if self.model.coord_head is None:
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
        query_tokens, query_mask = self.encode_query(query)
        features = self.encode_video(video)
        windows = plan_windows(features.num_clips, self.window_clips, self.overlap_clips)
        window_saliency, window_moments = [], []
        for window in windows:
            saliency, moments = self._run_window(features, window, query_tokens, query_mask)
            window_saliency.append(saliency)
            window_moments.append(moments)
        saliency = merge_saliency(window_saliency, windows, features.num_clips)
        highlights = Highlights(saliency=saliency, clip_len=features.clip_len, duration=features.duration)
        if self.model.coord_head is None:
            return GroundingResult(moments=[], highlights=highlights)
        merged = merge_moments(window_moments, windows, features.clip_len, iou_threshold=DUPLICATE_IOU)
        # Rows clamped onto the video's end (start == end) have no length: not a moment anyone can watch.
        moments = [Moment(float(s), float(e), float(score)) for s, e, score in merged if e > s]
        return GroundingResult(moments=moments, highlights=highlights)

    # ------------------------------------------------------------------ features
    def encode_video(self, video: str | os.PathLike[str]) -> VideoFeatures:
        """The video's CLIP tokens (T, K, P, D) float16, from the cache or decoded and encoded now."""
        path = existing_file(video)
        key = video_cache_key(path, self.extractor_settings)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        from vtgkit.features.decoding import probe_video

        info = probe_video(path)
        if info.duration is not None and info.duration < self.clip_len:
            raise VideoError(f"{path}: the video lasts {info.duration:.2f} s, shorter than one clip "
                             f"({self.clip_len:g} s at {self.settings.fps:g} fps for {self.settings.benchmark})")
        record = {"video": str(path), **self.extractor_settings}
        sink = self.cache.tokens_path(key)
        if sink is not None:
            # Rows go straight to the cache file: memory stays flat whatever the video length.
            num_clips = self._extract_to_file(path, sink, info.duration)
            duration = info.duration if info.duration else num_clips * self.clip_len
            return self.cache.put_file(key, self.clip_len, duration, record)
        tokens = self._extract(path, info.duration)
        duration = info.duration if info.duration else tokens.shape[0] * self.clip_len
        return self.cache.put(key, VideoFeatures(tokens=tokens, clip_len=self.clip_len, duration=duration), record)

    def _frames(self, path: Path) -> Any:
        """Normalised frames (3, R, R) float32, one per clip, streamed."""
        from vtgkit.features.decoding import iter_fps_filter_frames, iter_frame_stride_frames
        from vtgkit.features.frame_transforms import clip_input_from_uint8, inference_tool_input

        size = self.clip.config.image_resolution
        if self.pipeline == "extraction":
            for frame in iter_fps_filter_frames(path, self.settings.fps, size=size):
                yield clip_input_from_uint8(frame[None])[0]
        else:
            for frame in iter_frame_stride_frames(path, self.settings.fps):
                yield inference_tool_input(frame, size=size)

    def _encoded_batches(self, path: Path, duration: float | None) -> Iterator[np.ndarray]:
        """CLIP rows (n, K, P, D) float16 for batches of ``batch_frames`` frames, streamed."""
        from tqdm.auto import tqdm

        pending: list[torch.Tensor] = []
        total = math.ceil(duration * self.settings.fps) if duration else None
        with tqdm(total=total, unit="clip", desc=path.name[:30], disable=not self.progress, leave=False) as bar:
            for image in self._frames(path):
                pending.append(image)
                if len(pending) == self.batch_frames:
                    yield self.encoder.encode_frames(torch.stack(pending).to(self.device))
                    bar.update(len(pending))
                    pending.clear()
            if pending:
                yield self.encoder.encode_frames(torch.stack(pending).to(self.device))
                bar.update(len(pending))

    def _extract(self, path: Path, duration: float | None) -> np.ndarray:
        chunks = list(self._encoded_batches(path, duration))
        if not chunks:
            raise VideoError(f"{path}: no frame could be sampled at {self.settings.fps:g} fps")
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]  # (T, K, P, D) float16

    def _extract_to_file(self, path: Path, target: Path, duration: float | None) -> int:
        from vtgkit.atomic_files import StreamingNpyWriter

        target.parent.mkdir(parents=True, exist_ok=True)
        with StreamingNpyWriter(target, np.float16, self.encoder.video_row_shape) as writer:
            for rows in self._encoded_batches(path, duration):
                writer.append(rows)
            if writer.rows == 0:
                raise VideoError(f"{path}: no frame could be sampled at {self.settings.fps:g} fps")
            writer.commit()
            return writer.rows

    def encode_query(self, query: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Query tokens (L, K, Dq) float32 and mask (L,), cached per text. Warns when truncated or not Latin."""
        text = check_query(query)
        if text in self._queries:
            self._queries.move_to_end(text)
            return self._queries[text]
        context = self.clip.config.context_length
        num_tokens = len(self.tokenizer.encode(text)) + 2  # + start/end of text
        if num_tokens == 2:
            raise QueryError(f"query {shorten(text)!r} is empty after CLIP's text cleaning")
        if num_tokens > context:
            warnings.warn(QueryTruncatedWarning(
                f"query has {num_tokens} CLIP tokens; only the first {context} are read (CLIP's context length, "
                "truncated like the official tool)"), stacklevel=2)
        warn_if_not_latin(text)
        if self.pipeline == "extraction":
            stored = self.encoder.encode_queries(self.tokenizer, [text])[0]["features"]  # (L, K, D) float16
            tokens = torch.from_numpy(stored).float()
            mask = torch.ones(tokens.shape[0])
        else:
            # spec r2-tuning.md §14.2: the online path keeps all 77 positions; the mask marks the non-zero ids.
            ids = self.tokenizer.tokenize([text], context_length=context, truncate=True).to(self.device)  # (1, 77)
            autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()
            with torch.inference_mode(), autocast:
                layers = self.clip.encode_text_layers(ids, self.config.num_layers)  # (1, K, 77, D)
            tokens = layers[0].transpose(0, 1).float().cpu()  # (77, K, D)
            mask = (ids[0] != 0).float().cpu()
        self._queries[text] = (tokens, mask)
        if len(self._queries) > 256:
            self._queries.popitem(last=False)
        return tokens, mask

    # ------------------------------------------------------------------ model
    def _run_window(self, features: VideoFeatures, window: Any, query_tokens: torch.Tensor,
                    query_mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        num_clips = window.num_clips
        video = torch.from_numpy(np.array(features.tokens[window.start_clip : window.end_clip]))  # (t, K, P, D)
        batch = Batch(
            video=video[None].to(self.device),
            query=query_tokens[None].to(self.device),
            video_mask=torch.ones(1, num_clips, device=self.device),
            query_mask=query_mask[None].to(self.device),
            fps=torch.tensor([self.settings.fps], device=self.device),
        )
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()
        # The inference tool runs the official (unmasked) semantics on its 77 query positions (spec §14.2, §15.3).
        official = True if self.pipeline == "inference-tool" else None
        with torch.inference_mode(), autocast:
            output = self.model(batch, official_padding=official)
        saliency = output.saliency[0, :num_clips].float().cpu().numpy()
        moments = np.zeros((0, 3))
        if output.boundaries is not None and self.settings.postprocess is not None:
            rows = output.boundaries[0]
            if output.boundary_mask is not None:
                rows = rows[output.boundary_mask[0]]
            offset = window.start_clip * features.clip_len
            duration = min(window.end_clip * features.clip_len, features.duration) - offset
            moments = np.asarray(postprocess_boundaries(rows.float().cpu(), duration, self.settings.postprocess),
                                 dtype=np.float64).reshape(-1, 3)
        return saliency, moments
