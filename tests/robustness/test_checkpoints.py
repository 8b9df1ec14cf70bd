"""Hostile checkpoints through every loader users hit: ``Grounder.from_pretrained`` on a path, ``vtgkit ground``,
``vtgkit predict --checkpoint`` (both models), ``vtgkit convert`` and ``vtgkit.pretrained.load_pretrained``.

Pickles that would run code must run nothing (a marker file their ``__reduce__`` would create stays absent) and raise
a ``CheckpointError`` naming the file; truncated files, checkpoints of the other model, vtgkit checkpoints whose
config disagrees with their weights and downloads with the wrong sha256 are all errors naming the file (or URL).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from _data_cases import (
    CreatesMarker,
    ExecsMarker,
    run_cli,
    write_flashvtg_official,
    write_hostile,
    write_r2_official,
    write_r2_vtgkit,
)

from vtgkit import pretrained
from vtgkit.api import Grounder
from vtgkit.errors import CheckpointError, VTGKitError
from vtgkit.pretrained import PRETRAINED


@pytest.fixture
def annotations(tmp_path: Path) -> Path:
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps({"qid": 1, "query": "q", "duration": 10, "vid": "a"}) + "\n", encoding="utf-8")
    return path


def _predict(model: str, checkpoint: Path, annotations: Path, *extra: str) -> int:
    return run_cli("predict", "--model", model, "--checkpoint", checkpoint, "--data-root", annotations.parent,
                   "--annotations", annotations, "--output", annotations.parent / "out.jsonl", "--quiet", *extra)


# Each loader: (name, function(path, annotations, tmp_path) -> exit code or raises). Library loaders raise; CLI
# loaders return 2 and print the error (captured by capsys).
LOADERS: dict[str, Callable[[Path, Path, Path], int | None]] = {
    "Grounder.from_pretrained": lambda p, a, t: Grounder.from_pretrained(p, cache_dir=t / "cache", progress=False),
    "load_pretrained-r2tuning": lambda p, a, t: pretrained.load_pretrained(p, model="r2tuning"),
    "load_pretrained-flashvtg": lambda p, a, t: pretrained.load_pretrained(p, model="flashvtg"),
    "predict-r2tuning": lambda p, a, t: _predict("r2tuning", p, a, "--dataset", "qvhighlights"),
    "predict-flashvtg": lambda p, a, t: _predict("flashvtg", p, a),
    "predict-flashvtg-dataset": lambda p, a, t: _predict("flashvtg", p, a, "--dataset", "qvhighlights"),
    "convert": lambda p, a, t: run_cli("convert", "--model", "r2tuning", "--input", p, "--output", t / "converted"),
    "load_slowfast": lambda p, a, t: _slowfast_loader()(p),  # `vtgkit extract --slowfast-weights`
}


def _slowfast_loader() -> Callable[[Path], object]:
    weights = pytest.importorskip("vtgkit.features.slowfast.weights", reason="SlowFast weights reader not present")
    return weights.load_slowfast


def _fails_naming(loader: str, path: Path, annotations: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                  error: type[Exception] = CheckpointError) -> str:
    """Run ``loader`` on ``path``; assert it fails with ``error`` (CLI: exit 2) naming ``path``; return the message."""
    call = LOADERS[loader]
    if loader.startswith(("predict", "convert")):
        assert call(path, annotations, tmp_path) == 2
        message = capsys.readouterr().err
    else:
        with pytest.raises(error) as info:
            call(path, annotations, tmp_path)
        message = str(info.value)
    assert str(path) in message, message
    assert not (tmp_path / "converted").exists() and not (annotations.parent / "out.jsonl").exists()
    return message


HOSTILE = [(kind, payload, loader) for kind, suffix in (("zip", ".pth"), ("legacy", ".pth"), ("caffe2", ".pkl"))
           for payload in (CreatesMarker, ExecsMarker) for loader in LOADERS]


@pytest.mark.parametrize(("kind", "payload", "loader"), HOSTILE,
                         ids=[f"{k}-{p.__name__}-{lo}" for k, p, lo in HOSTILE])
def test_pickle_that_would_run_code_runs_nothing(tmp_path: Path, annotations: Path, capsys, kind: str,
                                                 payload: type, loader: str) -> None:
    marker = tmp_path / "marker"
    path = write_hostile(tmp_path / ("evil.pkl" if kind == "caffe2" else "evil.pth"), kind, marker, payload)
    message = _fails_naming(loader, path, annotations, tmp_path, capsys)
    assert not marker.exists(), f"{loader} executed code from {path}"
    assert "refused" in message or "weights_only=True" in message


def test_vtgkit_ground_cli_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("av", reason="PyAV is needed to write the test video")
    from vtgkit.features.synthetic_video import write_test_video

    video = write_test_video(tmp_path / "v.mp4", 2.0, fps=5, width=64, height=48, gop=10)
    marker = tmp_path / "marker"
    path = write_hostile(tmp_path / "evil.pth", "zip", marker)
    assert run_cli("ground", video, "a dog", "--checkpoint", path, "--cache-dir", tmp_path / "cache", "--quiet") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "refused" in err and not marker.exists()


# ---------------------------------------------------------------------------------------------------- truncated
TRUNCATED = [(fmt, loader) for fmt in ("r2-zip", "r2-legacy", "flashvtg") for loader in LOADERS]


@pytest.mark.parametrize(("fmt", "loader"), TRUNCATED, ids=[f"{f}-{lo}" for f, lo in TRUNCATED])
def test_truncated_checkpoint(tmp_path: Path, annotations: Path, capsys, fmt: str, loader: str) -> None:
    if fmt == "flashvtg":
        path = write_flashvtg_official(tmp_path / "model_best.pth")
    else:
        path = write_r2_official(tmp_path / "r2.pth")
        if fmt == "r2-legacy":
            import torch

            torch.save(torch.load(path, weights_only=True), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = _fails_naming(loader, path, annotations, tmp_path, capsys)
    assert "truncated" in message or "cannot read" in message


@pytest.mark.parametrize("damaged", ["model.safetensors", "config.json"])
@pytest.mark.parametrize("loader", ["Grounder.from_pretrained", "predict-r2tuning", "convert-to-official"])
def test_truncated_vtgkit_checkpoint(tmp_path: Path, annotations: Path, capsys, damaged: str, loader: str) -> None:
    folder = write_r2_vtgkit(tmp_path / "ckpt")
    file = folder / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    if loader == "convert-to-official":
        assert run_cli("convert", "--model", "r2tuning", "--to", "official", "--input", folder, "--output",
                       tmp_path / "out.pth") == 2
        message = capsys.readouterr().err
        assert not (tmp_path / "out.pth").exists()
    else:
        message = _fails_naming(loader, folder, annotations, tmp_path, capsys)
    assert str(file) in message and ("not a readable safetensors file" in message or "not valid JSON" in message)


# ---------------------------------------------------------------------------------------------------- other model
# A FlashVTG model_best.ckpt given to Grounder.from_pretrained is the supported FlashVTG path (FlashVTGGrounder,
# tests/test_api_flashvtg.py), not a wrong-model case; the same file renamed .pth is refused there.
@pytest.mark.parametrize(("suffix", "loader"), [
    (suffix, loader) for suffix in (".ckpt", ".pth")
    for loader in ("Grounder.from_pretrained", "load_pretrained-r2tuning", "predict-r2tuning", "convert")
    if (suffix, loader) != (".ckpt", "Grounder.from_pretrained")])
def test_flashvtg_checkpoint_given_to_r2tuning_loaders(tmp_path: Path, annotations: Path, capsys, loader: str,
                                                       suffix: str) -> None:
    path = write_flashvtg_official(tmp_path / f"model_best{suffix}")
    message = _fails_naming(loader, path, annotations, tmp_path, capsys, error=CheckpointError)
    assert "FlashVTG" in message


@pytest.mark.parametrize("loader", ["load_pretrained-flashvtg", "predict-flashvtg", "predict-flashvtg-dataset"])
def test_r2tuning_checkpoint_given_to_flashvtg_loaders(tmp_path: Path, annotations: Path, capsys,
                                                       loader: str) -> None:
    path = write_r2_official(tmp_path / "r2.pth")
    message = _fails_naming(loader, path, annotations, tmp_path, capsys, error=VTGKitError)
    assert "R2-Tuning" in message


@pytest.mark.parametrize("loader", ["predict-flashvtg", "predict-flashvtg-dataset", "load_pretrained-flashvtg"])
def test_vtgkit_r2tuning_folder_given_to_flashvtg_loaders(tmp_path: Path, annotations: Path, capsys,
                                                          loader: str) -> None:
    folder = write_r2_vtgkit(tmp_path / "ckpt")
    message = _fails_naming(loader, folder, annotations, tmp_path, capsys, error=VTGKitError)
    assert "folder" in message


def test_vtgkit_checkpoint_of_another_model_name(tmp_path: Path) -> None:
    from vtgkit.models.r2tuning.convert import load_vtgkit

    folder = write_r2_vtgkit(tmp_path / "ckpt")
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"model": "r2tuning"', '"model": "flashvtg"'))
    with pytest.raises(CheckpointError, match=rf"{folder}: holds a 'flashvtg' model, not 'r2tuning'"):
        load_vtgkit(folder)
    # The Grounder believes the JSON (a FlashVTG checkpoint) and finds R²-Tuning fields in its config.
    with pytest.raises(CheckpointError, match=rf"{folder}: unknown FlashVTGConfig field"):
        Grounder.from_pretrained(folder, cache_dir=tmp_path / "cache", progress=False)


# ---------------------------------------------------------------------------------------------------- other shapes
@pytest.mark.parametrize("change", [{"hidden_dims": 32}, {"num_layers": 3}, {"strides": [1, 2]},
                                    {"video_dims": 12}], ids=lambda c: next(iter(c)))
@pytest.mark.parametrize("loader", ["Grounder.from_pretrained", "predict-r2tuning", "convert-to-official"])
def test_vtgkit_checkpoint_whose_config_has_other_shapes(tmp_path: Path, annotations: Path, capsys,
                                                         change: dict, loader: str) -> None:
    folder = write_r2_vtgkit(tmp_path / "ckpt")
    record = json.loads((folder / "config.json").read_text())
    record["config"].update(change)
    (folder / "config.json").write_text(json.dumps(record))
    if loader == "convert-to-official":
        assert run_cli("convert", "--model", "r2tuning", "--to", "official", "--input", folder, "--output",
                       tmp_path / "out.pth") == 2
        message = capsys.readouterr().err
    else:
        message = _fails_naming(loader, folder, annotations, tmp_path, capsys)
    assert f"{folder}: weights do not match its config" in message
    assert "shape mismatches" in message or "missing" in message


@pytest.mark.parametrize(("change", "expected"), [({"hidden_size": 16}, r"unknown R2TuningConfig field\(s\) "
                                                   r"\['hidden_size'\]"),
                                                  ({"hidden_dims": "wide"}, "invalid R2TuningConfig")])
def test_vtgkit_config_with_unknown_or_invalid_fields(tmp_path: Path, change: dict, expected: str) -> None:
    from vtgkit.models.r2tuning.convert import load_vtgkit

    folder = write_r2_vtgkit(tmp_path / "ckpt")
    record = json.loads((folder / "config.json").read_text())
    record["config"].update(change)
    (folder / "config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=rf"{folder}: {expected}"):
        load_vtgkit(folder)


# ---------------------------------------------------------------------------------------------------- downloads
class _Response(io.BytesIO):
    """What ``urlopen`` returns, enough for ``pretrained._stream_to``."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def _no_files(folder: Path) -> bool:
    return not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


def test_sha256_mismatch_through_grounder_deletes_the_partial_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A released name downloaded through a monkeypatched ``urlopen`` (no network) that serves other bytes."""
    entry = PRETRAINED["r2tuning-qvhighlights"]
    payload = b"not the released weights" * 100
    requested: list[str] = []

    def serve(url: str, timeout: float) -> _Response:
        requested.append(url)
        return _Response(payload)

    monkeypatch.setattr(pretrained, "urlopen", serve)
    # No published size, so the hash check is what fails (the size check is tested in tests/test_pretrained.py).
    monkeypatch.setitem(PRETRAINED, entry.name, dataclasses.replace(entry, size_bytes=None))
    with pytest.raises(CheckpointError) as info:
        Grounder.from_pretrained(entry.name, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert requested == [entry.url]
    assert entry.url in message and entry.sha256 in message and hashlib.sha256(payload).hexdigest() in message
    assert "the partial file was deleted" in message
    assert _no_files(tmp_path / "checkpoints")


def test_sha256_mismatch_from_a_file_url(tmp_path: Path) -> None:
    served = tmp_path / "served.pth"
    served.write_bytes(b"tampered")
    entry = pretrained.PretrainedCheckpoint(
        name="test-fake", model="r2tuning", preset="qvhighlights", filename="fake.pth", url=served.as_uri(),
        sha256="ab" * 32, license="test", source="test")
    with pytest.raises(CheckpointError) as info:
        pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert served.as_uri() in message and "ab" * 32 in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert _no_files(tmp_path / "cache")


def test_cached_file_with_wrong_hash_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = PRETRAINED["r2tuning-tacos"]  # full sha256 known, no published size

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(pretrained, "urlopen", no_network)
    cached = pretrained.checkpoint_path(entry, tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"corrupted")
    with pytest.raises(CheckpointError) as info:
        Grounder.from_pretrained(entry.name, cache_dir=tmp_path, progress=False)
    assert str(cached) in str(info.value) and entry.sha256 in str(info.value)
