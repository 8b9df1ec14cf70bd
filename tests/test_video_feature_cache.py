"""FeatureCache: byte-bounded LRU, disk level written atomically and read back memory-mapped, keys."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vtgkit.atomic_files import PARTIAL_PREFIX
from vtgkit.video_feature_cache import FeatureCache, VideoFeatures, video_cache_key


def entry(clips: int, value: float = 0.0) -> VideoFeatures:
    return VideoFeatures(tokens=np.full((clips, 2, 3, 4), value, dtype=np.float16), clip_len=2.0,
                         duration=2.0 * clips - 0.5)


def test_memory_level_evicts_least_recently_used_by_bytes() -> None:
    size = entry(10).nbytes
    cache = FeatureCache(max_bytes=2 * size)
    cache.put("a", entry(10, 1.0))
    cache.put("b", entry(10, 2.0))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", entry(10, 3.0))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.memory_bytes <= 2 * size
    cache.put("huge", entry(100))  # larger than the whole budget: not kept in memory
    assert cache.get("huge") is None and len(cache) == 2


def test_disk_level_round_trip_and_incomplete_entries(tmp_path: Path) -> None:
    cache = FeatureCache(max_bytes=0, directory=tmp_path)  # memory level off: every get reads the folder
    stored = cache.put("k", entry(5, 0.5), {"video": "x.mp4"})
    assert isinstance(stored.tokens, np.memmap)
    again = FeatureCache(directory=tmp_path).get("k")
    assert again is not None
    np.testing.assert_array_equal(again.tokens, entry(5, 0.5).tokens)
    assert (again.clip_len, again.duration) == (2.0, 9.5)
    (tmp_path / "k.json").unlink()  # tokens without their .json: an interrupted write, never a hit
    assert FeatureCache(directory=tmp_path).get("k") is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(PARTIAL_PREFIX)]


def test_key_changes_with_file_and_settings(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"0123")
    key = video_cache_key(video, {"fps": 0.5})
    assert key == video_cache_key(tmp_path / "." / "v.mp4", {"fps": 0.5})
    assert key != video_cache_key(video, {"fps": 1.0})
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 1))
    assert key != video_cache_key(video, {"fps": 0.5})
