"""Reader of the official R²-Tuning feature cache: shapes from the files, every bad file named with what was wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vtgkit.data.features_r2tuning import R2TuningFeatureReader
from vtgkit.errors import FeatureError, FeatureFileNotFoundError


def make_cache(root: Path, videos: dict[str, np.ndarray], queries: dict[str, np.ndarray]) -> Path:
    """Write a tiny cache in the official layout (``clip_b32_vid_k<K>`` / ``clip_b32_txt_k<K>``)."""
    for folder, arrays in (("vid", videos), ("txt", queries)):
        for key, array in arrays.items():
            k = array.shape[1] if array.ndim > 1 else 4
            directory = root / f"clip_b32_{folder}_k{k}"
            directory.mkdir(parents=True, exist_ok=True)
            np.save(directory / f"{key}.npy", array)
    return root


def random_video(t: int, k: int = 2, p: int = 3, d: int = 8) -> np.ndarray:
    return np.random.default_rng(t).standard_normal((t, k, p, d)).astype(np.float16)


def random_query(length: int, k: int = 2, d: int = 6) -> np.ndarray:
    return np.random.default_rng(100 + length).standard_normal((length, k, d)).astype(np.float16)


def test_reads_shapes_from_files(tmp_path: Path) -> None:
    video, query = random_video(5), random_query(4)
    reader = R2TuningFeatureReader(make_cache(tmp_path, {"v1": video}, {"7": query}), num_layers=2)
    assert reader.video_dir.name == "clip_b32_vid_k2" and reader.query_dir.name == "clip_b32_txt_k2"
    assert reader.video_shape("v1") == (5, 2, 3, 8) and reader.query_shape("7") == (4, 2, 6)
    loaded = reader.read_video("v1")
    assert loaded.dtype == np.float16 and loaded.flags.writeable and np.array_equal(loaded, video)
    assert np.array_equal(reader.read_query("7"), query)
    assert np.array_equal(R2TuningFeatureReader(tmp_path, num_layers=2, mmap=False).read_video("v1"), video)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    reader = R2TuningFeatureReader(make_cache(tmp_path, {"v1": random_video(3)}, {}), num_layers=2)
    with pytest.raises(FeatureFileNotFoundError, match=r"clip_b32_txt_k2/9\.npy"):
        reader.read_query("9")
    with pytest.raises(FeatureFileNotFoundError, match=r"clip_b32_vid_k2/v2\.npy"):
        reader.video_shape("v2")


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((5, 2, 3), np.float16), r"expected a 4-d array \(T clips, K layers, P tokens, Dv width\); got "
                                          r"shape \(5, 2, 3\)"),
        (np.zeros((5, 3, 3, 8), np.float16), r"expected K = 2 stored layers"),
        (np.zeros((0, 2, 3, 8), np.float16), r"expected non-empty axes"),
        (np.zeros((5, 2, 3, 8), np.float32), r"expected dtype float16; got float32"),
    ],
)
def test_wrong_layout_is_reported(tmp_path: Path, array: np.ndarray, expected: str) -> None:
    directory = tmp_path / "clip_b32_vid_k2"
    directory.mkdir()
    np.save(directory / "bad.npy", array)
    reader = R2TuningFeatureReader(tmp_path, num_layers=2)
    for read in (reader.read_video, reader.video_shape):
        with pytest.raises(FeatureError, match=expected) as info:
            read("bad")
        assert "bad.npy" in str(info.value)


def test_non_finite_truncated_and_garbage_files(tmp_path: Path) -> None:
    video = random_video(4)
    video[2, 1, 0, 3] = np.inf
    make_cache(tmp_path, {"inf": video, "cut": random_video(6)}, {})
    directory = tmp_path / "clip_b32_vid_k2"
    data = (directory / "cut.npy").read_bytes()
    (directory / "cut.npy").write_bytes(data[: len(data) - 10])
    (directory / "junk.npy").write_bytes(b"this is not numpy")
    reader = R2TuningFeatureReader(tmp_path, num_layers=2)
    with pytest.raises(FeatureError, match=r"inf\.npy: expected finite values; found 1 NaN/inf .*\(2, 1, 0, 3\)"):
        reader.read_video("inf")
    for mmap in (True, False):
        with pytest.raises(FeatureError, match=r"cut\.npy: cannot read the array, the file is truncated"):
            R2TuningFeatureReader(tmp_path, num_layers=2, mmap=mmap).read_video("cut")
    with pytest.raises(FeatureError, match=r"junk\.npy: cannot read the array"):
        reader.read_video("junk")
    with pytest.raises(FeatureError, match=r"cut\.npy"):
        reader.video_shape("cut")


def test_ids_cannot_leave_the_folder(tmp_path: Path) -> None:
    reader = R2TuningFeatureReader(tmp_path)
    for key in ("../x", "a/b", "", ".."):
        with pytest.raises(FeatureError, match="cannot name a feature file"):
            reader.read_video(key)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("value", [np.nan, -np.inf, np.inf])
def test_every_non_finite_kind_is_caught(tmp_path: Path, dtype: type, value: float) -> None:
    query = random_query(3).astype(dtype)
    query[1, 0, 2] = value
    query[0, 1, 0] = np.finfo(dtype).max  # large but finite values pass
    make_cache(tmp_path, {}, {"q": query})
    with pytest.raises(FeatureError, match=r"found 1 NaN/inf entries \(first at index \(1, 0, 2\)\)"):
        R2TuningFeatureReader(tmp_path, num_layers=2, dtype=dtype).read_query("q")
