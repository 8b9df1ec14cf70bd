"""Per-video CLIP features kept between queries: an in-memory LRU bounded in bytes, optionally backed by a folder.

A video's features depend on the file and on how they were extracted, so the key is the sha256 of the resolved path,
the file's size and modification time (ns) and the extractor settings (CLIP weights, layers, clip rate, frame
pipeline, precision). Editing or replacing the video, or changing any setting, gives a new key; stale entries are
never returned.

On disk an entry is ``<key>.npy`` (the float16 tokens) written first, then ``<key>.json`` (clip length, duration, the
key's record); both are written to a temporary name and renamed, and only an entry with its ``.json`` counts, so an
interrupted run never leaves an entry that looks complete. Entries are read back memory-mapped: a long video costs
page cache, not resident memory.

Shapes: T clips, K CLIP layers, P tokens per frame, D CLIP visual width.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.atomic_files import save_npy_atomic, write_text_atomic

MAX_MAPPED_ENTRIES = 8  # memory-mapped entries kept (each holds an open mapping, maybe a temporary file)
DEFAULT_MEMORY_BYTES = 2 << 30  # 2 GiB: a 2-hour video at 0.5 fps (ViT-B/32, K=4) is ~1.05 GiB of float16


@dataclass(frozen=True)
class VideoFeatures:
    """The CLIP tokens of one video, one row per clip."""

    tokens: np.ndarray  # (T, ...) float16, possibly a read-only memory map: (T, K, P, D) CLIP tokens (R²-Tuning),
    # (T, D) SlowFast+CLIP rows (FlashVTG)
    clip_len: float  # seconds per clip
    duration: float  # seconds, from the container (or T * clip_len when the container does not say)

    @property
    def num_clips(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.tokens.nbytes)


def video_cache_key(video: str | os.PathLike[str], settings: dict[str, Any]) -> str:
    """Hex sha256 of the video's resolved path, size, mtime and the extractor ``settings`` (JSON-serialisable)."""
    path = Path(video).resolve()
    stat = path.stat()
    record = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "settings": settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()


class FeatureCache:
    """LRU of :class:`VideoFeatures` by key, bounded by ``max_bytes``, with an optional folder behind it.

    Args:
        max_bytes: memory budget of in-memory arrays; the least recently used entries are dropped beyond it (an
            array larger than the whole budget is not kept, only on disk when a folder is set). Memory-mapped entries
            are kept up to ``MAX_MAPPED_ENTRIES`` of them. 0 disables the memory level.
        directory: folder for the disk level, created on first write; None keeps features in memory only.
    """

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES, directory: str | os.PathLike[str] | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._entries: OrderedDict[str, VideoFeatures] = OrderedDict()
        self.max_mapped_entries = MAX_MAPPED_ENTRIES
        self.hits = 0  # memory or disk
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def memory_bytes(self) -> int:
        """Bytes of the entries held in memory (memory-mapped entries count their full size)."""
        return sum(entry.nbytes for entry in self._entries.values())

    @property
    def resident_bytes(self) -> int:
        """Bytes of the in-memory arrays; memory-mapped entries live in the page cache and count 0."""
        return sum(entry.nbytes for entry in self._entries.values() if not isinstance(entry.tokens, np.memmap))

    @property
    def mapped_entries(self) -> int:
        return sum(isinstance(entry.tokens, np.memmap) for entry in self._entries.values())

    def get(self, key: str) -> VideoFeatures | None:
        """The entry for ``key`` from memory, else from the folder (then kept in memory too); None if absent."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._read(key)
            if entry is not None:
                self._remember(key, entry)
        else:
            self._entries.move_to_end(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: str, entry: VideoFeatures, record: dict[str, Any] | None = None) -> VideoFeatures:
        """Store ``entry``; with a folder the returned entry is the memory-mapped copy read back from disk."""
        if self.directory is not None:
            tokens_path, _ = self._paths(key)
            save_npy_atomic(tokens_path, np.ascontiguousarray(entry.tokens))
            return self.put_file(key, entry.clip_len, entry.duration, record)
        self._remember(key, entry)
        return entry

    def tokens_path(self, key: str) -> Path | None:
        """Where the tokens of ``key`` go on disk (None without a folder), for writers that stream rows there."""
        return None if self.directory is None else self._paths(key)[0]

    def put_file(self, key: str, clip_len: float, duration: float, record: dict[str, Any] | None = None
                 ) -> VideoFeatures:
        """Complete an entry whose tokens were already written at :meth:`tokens_path`; returns it memory-mapped."""
        tokens_path, meta_path = self._paths(key)
        tokens = np.load(tokens_path, mmap_mode="r")
        meta = {"clip_len": clip_len, "duration": duration, "num_clips": int(tokens.shape[0]),
                "shape": list(tokens.shape), "record": record or {}}
        write_text_atomic(meta_path, json.dumps(meta, indent=1))
        entry = VideoFeatures(tokens=tokens, clip_len=clip_len, duration=duration)
        self._remember(key, entry)
        return entry

    def clear(self) -> None:
        """Forget the in-memory entries (files on disk stay)."""
        self._entries.clear()

    def _remember(self, key: str, entry: VideoFeatures) -> None:
        mapped = isinstance(entry.tokens, np.memmap)
        if self.max_bytes == 0 or (not mapped and entry.nbytes > self.max_bytes):
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        # Arrays are bounded by the byte budget. Mapped entries (disk level, or the temporary file of a long video
        # without a folder) cost page cache, not resident memory, so they are bounded by count instead: that is
        # what keeps a second query on a 10-hour video from decoding it again.
        while self.resident_bytes > self.max_bytes or self.mapped_entries > self.max_mapped_entries:
            self._entries.popitem(last=False)

    def _paths(self, key: str) -> tuple[Path, Path]:
        if self.directory is None:
            raise ValueError("this FeatureCache has no folder")
        return self.directory / f"{key}.npy", self.directory / f"{key}.json"

    def _read(self, key: str) -> VideoFeatures | None:
        if self.directory is None:
            return None
        tokens_path, meta_path = self._paths(key)
        if not (meta_path.is_file() and tokens_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            tokens = np.load(tokens_path, mmap_mode="r")
            clip_len, duration = float(meta["clip_len"]), float(meta["duration"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable entry is a miss: the caller extracts again and overwrites it
        if tokens.ndim < 2 or tokens.dtype != np.float16 or tokens.shape[0] != meta.get("num_clips"):
            return None
        return VideoFeatures(tokens=tokens, clip_len=clip_len, duration=duration)


def release_mapped_pages(tokens: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array (no-op for in-memory arrays).

    Reading window after window of a long video's memory map would otherwise leave every page touched so far in the
    process's resident set (reclaimable page cache, but counted as the process's memory). The data stay in the file;
    a later read faults the pages back in.
    """
    mapping = getattr(tokens, "_mmap", None)
    if isinstance(tokens, np.memmap) and mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)
