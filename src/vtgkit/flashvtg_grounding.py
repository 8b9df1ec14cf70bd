"""Ground queries in raw videos with an official FlashVTG checkpoint (SlowFast + CLIP features made on the fly).

``Grounder.from_pretrained`` returns a :class:`FlashVTGGrounder` for FlashVTG checkpoints; it has the R²-Tuning
grounder's public calls (``ground`` / ``highlights`` / ``summarize`` / ``predict``, :mod:`vtgkit.grounder_base`).

What happens for one video (features are cached per video, so a second query runs only the text tower and FlashVTG):

1. Features as ``vtgkit extract --preset flashvtg-<benchmark>`` writes them, with the extraction code's own functions:
   SlowFast R50 8×8 rows (2304, float16, one per ``clip_len`` seconds, HERO's path) and CLIP image embeddings
   (512, float16, ffmpeg ``fps=1/clip_len`` → scale → crop, HERO's rate for videos under one interval). Both are cut
   to the shorter and kept in the checkpoint's folder order (QVHighlights: SlowFast then CLIP).
2. The query: CLIP text ``last_hidden_state`` (``ln_final``, float32), as the extract preset stores it.
3. Windows of the checkpoint's training length ``max_v_l`` clips (75 × 2 s = 150 s for QVHighlights; for
   checkpoints trained without a cap, Charades-STA / TACoS, the benchmark's training-video length of
   :data:`vtgkit.api.CLIP_SETTINGS`), merged by :mod:`vtgkit.windowing` as for R²-Tuning.
4. Per window, FlashVTG's official input preprocessing (L2 norm per folder, concatenation, TEF over the window;
   :func:`vtgkit.data.flashvtg_features.preprocess_video_rows`), the model, and its official post-processing (clamp,
   4 decimals, rounding to the clip length, NMS 0.7; saliency to 4 decimals), as ``vtgkit predict`` does. A video no
   longer than one window therefore gives what ``vtgkit extract`` + ``vtgkit predict --model flashvtg`` give, minus
   the zero-length and duplicate rows the user-facing list drops.

Checkpoints trained on InternVideo2 or VGG features are refused: vtgkit does not make those features.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtgkit.data.benchmarks import get_benchmark
from vtgkit.data.flashvtg_batches import FlashVTGItem, collate_flashvtg
from vtgkit.data.flashvtg_features import preprocess_query_tokens, preprocess_video_rows
from vtgkit.errors import CheckpointError, ConfigError, VideoError
from vtgkit.evaluation.postprocess import postprocess_boundaries, postprocess_saliency
from vtgkit.grounder_base import WindowedGrounder, checked_query_text, window_duration
from vtgkit.predict_flashvtg import DATASET_NAMES, feature_layout, flashvtg_postprocess
from vtgkit.structures import GroundingSample
from vtgkit.video_feature_cache import DEFAULT_MEMORY_BYTES, FeatureCache, VideoFeatures
from vtgkit.windowing import Window

# official dset_name → the extraction preset that makes its features
EXTRACTION_PRESETS = {"hl": "flashvtg-qvhighlights", "charadesSTA": "flashvtg-charades", "tacos": "flashvtg-tacos",
                      "tvsum": "flashvtg-tvsum", "youtube_uni": "flashvtg-youtube"}


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


class FlashVTGGrounder(WindowedGrounder):
    """A FlashVTG model with the CLIP and SlowFast encoders that make its inputs from a video file.

    Args:
        model: an eval-mode FlashVTG from an official checkpoint (:func:`vtgkit.models.flashvtg.convert.
            load_official_checkpoint`; its training options name the feature folders).
        clip: frozen CLIP (:func:`vtgkit.features.clip_weights.load_clip`); slowfast: :class:`SlowFastEncoder`.
        device: where FlashVTG runs (the encoders run on the CPU, as ``vtgkit extract`` does).
        precision: CLIP precision, ``"fp32"`` (what ``vtgkit extract`` does by default) or ``"bf16"``.
        pipeline: only ``"extraction"`` (FlashVTG has no single-video inference tool).
        window_seconds / overlap_seconds: override the window (default ``max_v_l`` clips) and its overlap.
        memory_cache_bytes / feature_cache_dir: the per-video feature cache (:class:`FeatureCache`).
        batch_frames: frames per CLIP forward (16, as ``vtgkit extract``).
        checkpoint: name shown in outputs; clip_source / slowfast_source: weight identities in the cache key.
    """

    def __init__(self, model: torch.nn.Module, clip: Any, slowfast: Any, *, device: str = "cpu",
                 precision: str = "fp32", pipeline: str = "extraction", window_seconds: float | None = None,
                 overlap_seconds: float | None = None, memory_cache_bytes: int = DEFAULT_MEMORY_BYTES,
                 feature_cache_dir: str | os.PathLike[str] | None = None, batch_frames: int = 16,
                 progress: bool = False, checkpoint: str = "", clip_source: str = "", slowfast_source: str = ""
                 ) -> None:
        from vtgkit.features.encoding import ClipEncoder
        from vtgkit.features.presets import get_preset
        from vtgkit.features.slowfast.sampling import parse_clip_len
        from vtgkit.features.tokenizer import default_tokenizer

        config = model.config
        dataset = config.dataset_name
        if dataset not in EXTRACTION_PRESETS:
            _refuse_unmade_features(checkpoint or "this checkpoint", dataset)
        if pipeline != "extraction":
            raise ConfigError(f"pipeline {pipeline!r}: FlashVTG checkpoints take the extraction pipeline only "
                              "(HERO's SlowFast+CLIP features)")
        self.layout = feature_layout(model)  # folder order and caps from the checkpoint's options
        self.preset = get_preset(EXTRACTION_PRESETS[dataset])
        made = {self.preset.slowfast_dir: "slowfast", self.preset.video_dir(self.preset.fps): "clip"}
        if set(self.layout.video_dirs) != set(made) or self.layout.text_dir != self.preset.text_dir():
            raise ConfigError(f"the checkpoint reads features from {list(self.layout.video_dirs)} + "
                              f"{self.layout.text_dir!r}; the {self.preset.name} extraction writes {list(made)} + "
                              f"{self.preset.text_dir()!r}")
        self._parts = [made[folder] for folder in self.layout.video_dirs]  # e.g. ["slowfast", "clip"]
        self._clip_len = parse_clip_len(Fraction(self.preset.clip_len).limit_denominator(1000))
        if not math.isclose(float(self._clip_len), config.clip_len, rel_tol=1e-6):
            raise ConfigError(f"the checkpoint's clip length is {config.clip_len} s; the {self.preset.name} "
                              f"features have {float(self._clip_len)} s clips")
        widths = {"slowfast": slowfast.row_shape[0], "clip": clip.config.embed_dim}
        if sum(widths.values()) + 2 != config.video_dim or clip.config.transformer_width != config.query_dim:
            raise CheckpointError(
                f"SlowFast ({widths['slowfast']}) + CLIP ({widths['clip']}) + 2 TEF = {sum(widths.values()) + 2} "
                f"video dims and CLIP text width {clip.config.transformer_width}, but the checkpoint expects "
                f"{config.video_dim} and {config.query_dim}; pass the matching --clip-weights / --slowfast-weights")
        if clip.config.image_resolution != self.preset.frame_size:
            raise CheckpointError(f"the CLIP takes {clip.config.image_resolution}px images; the {self.preset.name} "
                                  f"features are made from {self.preset.frame_size}px frames")
        self._widths = [widths[part] for part in self._parts]
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.clip = clip
        self.encoder = ClipEncoder(clip, "flashvtg", precision=precision)
        self.slowfast = slowfast
        self.tokenizer = default_tokenizer()
        self.benchmark = get_benchmark(DATASET_NAMES[dataset].benchmark)
        # As `vtgkit predict`: the benchmark's moment post-processing with NMS 0.7; none for highlight-only models.
        self.postprocess = (flashvtg_postprocess(self.benchmark.name, model)
                            if self.benchmark.has_moments and not config.highlight_only else None)
        self.checkpoint = checkpoint
        self.precision = precision
        self.batch_frames = batch_frames
        self.progress = progress
        self.window_clips = self._window_clips(window_seconds)
        self.overlap_clips = None if overlap_seconds is None else round(overlap_seconds / self.clip_len)
        if self.overlap_clips is not None and not 0 <= self.overlap_clips < self.window_clips:
            raise ConfigError(f"overlap {overlap_seconds} s must be >= 0 and shorter than the window "
                              f"({self.window_clips * self.clip_len:g} s)")
        self.cache = FeatureCache(memory_cache_bytes, feature_cache_dir)
        self._queries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.extractor_settings = {
            "model": "flashvtg", "preset": self.preset.name, "parts": self._parts, "clip_len": str(self._clip_len),
            "clip": clip_source or _fingerprint(clip), "slowfast": slowfast_source or _slowfast_fingerprint(slowfast),
            "precision": precision,
        }

    def _window_clips(self, window_seconds: float | None) -> int:
        # The official loader cuts features to max_v_l rows, so no window may be longer; the point generator holds
        # buffer_size positions.
        cap = min(v for v in (self.config.max_video_len, self.config.buffer_size) if v > 0)
        if window_seconds is None:
            if self.config.max_video_len > 0:
                return cap
            from vtgkit.api import CLIP_SETTINGS  # uncapped training (Charades-STA, TACoS): the benchmark's length

            window_seconds = CLIP_SETTINGS[self.benchmark.name].window_seconds
        if not window_seconds > 0:
            raise ConfigError(f"window must be > 0 seconds, got {window_seconds}")
        return min(max(1, round(window_seconds / self.clip_len)), cap)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], *,
                        clip_weights: str | os.PathLike[str] | None = None,
                        slowfast_weights: str | os.PathLike[str] | None = None, benchmark: str | None = None,
                        preset: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        progress: bool = True, **options: Any) -> FlashVTGGrounder:
        """A released ``flashvtg-*`` name (placed by hand in the cache: the message says where), an official
        ``model_best.ckpt`` or a vtgkit-format checkpoint (``vtgkit train``'s ``best.safetensors`` + ``best.json``),
        with CLIP (default ViT-B/32) and SlowFast (default ``SLOWFAST_8x8_R50.pkl``) weights.

        ``benchmark`` may only repeat the checkpoint's own (its ``dset_name`` decides the settings); ``preset``
        overrides the model configuration of an official file as in :func:`vtgkit.pretrained.load_pretrained`
        (a vtgkit-format checkpoint carries its whole configuration, so ``preset`` is refused there).
        """
        from vtgkit.grounder_loading import load_clip_for_grounding, load_vtgkit_flashvtg, vtgkit_checkpoint_model
        from vtgkit.pretrained import PRETRAINED, load_pretrained

        text = os.fspath(name_or_path)
        entry = PRETRAINED.get(text)
        if entry is not None and entry.preset not in {"qvhighlights", "charades_sta", "tacos", "tvsum",
                                                      "youtube_highlights"}:
            raise ConfigError(f"{entry.name} was trained on {entry.preset.rsplit('_', 1)[-1]} features, which vtgkit "
                              "does not make; raw-video grounding takes the SlowFast+CLIP FlashVTG checkpoints "
                              "(flashvtg-qvhighlights, flashvtg-tacos, flashvtg-tvsum)")
        vtgkit_format = entry is None and vtgkit_checkpoint_model(text) == "flashvtg"
        if vtgkit_format:
            if preset is not None:
                raise ConfigError(f"{text}: a vtgkit-format checkpoint carries its own FlashVTG configuration; "
                                  f"drop preset={preset!r}")
            model = load_vtgkit_flashvtg(text)
            _refuse_unmade_widths(text, model.config)
            source = text
        else:
            loaded = load_pretrained(name_or_path, model="flashvtg", preset=preset, cache_dir=cache_dir,
                                     progress=progress)
            model = loaded.model
            source = entry.name if entry is not None else str(loaded.path)
        dataset = model.config.dataset_name
        recorded = DATASET_NAMES[dataset].benchmark if dataset in DATASET_NAMES else None
        if benchmark is not None and benchmark != recorded:
            raise ConfigError(f"{text}: a FlashVTG checkpoint trained on {recorded or dataset!r}; its settings "
                              f"cannot be swapped for {benchmark!r} (drop --benchmark)")
        if dataset not in EXTRACTION_PRESETS:  # before loading any encoder weights
            _refuse_unmade_features(text, dataset)
        clip, clip_source = load_clip_for_grounding(clip_weights or "ViT-B/32", cache_dir)
        slowfast, slowfast_source = load_slowfast_for_grounding(slowfast_weights, cache_dir)
        options.setdefault("progress", progress)
        try:
            return cls(model, clip, slowfast, checkpoint=source, clip_source=clip_source,
                       slowfast_source=slowfast_source, **options)
        except CheckpointError as error:
            if not vtgkit_format:
                raise
            layout = feature_layout(model)
            raise CheckpointError(
                f"{text}: {error} (a vtgkit-format checkpoint records no feature folders; its dataset_name "
                f"{dataset!r} means the official layout {' + '.join(layout.video_dirs)} + 2 TEF, which raw-video "
                "grounding makes with SlowFast R50 + CLIP)") from None

    # ------------------------------------------------------------------ WindowedGrounder
    @property
    def clip_len(self) -> float:
        return float(self._clip_len)

    @property
    def has_moments(self) -> bool:
        return self.postprocess is not None

    def encode_query(self, query: str) -> torch.Tensor:
        """Preprocessed query tokens (L, Dq) float32 (official cut + L2 norm), cached per text."""
        text = checked_query_text(query, self.tokenizer, self.clip.config.context_length)
        if text in self._queries:
            self._queries.move_to_end(text)
            return self._queries[text]
        hidden = self.encoder.encode_queries(self.tokenizer, [text])[0]["last_hidden_state"]  # (L, Dq) float32
        tokens = torch.from_numpy(preprocess_query_tokens(hidden, self.layout))
        self._queries[text] = tokens
        if len(self._queries) > 256:
            self._queries.popitem(last=False)
        return tokens

    def encode_video(self, video: str | os.PathLike[str]) -> VideoFeatures:
        """Raw SlowFast+CLIP rows (T, ΣD) float16 in the checkpoint's folder order, from the cache or made now."""
        path, key, cached, info = self._cached_or_probed(
            video, f"{self.clip_len:g} s for FlashVTG on {self.benchmark.name}")
        if cached is not None:
            return cached
        from tqdm.auto import tqdm

        total = math.ceil(info.duration / self.clip_len) if info.duration else None
        # SlowFast R50 is the slow part (seconds per clip on a CPU): one bar per encoder, in clips.
        with tqdm(total=total, unit="clip", desc=f"SlowFast {path.name[:24]}", disable=not self.progress,
                  leave=False) as bar:
            slowfast_rows = self.slowfast.encode_video(path, self._clip_len, on_clips=bar.update)
        with tqdm(total=total, unit="clip", desc=f"CLIP {path.name[:24]}", disable=not self.progress,
                  leave=False) as bar:
            made = {"slowfast": slowfast_rows, "clip": self._clip_rows(path, bar.update)}
        length = min(len(rows) for rows in made.values())  # the official loader cuts to the shortest
        if length == 0:
            raise VideoError(f"{path}: no clip of {self.clip_len:g} s could be sampled")
        rows = np.concatenate([made[part][:length] for part in self._parts], axis=1).astype(np.float16)
        duration = info.duration if info.duration else length * self.clip_len
        record = {"video": str(path), **self.extractor_settings}
        return self.cache.put(key, VideoFeatures(tokens=rows, clip_len=self.clip_len, duration=duration), record)

    def _clip_rows(self, path: Path, on_frames: Any) -> np.ndarray:
        """CLIP image embeddings (n, E) float16, sampled and batched as ``vtgkit extract`` does."""
        from vtgkit.features.extraction import flashvtg_clip_rate, iter_preset_frames
        from vtgkit.features.prefetch import prefetch

        fps = flashvtg_clip_rate(path, self.preset.fps)
        chunks, batch = [], []
        for _frame, image in prefetch(iter_preset_frames(self.preset, path, fps), max_items=2 * self.batch_frames):
            batch.append(image)
            if len(batch) == self.batch_frames:
                chunks.append(self.encoder.encode_frames(torch.stack(batch)))
                on_frames(len(batch))
                batch = []
        if batch:
            chunks.append(self.encoder.encode_frames(torch.stack(batch)))
            on_frames(len(batch))
        if not chunks:
            raise VideoError(f"{path}: no frame could be sampled at {fps:g} fps")
        return np.concatenate(chunks)

    def _run_window(self, features: VideoFeatures, window: Window, query: torch.Tensor
                    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(features.tokens[window.start_clip : window.end_clip])
        bounds = np.cumsum([0, *self._widths])
        parts = [rows[:, start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
        video = torch.from_numpy(preprocess_video_rows(parts))  # (t, ΣD + 2): TEF over the window
        duration = window_duration(features, window)
        sample = GroundingSample(qid=0, vid="video", query="", duration=duration)
        batch = collate_flashvtg([FlashVTGItem(sample=sample, video=video, query=query, clip_len=self.clip_len)])
        with torch.inference_mode():
            output = self.model(batch.to(self.device))
        saliency = output.saliency[0, : window.num_clips].float().cpu()
        moments = np.zeros((0, 3))
        if self.postprocess is None:
            return saliency.numpy().astype(np.float64), moments
        boundaries = output.boundaries[0].float().cpu()
        if output.boundary_mask is not None:
            boundaries = boundaries[output.boundary_mask[0].cpu()]
        moments = np.asarray(postprocess_boundaries(boundaries, duration, self.postprocess),
                             dtype=np.float64).reshape(-1, 3)
        return np.asarray(postprocess_saliency(saliency, self.postprocess), dtype=np.float64), moments


def _refuse_unmade_features(source: str, dataset: str) -> None:
    raise ConfigError(f"{source}: a FlashVTG checkpoint trained on {dataset!r} features (InternVideo2 / VGG), which "
                      "vtgkit does not make; raw-video grounding takes the SlowFast+CLIP checkpoints "
                      "(flashvtg-qvhighlights, flashvtg-tacos, flashvtg-tvsum)")


def _refuse_unmade_widths(source: str, config: Any) -> None:
    """A vtgkit-format checkpoint names only its ``dataset_name``, which Charades-STA shares between SlowFast+CLIP,
    VGG and InternVideo2 features: its input widths tell them apart (InternVideo2 770/4096, VGG 4098/300)."""
    from vtgkit.models.flashvtg.config import PRESETS

    for name in ("qvhighlights_internvideo2", "charades_sta_internvideo2", "charades_sta_vgg"):
        preset = PRESETS[name]
        if (config.dataset_name, config.video_dim, config.query_dim) == (
                preset.dataset_name, preset.video_dim, preset.query_dim):
            _refuse_unmade_features(source, config.dataset_name)


def load_slowfast_for_grounding(weights: str | os.PathLike[str] | None, cache_dir: Any) -> tuple[Any, str]:
    """(SlowFastEncoder, identity for the feature-cache key); a known name is downloaded into ``<cache>/slowfast``."""
    from vtgkit.features.slowfast.encoder import SlowFastEncoder
    from vtgkit.features.slowfast.weights import DEFAULT_WEIGHTS, SLOWFAST_WEIGHTS, download_weights, load_slowfast

    text = os.fspath(weights) if weights is not None else DEFAULT_WEIGHTS
    path = Path(text).expanduser()
    if not path.is_file():
        if text not in SLOWFAST_WEIGHTS:
            raise CheckpointError(f"SlowFast weights {text}: no such file (give a weight file or one of "
                                  f"{', '.join(SLOWFAST_WEIGHTS)})")
        path = download_weights(text, Path(cache_dir) / "slowfast" if cache_dir is not None else None)
    return SlowFastEncoder(load_slowfast(path)), _file_identity(path)


def _slowfast_fingerprint(slowfast: Any) -> str:
    """sha256 of the SlowFast's first two weight tensors: tells weight sets apart in the cache key when the encoder
    did not come from a file."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in list(slowfast.model.state_dict().values())[:2]:
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return "weights-sha256:" + digest.hexdigest()


def _fingerprint(clip: Any) -> str:
    from vtgkit.grounder_loading import clip_fingerprint

    return clip_fingerprint(clip)
