"""Hostile feature files through the R²-Tuning cache reader and the FlashVTG reader, and a feature folder with
missing / broken files through ``vtgkit predict`` (counted and reported; ``--skip-errors`` writes the rest)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from _data_cases import (
    FLASHVTG_FOLDERS,
    R2_TINY,
    CreatesMarker,
    run_cli,
    write_flashvtg_features,
    write_flashvtg_official,
    write_r2_cache,
    write_r2_vtgkit,
)

from vtgkit.data.features_r2tuning import R2TuningFeatureReader
from vtgkit.data.flashvtg_features import FlashVTGFeatureReader, get_flashvtg_layout
from vtgkit.errors import FeatureError, FeatureFileNotFoundError
from vtgkit.predict import failures_path

K, P, DV, DQ = R2_TINY["num_layers"], R2_TINY["tokens_per_frame"], R2_TINY["video_dims"], R2_TINY["query_dims"]


# ------------------------------------------------------------------------------------------------ R²-Tuning cache
@pytest.fixture
def r2(tmp_path: Path) -> tuple[R2TuningFeatureReader, Path, Path]:
    root = write_r2_cache(tmp_path, {"v": 4}, {"q": 3})
    reader = R2TuningFeatureReader(root, num_layers=K, video_tokens=(P, DV), query_dims=DQ)
    return reader, reader.video_path("v"), reader.query_path("q")


R2_SHAPES = [
    ("video", (4, K, P), "expected a 4-d array"),
    ("video", (4, K + 1, P, DV), f"expected K = {K} stored layers"),
    ("video", (0, K, P, DV), "expected non-empty axes"),
    ("video", (4, K, P, DV * 2), f"expected trailing axes ({P}, {DV})"),
    ("video", (4, K, P + 1, DV), f"expected trailing axes ({P}, {DV})"),
    ("query", (3, DQ), "expected a 3-d array"),
    ("query", (3, K, DQ + 1), f"expected trailing axes ({DQ},)"),
]


@pytest.mark.parametrize(("kind", "shape", "expected"), R2_SHAPES, ids=[f"{k}-{s}" for k, s, _ in R2_SHAPES])
def test_r2_wrong_shape_names_file_and_shape(r2, kind: str, shape: tuple[int, ...], expected: str) -> None:
    reader, video, query = r2
    path = video if kind == "video" else query
    np.save(path, np.zeros(shape, np.float16))
    read = reader.read_video if kind == "video" else reader.read_query
    with pytest.raises(FeatureError) as info:
        read(path.stem)
    assert str(info.value).startswith(f"{path}: {expected}") and str(shape).replace(",)", ")") in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
def test_r2_wrong_dtype(r2, dtype: type) -> None:
    reader, video, _ = r2
    np.save(video, np.zeros((4, K, P, DV), dtype))
    with pytest.raises(FeatureError, match=rf"{video}: expected dtype float16; got {np.dtype(dtype)}"):
        reader.read_video("v")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["video", "query"])
def test_r2_non_finite_values(r2, kind: str, value: float) -> None:
    reader, video, query = r2
    path = video if kind == "video" else query
    array = np.load(path)
    array.flat[5] = value
    np.save(path, array)
    read = reader.read_video if kind == "video" else reader.read_query
    with pytest.raises(FeatureError, match=rf"{path}: expected finite values; found 1 NaN/inf entries"):
        read(path.stem)


@pytest.mark.parametrize("damage", ["truncated", "header-only", "garbage", "empty"])
def test_r2_truncated_or_not_npy(r2, damage: str) -> None:
    reader, video, _ = r2
    data = video.read_bytes()
    video.write_bytes({"truncated": data[: len(data) // 2], "header-only": data[:128], "garbage": b"\x00" * 500,
                       "empty": b""}[damage])
    with pytest.raises(FeatureError, match=rf"{video}: cannot read the array"):
        reader.read_video("v")


def test_r2_pickled_object_array_is_refused_without_running_it(r2, tmp_path: Path) -> None:
    reader, video, _ = r2
    marker = tmp_path / "marker"
    np.save(video, np.array([CreatesMarker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(FeatureError, match=rf"{video}: cannot read the array"):
        reader.read_video("v")
    assert not marker.exists()


def test_r2_missing_file_and_escaping_ids(r2) -> None:
    reader, video, _ = r2
    video.unlink()
    with pytest.raises(FeatureFileNotFoundError, match=rf"feature file not found: {video}"):
        reader.read_video("v")
    with pytest.raises(FeatureError, match="contains a path separator"):
        reader.read_query("../q")


# ------------------------------------------------------------------------------------------------ FlashVTG reader
@pytest.fixture
def flash(tmp_path: Path) -> tuple[FlashVTGFeatureReader, Path]:
    root = write_flashvtg_features(tmp_path, {"v": 6}, [1])
    return FlashVTGFeatureReader(root, get_flashvtg_layout("qvhighlights"), video_dim=10, query_dim=6), root


def _save(path: Path, key: str, array: np.ndarray) -> Path:
    np.savez(path, **{key: array})
    return path


FLASH_SHAPES = [
    ("video", np.zeros(4, np.float32), "must be a non-empty (rows, dims) array; found shape (4,)"),
    ("video", np.zeros((2, 3, 4), np.float32), "must be a non-empty (rows, dims) array; found shape (2, 3, 4)"),
    ("video", np.zeros((0, 4), np.float32), "must be a non-empty (rows, dims) array; found shape (0, 4)"),
    ("video", np.ones((6, 5), np.float32), "feature widths 5 (slowfast_features) + 4 (clip_features) + 2 (TEF) = 11"),
    ("query", np.ones((5, 7), np.float32), "text features of width 7; the model expects (tokens, 6)"),
]


@pytest.mark.parametrize(("kind", "array", "expected"), FLASH_SHAPES,
                         ids=[f"{k}-{a.shape}" for k, a, _ in FLASH_SHAPES])
def test_flashvtg_wrong_shape(flash, kind: str, array: np.ndarray, expected: str) -> None:
    reader, root = flash
    if kind == "video":
        path = _save(root / FLASHVTG_FOLDERS[0] / "v.npz", "features", array)
        with pytest.raises(FeatureError) as info:
            reader.read_video("v")
    else:
        path = _save(root / "clip_text_features" / "qid1.npz", "last_hidden_state", array)
        with pytest.raises(FeatureError) as info:
            reader.read_query(1)
    assert expected in str(info.value)
    assert str(path) in str(info.value) or f"video 'v' under {root}" in str(info.value)


def test_flashvtg_dtypes(flash) -> None:
    """Integers are refused; any float is accepted and cast to float32, as the official loader casts."""
    reader, root = flash
    path = _save(root / FLASHVTG_FOLDERS[0] / "v.npz", "features", np.ones((6, 4), np.int32))
    with pytest.raises(FeatureError, match=rf"{path}: video features must be floating point; found int32"):
        reader.read_video("v")
    _save(path, "features", np.ones((6, 4), np.float64))
    assert reader.read_video("v").dtype == np.float32


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["video", "query"])
def test_flashvtg_non_finite_values(flash, kind: str, value: float) -> None:
    reader, root = flash
    array = np.ones((6, 4) if kind == "video" else (5, 6), np.float16)
    array[2, 1] = value
    if kind == "video":
        path = _save(root / FLASHVTG_FOLDERS[1] / "v.npz", "features", array)
        read = lambda: reader.read_video("v")  # noqa: E731
    else:
        path = _save(root / "clip_text_features" / "qid1.npz", "last_hidden_state", array)
        read = lambda: reader.read_query(1)  # noqa: E731
    with pytest.raises(FeatureError, match=rf"{path}: \w+ features holds non-finite values"):
        read()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_flashvtg_truncated_npz_and_npy(tmp_path: Path, suffix: str, damage: str) -> None:
    """QVHighlights folders hold .npz; YouTube / TVSum folders also take .npy (spec flashvtg.md §1)."""
    layout = get_flashvtg_layout("qvhighlights" if suffix == ".npz" else "youtube_highlights")
    for folder in (*layout.video_dirs, layout.text_dir):
        (tmp_path / folder).mkdir()
    for folder in layout.video_dirs:
        if suffix == ".npz":
            np.savez(tmp_path / folder / "v.npz", features=np.ones((6, 4), np.float32))
        else:
            np.save(tmp_path / folder / "v.npy", np.ones((6, 4), np.float32))
    path = tmp_path / layout.video_dirs[0] / f"v{suffix}"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) - 40], "garbage": b"PK\x03\x04" + b"\x00" * 200,
                      "empty": b""}[damage])
    with pytest.raises(FeatureError, match=rf"{path}: cannot read features"):
        FlashVTGFeatureReader(tmp_path, layout).read_video("v")


def test_flashvtg_npz_without_the_key_or_with_objects(flash, tmp_path: Path) -> None:
    reader, root = flash
    path = _save(root / FLASHVTG_FOLDERS[0] / "v.npz", "feats", np.ones((6, 4), np.float32))
    with pytest.raises(FeatureError, match=rf"{path}: no key 'features'; found keys \['feats'\]"):
        reader.read_video("v")
    marker = tmp_path / "marker"
    np.savez(path, features=np.array([CreatesMarker(marker)], dtype=object))
    with pytest.raises(FeatureError, match=rf"{path}: cannot read features"):
        reader.read_video("v")
    pt = root / "clip_text_features" / "qid1.pt"  # .pt fallback: torch.load(weights_only=True)
    (root / "clip_text_features" / "qid1.npz").unlink()
    pt.write_bytes(pickle.dumps(CreatesMarker(marker)))
    with pytest.raises(FeatureError, match=rf"{pt}: cannot read features"):
        reader.read_query(1)
    assert not marker.exists()


def test_flashvtg_tvsum_halves_of_different_length(tmp_path: Path) -> None:
    for folder in ("vid_slowfast", "vid_clip", "txt_clip"):
        (tmp_path / folder).mkdir()
    for folder in ("vid_slowfast", "vid_clip"):
        np.save(tmp_path / folder / "v_rgb.npy", np.ones((6, 4), np.float32))
        np.save(tmp_path / folder / "v_opt.npy", np.ones((6, 4), np.float32))
    np.save(tmp_path / "vid_clip" / "v_opt.npy", np.ones((5, 4), np.float32))
    reader = FlashVTGFeatureReader(tmp_path, get_flashvtg_layout("tvsum"))
    with pytest.raises(FeatureError, match=r"v_rgb.npy and .*v_opt.npy must have the same number of rows .*\[6, 5\]"):
        reader.read_video("v")


def test_flashvtg_missing_folder_and_file(flash) -> None:
    reader, root = flash
    (root / FLASHVTG_FOLDERS[1] / "v.npz").unlink()
    with pytest.raises(FeatureFileNotFoundError, match=rf"video 'v' in {root / FLASHVTG_FOLDERS[1]}: no feature "
                                                         r"file found; tried .*v.npz"):
        reader.read_video("v")
    with pytest.raises(FeatureError, match="contains a path separator"):
        reader.read_video("../v")
    (root / "clip_text_features" / "qid1.npz").unlink()
    (root / "clip_text_features").rmdir()
    with pytest.raises(FeatureFileNotFoundError, match=rf"{root / 'clip_text_features'}: feature folder not found"):
        FlashVTGFeatureReader(root, get_flashvtg_layout("qvhighlights"))


# ------------------------------------------------------------------------------------------------ vtgkit predict
def _annotations(path: Path, vids: list[str]) -> Path:
    rows = [{"qid": i + 1, "query": f"q{i + 1}", "duration": 12, "vid": vid} for i, vid in enumerate(vids)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def r2_predict(tmp_path: Path) -> dict[str, Path]:
    checkpoint = write_r2_vtgkit(tmp_path / "ckpt")
    data = write_r2_cache(tmp_path / "data", {"a": 6, "b": 6, "c": 6, "d": 6}, {"1": 3, "2": 3, "3": 3, "4": 3})
    return {"checkpoint": checkpoint, "data": data, "annotations": _annotations(tmp_path / "val.jsonl", list("abcd")),
            "out": tmp_path / "out" / "pred.jsonl"}


def _predict(paths: dict[str, Path], model: str, *extra: str) -> int:
    dataset = ["--dataset", "qvhighlights"] if model == "r2tuning" else []
    return run_cli("predict", "--model", model, *dataset, "--checkpoint", paths["checkpoint"], "--data-root",
                   paths["data"], "--annotations", paths["annotations"], "--output", paths["out"], "--quiet", *extra)


def _break_r2_cache(data: Path) -> None:
    (data / f"clip_b32_vid_k{K}" / "b.npy").unlink()  # missing video file
    (data / f"clip_b32_txt_k{K}" / "3.npy").unlink()  # missing query file
    truncated = data / f"clip_b32_vid_k{K}" / "d.npy"
    truncated.write_bytes(truncated.read_bytes()[:100])


def test_predict_counts_missing_files_and_writes_nothing_without_skip_errors(
        r2_predict: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _break_r2_cache(r2_predict["data"])
    assert _predict(r2_predict, "r2tuning") == 1
    err = capsys.readouterr().err
    assert "3 of 4 queries could not be predicted (2 missing feature file, 1 bad feature file)" in err
    assert "qid 2: feature file not found" in err and "b.npy" in err and "3.npy" in err and "d.npy" in err
    assert "pass --skip-errors" in err
    assert not r2_predict["out"].exists() and not failures_path(r2_predict["out"]).exists()


def test_predict_skip_errors_writes_the_rest_and_lists_the_failures(
        r2_predict: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _break_r2_cache(r2_predict["data"])
    assert _predict(r2_predict, "r2tuning", "--skip-errors") == 0
    assert [row["qid"] for row in _read(r2_predict["out"])] == [1]
    failed = _read(failures_path(r2_predict["out"]))
    assert [(row["qid"], row["reason"]) for row in failed] == [
        (2, "missing feature file"), (3, "missing feature file"), (4, "bad feature file")]
    err = capsys.readouterr().err
    assert "3 of 4 queries could not be predicted" in err and "failed queries listed in" in err


def test_predict_reports_features_of_another_clip_per_query(r2_predict: dict[str, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    np.save(r2_predict["data"] / f"clip_b32_vid_k{K}" / "c.npy", np.zeros((6, K, P, DV * 2), np.float16))
    assert _predict(r2_predict, "r2tuning", "--skip-errors") == 0
    assert [row["qid"] for row in _read(r2_predict["out"])] == [1, 2, 4]
    assert "c.npy: expected trailing axes" in capsys.readouterr().err


def test_predict_missing_feature_folder_is_one_clear_error(r2_predict: dict[str, Path],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = r2_predict["data"] / f"clip_b32_txt_k{K}"
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    assert _predict(r2_predict, "r2tuning", "--skip-errors") == 2
    assert f"feature folder not found: {folder}" in capsys.readouterr().err
    assert not r2_predict["out"].exists()


def test_flashvtg_predict_counts_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = {"checkpoint": write_flashvtg_official(tmp_path / "model_best.ckpt"),
             "data": write_flashvtg_features(tmp_path / "data", {"a": 6, "b": 6, "c": 6}, [1, 2, 3]),
             "annotations": _annotations(tmp_path / "val.jsonl", list("abc")), "out": tmp_path / "pred.jsonl"}
    (paths["data"] / FLASHVTG_FOLDERS[1] / "b.npz").unlink()
    np.savez(paths["data"] / "clip_text_features" / "qid3.npz", last_hidden_state=np.full((5, 6), np.nan))
    assert _predict(paths, "flashvtg") == 1
    assert not paths["out"].exists()
    assert "2 of 3 queries could not be predicted" in capsys.readouterr().err
    assert _predict(paths, "flashvtg", "--skip-errors") == 0
    assert [row["qid"] for row in _read(paths["out"])] == [1]
    failed = _read(failures_path(paths["out"]))
    assert [(row["qid"], row["reason"]) for row in failed] == [(2, "missing feature file"), (3, "bad feature file")]
