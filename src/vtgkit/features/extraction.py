"""Batch extraction of video and query features into the official cache layouts, resumable and shardable.

One video at a time: a background thread decodes and samples frames (bounded queue) while the main thread runs
CLIP on batches and appends float16 rows straight to a hidden partial file, so memory does not grow with video
length. Each output appears atomically and is recorded in the manifest; a bad video is logged and the batch goes on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtgkit.atomic_files import StreamingNpyWriter, remove_partials, save_npy_atomic, save_npz_atomic
from vtgkit.errors import ConfigError, VideoError, VTGKitError
from vtgkit.features.annotation_queries import QueryText
from vtgkit.features.decoding import iter_fps_filter_frames, iter_frame_stride_frames
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.frame_transforms import clip_input_from_uint8, inference_tool_input
from vtgkit.features.manifest import ExtractionManifest, FailureLog
from vtgkit.features.prefetch import prefetch
from vtgkit.features.presets import ExtractionPreset
from vtgkit.features.tokenizer import CLIPTokenizer

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")


@dataclass
class ExtractionReport:
    """Counts of one run; ``failures`` holds the failure-log entries of this run."""

    done: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    frames: int = 0
    queries_done: int = 0
    queries_skipped: int = 0
    partials_removed: int = 0
    seconds: float = 0.0
    failure_log: Path | None = None


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0 ≤ i < n) → (i, n)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as error:
        raise ConfigError(f"--shard {text!r}: expected i/n with integers, e.g. 0/4") from error
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: need n ≥ 1 and 0 ≤ i < n")
    return index, count


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
    """

    def __init__(self, encoder: ClipEncoder, preset: ExtractionPreset, output: Path, fps: float | None,
                 settings: dict[str, Any], per_video_fps: dict[str, float] | None = None, save_frames: bool = False,
                 batch_size: int = 16, shard: tuple[int, int] = (0, 1), progress: bool = True) -> None:
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
        self.settings = settings
        self.report = ExtractionReport(failure_log=self.failures.path)

    # --- paths ---------------------------------------------------------------------------------------------------
    def _video_outputs(self, vid: str) -> dict[str, str]:
        outputs = {}
        if self.save_frames:
            outputs["frames"] = f"{self.preset.frames_dir(self.fps)}/{vid}.npy"
        suffix = ".npy" if self.preset.layout == "r2tuning" else ".npz"
        outputs["features"] = f"{self.preset.video_dir(self.fps)}/{vid}{suffix}"
        return outputs

    def _settings_for(self, kind: str, fps: float | None) -> dict[str, Any]:
        if kind == "frames":
            return {"sampler": self.preset.sampler, "fps": fps, "size": self.preset.frame_size}
        return {**self.settings, "sampler": self.preset.sampler, "fps": fps}

    def _row_spec(self, kind: str) -> tuple[tuple[int, ...], str]:
        if kind == "frames":
            return (3, self.preset.frame_size, self.preset.frame_size), "uint8"
        return self.encoder.video_row_shape, "float16"

    # --- one video -----------------------------------------------------------------------------------------------
    def _frames(self, path: Path, fps: float) -> Iterator[tuple[np.ndarray | None, torch.Tensor]]:
        """(uint8 frame or None, model input (3, R, R)) pairs, produced in the decoding thread."""
        if self.preset.sampler == "fps-filter":
            for frame in iter_fps_filter_frames(path, fps, self.preset.frame_size):
                yield frame, clip_input_from_uint8(frame[None])[0]
        else:
            for frame in iter_frame_stride_frames(path, fps):
                yield None, inference_tool_input(frame, self.preset.frame_size)

    def extract_video(self, path: Path, vid: str, fps: float) -> int:
        """Write every output of one video; returns the number of sampled frames."""
        outputs = self._video_outputs(vid)
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

    def _is_done(self, vid: str, fps: float) -> bool:
        for kind, relative in self._video_outputs(vid).items():
            row_shape, dtype = self._row_spec(kind)
            done, _reason = self.manifest.check_done(relative, self._settings_for(kind, fps), row_shape, dtype)
            if not done:
                return False
            if relative not in self.manifest.records:
                self.manifest.record(relative, "found on disk", self._settings_for(kind, fps))
        return True

    # --- batches -------------------------------------------------------------------------------------------------
    def run_videos(self, videos: Sequence[Path]) -> None:
        from tqdm import tqdm

        for directory in {self.output / rel.rsplit("/", 1)[0] for rel in self._video_outputs("x").values()}:
            self.report.partials_removed += remove_partials(directory)
        index, count = self.shard
        mine = [path for position, path in enumerate(videos) if position % count == index]
        seen: dict[str, Path] = {}
        bar = tqdm(mine, desc="videos", unit="video", disable=not self.progress, file=sys.stderr)
        for path in bar:
            vid = path.stem
            try:
                if vid in seen:
                    raise VideoError(f"{path}: video id {vid!r} already taken by {seen[vid]}")
                seen[vid] = path
                fps = self.fps if self.fps is not None else self._auto_fps(vid, path)
                if self._is_done(vid, fps):
                    self.report.skipped += 1
                    continue
                start = time.perf_counter()
                frames = self.extract_video(path, vid, fps)
                self.report.done += 1
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
        self.report.partials_removed += remove_partials(text_dir)
        index, count = self.shard
        mine = [query for position, query in enumerate(queries) if position % count == index]
        settings = {**self.settings, "kind": "query"}
        row_shape = self.encoder.query_row_shape
        todo: list[QueryText] = []
        for query in mine:
            relative = f"{self.preset.text_dir()}/{self.preset.query_file.format(qid=query.qid)}"
            if self.manifest.check_done(relative, settings, row_shape, "float16")[0]:
                if relative not in self.manifest.records:
                    self.manifest.record(relative, "found on disk", settings)
                self.report.queries_skipped += 1
            else:
                todo.append(query)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            try:
                results = self.encoder.encode_queries(tokenizer, [query.text for query in chunk])
            except (VTGKitError, RuntimeError, ValueError) as error:
                for query in chunk:
                    self.failures.add(f"query {query.qid}", error)
                continue
            for query, arrays in zip(chunk, results, strict=True):
                relative = f"{self.preset.text_dir()}/{self.preset.query_file.format(qid=query.qid)}"
                target = self.output / relative
                if "features" in arrays:
                    save_npy_atomic(target, arrays["features"])
                else:
                    save_npz_atomic(target, **arrays)
                self.manifest.record(relative, f"query {query.qid}", settings)
                self.report.queries_done += 1
        self.report.failures = self.failures.entries
