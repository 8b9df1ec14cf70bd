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

FlashVTG checkpoints (SlowFast+CLIP ones: ``flashvtg-qvhighlights``, ``flashvtg-tacos``, ``flashvtg-tvsum`` or a
local official ``model_best.ckpt``) work through the same call: ``Grounder.from_pretrained`` then returns a
:class:`vtgkit.flashvtg_grounding.FlashVTGGrounder`, which has the same methods and result types but is *not* a
``Grounder`` subclass (both derive from :class:`vtgkit.grounder_base.WindowedGrounder`; test ``isinstance`` against
that). It makes SlowFast (2304) + CLIP image (512) rows per clip exactly as ``vtgkit extract --preset flashvtg-*``
does (pass ``slowfast_weights=``), windows of the checkpoint's ``max_v_l`` clips, and FlashVTG's official
preprocessing and post-processing per window. Checkpoints trained on InternVideo2 or VGG features are refused with
the reason (vtgkit does not make those features).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vtgkit.errors import ConfigError, VideoError
from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_boundaries
from vtgkit.grounder_base import (
    DEFAULT_SUMMARY_QUERY,
    DUPLICATE_IOU,
    GroundingResult,
    Highlights,
    WindowedGrounder,
    checked_query_text,
    window_duration,
)
from vtgkit.grounder_loading import (
    check_clip_fits,
    clip_fingerprint,
    is_flashvtg_checkpoint,
    load_clip_for_grounding,
    load_grounding_model,
)
from vtgkit.grounding_inputs import (
    QueryScriptWarning,
    QueryTruncatedWarning,
    check_query,
    check_video,
    parse_budget,
)
from vtgkit.structures import Batch
from vtgkit.video_feature_cache import (
    DEFAULT_MEMORY_BYTES,
    FeatureCache,
    VideoFeatures,
    release_mapped_pages,
)

__all__ = [
    "CLIP_SETTINGS", "DEFAULT_SUMMARY_QUERY", "DUPLICATE_IOU", "ClipSettings", "Grounder", "GroundingResult",
    "Highlights", "QueryScriptWarning", "QueryTruncatedWarning", "WindowedGrounder", "check_query", "check_video",
    "parse_budget",
]

Pipeline = Literal["extraction", "inference-tool"]
PIPELINES: tuple[str, ...] = ("extraction", "inference-tool")
DEFAULT_CHECKPOINT = "r2tuning-qvhighlights"
# Features of a video expected above this size are streamed to a temporary memory-mapped file instead of RAM.
IN_MEMORY_FEATURE_BYTES = 256 << 20


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


class Grounder(WindowedGrounder):
    """A frozen CLIP + an R²-Tuning model, with a per-video feature cache. Build it with :meth:`from_pretrained`.

    ``from_pretrained`` returns a :class:`vtgkit.flashvtg_grounding.FlashVTGGrounder` for FlashVTG checkpoints
    (same methods; check ``isinstance(g, WindowedGrounder)`` to accept both).

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
        self._spill_dir: Any = None  # tempfile.TemporaryDirectory for features of long videos
        self._spill_count = 0
        self.extractor_settings = {
            "clip": clip_source or clip_fingerprint(clip), "layers": self.config.num_layers, "fps": settings.fps,
            "pipeline": pipeline, "size": clip.config.image_resolution, "precision": precision,
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str] = DEFAULT_CHECKPOINT, *,
                        clip_weights: str | os.PathLike[str] | None = None, benchmark: str | None = None,
                        preset: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        progress: bool = True, slowfast_weights: str | os.PathLike[str] | None = None,
                        **options: Any) -> WindowedGrounder:
        """Load a released checkpoint by name (downloaded on first use) or a local checkpoint.

        FlashVTG checkpoints (a ``flashvtg-*`` name, an official ``.ckpt`` file or a vtgkit-format FlashVTG checkpoint)
        give a :class:`vtgkit.flashvtg_grounding.FlashVTGGrounder` instead of a ``Grounder``: same public methods and
        result types, not a subclass of ``Grounder`` (both are :class:`vtgkit.grounder_base.WindowedGrounder`).

        Args:
            name_or_path: a name of ``vtgkit.pretrained.list_pretrained()``, an official ``.pth`` (R²-Tuning) or
                ``.ckpt`` (FlashVTG) file, or a vtgkit checkpoint of either model (folder with model.safetensors +
                config.json, or ``X.safetensors`` + ``X.json``; the config says which model).
            clip_weights: CLIP weight file (OpenAI ``.pt``, state dict or safetensors) or arch name; default the
                checkpoint's arch (ViT-B/32), downloaded into the cache on first use.
            slowfast_weights: FlashVTG only: SlowFast R50 8x8 weights (Caffe2 ``.pkl`` or PySlowFast/pytorchvideo
                ``.pyth``) or a known name; default ``SLOWFAST_8x8_R50.pkl``, downloaded into ``slowfast/``.
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
            ConfigError: a FlashVTG checkpoint trained on features vtgkit does not make (InternVideo2, VGG), or
                ``slowfast_weights`` for an R²-Tuning checkpoint.
        """
        if is_flashvtg_checkpoint(name_or_path):
            from vtgkit.flashvtg_grounding import FlashVTGGrounder

            return FlashVTGGrounder.from_pretrained(
                name_or_path, clip_weights=clip_weights, slowfast_weights=slowfast_weights, benchmark=benchmark,
                preset=preset, cache_dir=cache_dir, progress=progress, **options)
        if slowfast_weights is not None:
            raise ConfigError(f"{os.fspath(name_or_path)}: an R2-Tuning checkpoint; SlowFast weights apply to FlashVTG "
                              "checkpoints only")
        model, recorded_preset, source = load_grounding_model(name_or_path, preset, cache_dir, progress)
        chosen = benchmark or (benchmark_of_preset(recorded_preset) if recorded_preset else None)
        if chosen is None:
            chosen = "qvhighlights" if model.config.use_coord_head else "tvsum"
        if chosen not in CLIP_SETTINGS:
            raise ConfigError(f"unknown benchmark {chosen!r}; choose one of {sorted(CLIP_SETTINGS)}")
        clip, clip_source = load_clip_for_grounding(clip_weights or model.config.clip_arch, cache_dir)
        options.setdefault("progress", progress)
        return cls(model, clip, CLIP_SETTINGS[chosen], checkpoint=source, clip_source=clip_source, **options)

    # ------------------------------------------------------------------ public calls (WindowedGrounder)
    @property
    def clip_len(self) -> float:
        return self.settings.clip_len

    @property
    def has_moments(self) -> bool:
        return self.model.coord_head is not None

    # ------------------------------------------------------------------ features
    def encode_video(self, video: str | os.PathLike[str]) -> VideoFeatures:
        """The video's CLIP tokens (T, K, P, D) float16, from the cache or decoded and encoded now."""
        path, key, cached, info = self._cached_or_probed(
            video, f"{self.clip_len:g} s at {self.settings.fps:g} fps for {self.settings.benchmark}")
        if cached is not None:
            return cached
        record = {"video": str(path), **self.extractor_settings}
        sink = self.cache.tokens_path(key)
        if sink is not None:
            # Rows go straight to the cache file: memory stays flat whatever the video length.
            num_clips = self._extract_to_file(path, sink, info.duration)
            duration = info.duration if info.duration else num_clips * self.clip_len
            return self.cache.put_file(key, self.clip_len, duration, record)
        if self._expected_bytes(info.duration) <= IN_MEMORY_FEATURE_BYTES:
            tokens = self._extract(path, info.duration)
        else:
            # A long video (or one whose length the container does not give): rows go to a temporary file that is
            # then memory-mapped, so resident memory does not grow with the video (a 10-hour video is ~5.5 GB of
            # ViT-B/32 K=4 tokens). Joining batches in memory would briefly hold two copies.
            tokens = self._extract_to_temporary_map(path, info.duration)
        duration = info.duration if info.duration else tokens.shape[0] * self.clip_len
        return self.cache.put(key, VideoFeatures(tokens=tokens, clip_len=self.clip_len, duration=duration), record)

    def _expected_bytes(self, duration: float | None) -> float:
        if not duration:
            return math.inf
        row_bytes = 2 * math.prod(self.encoder.video_row_shape)  # float16
        return math.ceil(duration * self.settings.fps) * row_bytes

    def _extract_to_temporary_map(self, path: Path, duration: float | None) -> np.ndarray:
        import tempfile

        if self._spill_dir is None:
            # Removed with the Grounder (or at interpreter exit); on POSIX each file is unlinked as soon as it is
            # mapped, so nothing stays on disk once its features are dropped.
            self._spill_dir = tempfile.TemporaryDirectory(prefix="vtgkit-features-")
        target = Path(self._spill_dir.name) / f"{os.getpid()}-{id(path)}-{self._spill_count}.npy"
        self._spill_count += 1
        self._extract_to_file(path, target, duration)
        tokens = np.load(target, mmap_mode="r")
        try:
            target.unlink()  # the mapping keeps the data alive (POSIX); Windows keeps the file until cleanup
        except OSError:
            pass
        return tokens

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
        checked_query_text(text, self.tokenizer, context)
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
    def _run_window(self, features: VideoFeatures, window: Any, query: tuple[torch.Tensor, torch.Tensor]
                    ) -> tuple[np.ndarray, np.ndarray]:
        query_tokens, query_mask = query
        num_clips = window.num_clips
        video = torch.from_numpy(np.array(features.tokens[window.start_clip : window.end_clip]))  # (t, K, P, D)
        release_mapped_pages(features.tokens)  # a long video's map: keep only one window resident at a time
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
            duration = window_duration(features, window)
            moments = np.asarray(postprocess_boundaries(rows.float().cpu(), duration, self.settings.postprocess),
                                 dtype=np.float64).reshape(-1, 3)
        return saliency, moments
