"""Batch extraction of video and query features into the official cache layouts, resumable and shardable.

One video at a time: a background thread decodes and samples frames (bounded queue) while the main thread runs
CLIP on batches and appends float16 rows straight to a hidden partial file, so memory does not grow with video
length. Each output appears atomically and is recorded in the manifest; a bad video is logged and the batch goes on.
What is extracted with a caveat is counted and listed in the warnings log: videos only partly decoded (the decoder's
``DamagedVideoWarning``, caught per video and passed on) and queries cut to CLIP's context (77 tokens, cut silently
as the official tools do). A query that fails is retried alone, so that only the failing ones reach the failure log.
FlashVTG presets with a SlowFast encoder also write ``<slowfast_dir>/<vid>.npz`` (HERO's SlowFast path, see
:mod:`vtgkit.features.slowfast`); each of a video's outputs is skipped on its own when already done.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtgkit.atomic_files import PARTIAL_PREFIX, StreamingNpyWriter, save_npy_atomic, save_npz_atomic
from vtgkit.errors import ConfigError, VideoError, VTGKitError
from vtgkit.features.annotation_queries import QueryText
from vtgkit.features.decoding import (
    DamagedVideoWarning,
    iter_fps_filter_frames,
    iter_frame_stride_frames,
    probe_video,
)
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.frame_transforms import clip_input_from_uint8, inference_tool_input
from vtgkit.features.manifest import ExtractionManifest, FailureLog
from vtgkit.features.prefetch import prefetch
from vtgkit.features.presets import ExtractionPreset
from vtgkit.features.slowfast.encoder import SlowFastEncoder
from vtgkit.features.slowfast.sampling import hero_clip_rate
from vtgkit.features.tokenizer import CLIPTokenizer
from vtgkit.features.warning_log import WarningLog

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
# What encoding one query may raise on bad input or a model problem (not a storage error, which stops the run).
QUERY_ERRORS = (VTGKitError, RuntimeError, ValueError)


@dataclass
class ExtractionReport:
    """Counts of one run; ``failures`` holds the failure-log entries of this run.

    ``partly_decoded`` videos and ``queries_cut`` queries were extracted and are listed in ``warning_log``;
    ``manifest_unreadable_lines`` lines of the manifests could not be read (their outputs are verified again from
    the file headers) and ``manifest_torn_line_cut`` says a killed run's torn last line was cut from this shard's.
    """

    done: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    frames: int = 0
    queries_done: int = 0
    queries_skipped: int = 0
    partials_removed: int = 0
    seconds: float = 0.0
    failure_log: Path | None = None
    partly_decoded: int = 0
    queries_cut: int = 0
    query_context: int = 77
    warning_log: Path | None = None
    manifest_unreadable_lines: int = 0
    manifest_torn_line_cut: bool = False


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as error:
        raise ConfigError(f"--shard {text!r}: expected i/n with integers, e.g. 0/4") from error
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: need n ≥ 1 and 0 ≤ i < n")
    return index, count


def iter_preset_frames(preset: ExtractionPreset, path: Path, fps: float
                       ) -> Iterator[tuple[np.ndarray | None, torch.Tensor]]:
    """(uint8 frame or None, CLIP input (3, R, R)) per sampled frame of ``path``, as ``preset`` samples them."""
    if preset.sampler == "fps-filter":
        for frame in iter_fps_filter_frames(path, fps, preset.frame_size):
            yield frame, clip_input_from_uint8(frame[None])[0]
    else:
        for frame in iter_frame_stride_frames(path, fps):
            yield None, inference_tool_input(frame, preset.frame_size)


def flashvtg_clip_rate(path: Path, fps: float) -> float:
    """The CLIP sampling rate of a FlashVTG preset for one video: HERO's higher rate for videos under one interval."""
    return hero_clip_rate(probe_video(path), fps)


def remove_own_partials(directory: Path, names: set[str]) -> int:
    """Delete the partial files a killed run left for the outputs ``names`` of ``directory``; returns how many.

    Only this shard's: another shard writing into the same folder may be filling its own partial files right now.
    """
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob(PARTIAL_PREFIX + "*"):
        # vtgkit.atomic_files names them PARTIAL_PREFIX + target name + "." + a random tag without dots
        if path.name[len(PARTIAL_PREFIX) :].rpartition(".")[0] in names:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def expand_video_paths(items: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their video files (sorted); order kept, duplicates removed."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()))
        else:
            paths.append(path)  # an unreadable path fails later, in the failure log
    return list(dict.fromkeys(paths))


class FeatureExtraction:
    """Extract one preset's caches into ``output``.

    Args:
        encoder: the CLIP runner for the preset's layout.
        preset: folder names, sampler, rate.
        output: the cache root (gets e.g. ``frames_224_0.5fps/``, ``clip_b32_vid_k4/``, ``clip_b32_txt_k4/``).
        fps: the sampling rate (None: per video from ``per_video_fps``, YouTube Highlights).
        settings: what made the files (weights, precision...), stored in the manifest and compared on reruns.
        slowfast: FlashVTG presets: the SlowFast runner (None: CLIP part only).
        slowfast_settings: what made the SlowFast files (weights, clip length), stored in the manifest.
        clip_len: SlowFast seconds per clip.
    """

    def __init__(self, encoder: ClipEncoder, preset: ExtractionPreset, output: Path, fps: float | None,
                 settings: dict[str, Any], per_video_fps: dict[str, float] | None = None, save_frames: bool = False,
                 batch_size: int = 16, shard: tuple[int, int] = (0, 1), progress: bool = True,
                 slowfast: SlowFastEncoder | None = None, slowfast_settings: dict[str, Any] | None = None,
                 clip_len: Fraction | None = None) -> None:
        if fps is None and per_video_fps is None:
            raise ConfigError(f"preset {preset.name} samples at a per-video rate: pass --annotations with "
                              "frames/fps/match per video, or --fps")
        if save_frames and preset.sampler != "fps-filter":
            raise ConfigError("--save-frames writes the frame-extraction tool's frames: use the fps-filter sampler")
        resolution = encoder.model.config.image_resolution
        if resolution != preset.frame_size:
            raise ConfigError(f"the CLIP weights take {resolution}px images, preset {preset.name} "
                              f"({preset.arch}) samples {preset.frame_size}px frames: pass the matching --arch")
        self.encoder = encoder
        self.preset = preset
        self.output = Path(output)
        self.fps = fps
        self.per_video_fps = per_video_fps
        self.save_frames = save_frames
        self.batch_size = batch_size
        self.shard = shard
        self.progress = progress
        shard_name = f"{shard[0]}of{shard[1]}"
        self.manifest = ExtractionManifest(self.output, shard_name)
        self.failures = FailureLog(self.output, shard_name)
        self.warnings = WarningLog(self.output, shard_name)
        self.settings = settings
        self.report = ExtractionReport(failure_log=self.failures.path, warning_log=self.warnings.path,
                                       query_context=encoder.model.config.context_length,
                                       manifest_unreadable_lines=self.manifest.unreadable_lines,
                                       manifest_torn_line_cut=self.manifest.partial_line_removed)
        if slowfast is not None and (preset.layout != "flashvtg" or not preset.slowfast_dir or clip_len is None):
            raise ConfigError(f"preset {preset.name} has no SlowFast features (only FlashVTG presets do)")
        self.slowfast = slowfast
        self.slowfast_settings = {**(slowfast_settings or {}), "clip_len": str(clip_len)}
        self.clip_len = clip_len

    # --- paths ---------------------------------------------------------------------------------------------------
    def _video_outputs(self, vid: str) -> dict[str, str]:
        outputs = {}
        if self.save_frames:
            outputs["frames"] = f"{self.preset.frames_dir(self.fps)}/{vid}.npy"
        suffix = ".npy" if self.preset.layout == "r2tuning" else ".npz"
        outputs["features"] = f"{self.preset.video_dir(self.fps)}/{vid}{suffix}"
        if self.slowfast is not None:
            outputs["slowfast"] = f"{self.preset.slowfast_dir}/{vid}.npz"
        return outputs

    def _settings_for(self, kind: str, fps: float | None) -> dict[str, Any]:
        if kind == "frames":
            return {"sampler": self.preset.sampler, "fps": fps, "size": self.preset.frame_size}
        if kind == "slowfast":
            return self.slowfast_settings
        return {**self.settings, "sampler": self.preset.sampler, "fps": fps}

    def _row_spec(self, kind: str) -> tuple[tuple[int, ...], str]:
        if kind == "frames":
            return (3, self.preset.frame_size, self.preset.frame_size), "uint8"
        if kind == "slowfast":
            return self.slowfast.row_shape, "float16"
        return self.encoder.video_row_shape, "float16"

    # --- one video -----------------------------------------------------------------------------------------------
    def _frames(self, path: Path, fps: float) -> Iterator[tuple[np.ndarray | None, torch.Tensor]]:
        """(uint8 frame or None, model input (3, R, R)) pairs, produced in the decoding thread."""
        return iter_preset_frames(self.preset, path, fps)

    def extract_video(self, path: Path, vid: str, fps: float) -> int:
        """Write every output of one video that is not done yet; returns the number of sampled CLIP frames."""
        outputs = self._video_outputs(vid)
        slowfast_output = outputs.pop("slowfast", None)
        if slowfast_output is not None and not self._output_done("slowfast", slowfast_output, fps):
            features = self.slowfast.encode_video(path, self.clip_len)  # (n_clips, 2304) float16, HERO's layout
            save_npz_atomic(self.output / slowfast_output, features=features)
            self.manifest.record(slowfast_output, str(path), self._settings_for("slowfast", fps))
        if all(self._output_done(kind, relative, fps) for kind, relative in outputs.items()):
            return 0
        writers: dict[str, StreamingNpyWriter] = {}
        pooled: list[np.ndarray] = []
        try:
            if "frames" in outputs:
                writers["frames"] = StreamingNpyWriter(self.output / outputs["frames"], np.uint8,
                                                       self._row_spec("frames")[0])
            if self.preset.layout == "r2tuning":
                writers["features"] = StreamingNpyWriter(self.output / outputs["features"], np.float16,
                                                         self.encoder.video_row_shape)
            count = 0
            batch: list[tuple[np.ndarray | None, torch.Tensor]] = []
            for item in prefetch(self._frames(path, fps), max_items=2 * self.batch_size):
                batch.append(item)
                if len(batch) == self.batch_size:
                    count += self._encode_batch(batch, writers, pooled)
                    batch = []
            if batch:
                count += self._encode_batch(batch, writers, pooled)
            for writer in writers.values():
                writer.commit()
            if self.preset.layout == "flashvtg":
                save_npz_atomic(self.output / outputs["features"], features=np.concatenate(pooled))
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
        for kind, relative in outputs.items():
            self.manifest.record(relative, str(path), self._settings_for(kind, fps))
        return count

    def _encode_batch(self, batch: list, writers: dict[str, StreamingNpyWriter], pooled: list[np.ndarray]) -> int:
        if "frames" in writers:
            writers["frames"].append(np.stack([frame for frame, _ in batch]))
        rows = self.encoder.encode_frames(torch.stack([image for _, image in batch]))
        if "features" in writers:
            writers["features"].append(rows)
        else:
            pooled.append(rows)
        return len(batch)

    def _output_done(self, kind: str, relative: str, fps: float) -> bool:
        row_shape, dtype = self._row_spec(kind)
        done, _reason = self.manifest.check_done(relative, self._settings_for(kind, fps), row_shape, dtype)
        if done and relative not in self.manifest.records:
            self.manifest.record(relative, "found on disk", self._settings_for(kind, fps))
        return done

    def _is_done(self, vid: str, fps: float) -> bool:
        return all(self._output_done(kind, relative, fps) for kind, relative in self._video_outputs(vid).items())

    # --- batches -------------------------------------------------------------------------------------------------
    def run_videos(self, videos: Sequence[Path]) -> None:
        from tqdm import tqdm

        index, count = self.shard
        mine = [path for position, path in enumerate(videos) if position % count == index]
        own: dict[str, set[str]] = {}
        for path in mine:
            for relative in self._video_outputs(path.stem).values():
                folder, _, name = relative.rpartition("/")
                own.setdefault(folder, set()).add(name)
        for folder, names in own.items():
            self.report.partials_removed += remove_own_partials(self.output / folder, names)
        seen: dict[str, Path] = {}
        bar = tqdm(mine, desc="videos", unit="video", disable=not self.progress, file=sys.stderr)
        for path in bar:
            vid = path.stem
            try:
                if vid in seen:
                    raise VideoError(f"{path}: video id {vid!r} already taken by {seen[vid]}")
                seen[vid] = path
                fps = self.fps if self.fps is not None else self._auto_fps(vid, path)
                if self.preset.layout == "flashvtg":
                    fps = flashvtg_clip_rate(path, fps)  # HERO's rate for videos under one interval
                if self._is_done(vid, fps):
                    self.report.skipped += 1
                    continue
                start = time.perf_counter()
                with _damage_caught() as damage:
                    frames = self.extract_video(path, vid, fps)
                self.report.done += 1
                if damage:
                    self.report.partly_decoded += 1
                    for message in damage:
                        self.warnings.add(str(path), DamagedVideoWarning.__name__, message)
                self.report.frames += frames
                bar.set_postfix(frames=frames, fps=f"{frames / (time.perf_counter() - start):.1f}")
            except Exception as error:  # noqa: BLE001
                # A bad video never stops the batch, whatever the decoder or model raised: it is logged with
                # the error type and message, printed, and counted in the summary (Ctrl-C still stops the run).
                self.failures.add(str(path), error)
                bar.write(f"failed: {path}: {error}", file=sys.stderr)
        self.report.failures = self.failures.entries

    def _auto_fps(self, vid: str, path: Path) -> float:
        assert self.per_video_fps is not None
        if vid not in self.per_video_fps:
            raise VideoError(f"{path}: video id {vid!r} is not in the annotations, which give the per-video rate")
        return self.per_video_fps[vid]

    def run_queries(self, queries: Sequence[QueryText], tokenizer: CLIPTokenizer, batch_size: int = 32) -> None:
        """Write every query's features (this shard's share), skipping verified ones."""
        text_dir = self.output / self.preset.text_dir()
        index, count = self.shard
        mine = [query for position, query in enumerate(queries) if position % count == index]
        names = {self.preset.query_file.format(qid=query.qid) for query in mine}
        self.report.partials_removed += remove_own_partials(text_dir, names)
        settings = {**self.settings, "kind": "query"}
        if self.preset.layout == "flashvtg":
            # Files of earlier vtgkit versions held projected float16 rows: this marks the Moment-DETR format, so
            # a rerun replaces them instead of taking them as done.
            settings["text_rows"] = "ln_final float32"
        row_shape = self.encoder.query_row_shape
        todo: list[QueryText] = []
        for query in mine:
            relative = f"{self.preset.text_dir()}/{self.preset.query_file.format(qid=query.qid)}"
            if self.manifest.check_done(relative, settings, row_shape, self.encoder.query_dtype)[0]:
                if relative not in self.manifest.records:
                    self.manifest.record(relative, "found on disk", settings)
                self.report.queries_skipped += 1
            else:
                todo.append(query)
        for start in range(0, len(todo), batch_size):
            for query, arrays in self._encode_isolated(tokenizer, todo[start : start + batch_size]):
                relative = f"{self.preset.text_dir()}/{self.preset.query_file.format(qid=query.qid)}"
                target = self.output / relative
                if "features" in arrays:
                    save_npy_atomic(target, arrays["features"])
                else:
                    save_npz_atomic(target, **arrays)
                self.manifest.record(relative, f"query {query.qid}", settings)
                self.report.queries_done += 1
                self._note_if_cut(query, tokenizer)
        self.report.failures = self.failures.entries

    def _encode_isolated(self, tokenizer: CLIPTokenizer,
                         chunk: list[QueryText]) -> list[tuple[QueryText, dict[str, np.ndarray]]]:
        """(query, arrays) of the queries of ``chunk`` that encode; the others go to the failure log.

        One forward pass for the chunk; when it raises, each query is tried alone, so that one bad query costs
        only itself and the log names exactly the failing ones, each with its own error.
        """
        try:
            results = self.encoder.encode_queries(tokenizer, [query.text for query in chunk])
            return list(zip(chunk, results, strict=True))
        except QUERY_ERRORS as error:
            if len(chunk) == 1:
                self.failures.add(f"query {chunk[0].qid}", error)
                return []
        return [pair for query in chunk for pair in self._encode_isolated(tokenizer, [query])]

    def _note_if_cut(self, query: QueryText, tokenizer: CLIPTokenizer) -> None:
        """Count and log a query longer than CLIP's context: its features (as the official ones) cover the start."""
        context = self.report.query_context
        tokens = len(tokenizer.encode(query.text)) + 2  # with the start and end tokens, as tokenize() counts
        if tokens > context:
            self.report.queries_cut += 1
            self.warnings.add(f"query {query.qid}", "QueryCut",
                              f"{tokens} tokens (with start/end), cut to CLIP's {context}: the features cover "
                              "the start of the query only (the official tools cut silently)")


@contextmanager
def _damage_caught() -> Iterator[list[str]]:
    """Collect the distinct ``DamagedVideoWarning`` messages raised inside (the decoding threads included: warnings
    state is process-wide), then pass every caught warning on, so that callers and the console still see them."""
    damage: list[str] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", DamagedVideoWarning)  # one per video, not once per code location
            try:
                yield damage
            finally:
                caught = list(recorded or [])
    finally:  # also when the video failed: its warnings are not swallowed
        for message in caught:
            if issubclass(message.category, DamagedVideoWarning) and str(message.message) not in damage:
                damage.append(str(message.message))
            warnings.warn_explicit(message.message, message.category, message.filename, message.lineno,
                                   source=message.source)
