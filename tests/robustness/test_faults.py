"""Faults: SIGKILL during training, feature extraction and batch grounding; a full disk; a read-only output folder.

Each test shows one row of the "Faults" table (docs/robustness.md): what vtgkit does when the fault hits one of the
writers users meet (atomic files, training checkpoints, feature files and their manifest, batch results, and the
outputs of ``predict``, ``evaluate`` and ``convert``). The kills use real ``vtgkit`` subprocesses and SIGKILL; the
full disk and the read-only folder are simulated in-process (see ``_fault_cases``).
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _fault_cases import (
    FullDisk,
    entries,
    kill_when,
    partials,
    prediction_pair,
    read_jsonl,
    read_only_folder,
    subprocess_env,
    vtgkit_command,
    write_clip224,
    write_jsonl,
    write_videos,
)

from vtgkit.atomic_files import (
    PARTIAL_PREFIX,
    StreamingNpyWriter,
    atomic_path,
    save_npy_atomic,
    save_npz_atomic,
    torch_save_atomic,
    write_text_atomic,
)
from vtgkit.cli.main import main
from vtgkit.features.manifest import STATE_DIR
from vtgkit.train.checkpointing import load_checkpoint

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed for the video inputs")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ============================================================================================== full disk: writers
def _save_safetensors(target: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(target) as temporary:
        save_file({"w": torch.ones(64)}, str(temporary))


def _stream_npy(target: Path) -> None:
    with StreamingNpyWriter(target, np.float16, (4,)) as writer:
        for _ in range(8):
            writer.append(np.ones((16, 4)))
        writer.commit()


WRITERS: dict[str, tuple[Callable[[Path], None], bool]] = {  # name -> (write, full disk shows at fsync only)
    "write_text_atomic": (lambda target: write_text_atomic(target, "x" * 4096), False),
    "save_npy_atomic": (lambda target: save_npy_atomic(target, np.ones((64, 8), np.float32)), False),
    "save_npz_atomic": (lambda target: save_npz_atomic(target, features=np.ones((64, 8), np.float32)), False),
    "torch_save_atomic": (lambda target: torch_save_atomic({"w": torch.ones(512)}, target), False),
    "StreamingNpyWriter": (_stream_npy, False),
    "atomic_path+safetensors": (_save_safetensors, True),
}


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_full_disk_leaves_the_old_file_or_nothing_and_names_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, existing: bool) -> None:
    write, on_fsync = WRITERS[name]
    target = tmp_path / "out" / "result.bin"
    if existing:
        target.parent.mkdir()
        target.write_bytes(b"the previous complete file")
    disk = FullDisk(tmp_path / "out", room=100, on_fsync=on_fsync).install(monkeypatch)
    with pytest.raises(OSError) as caught:
        write(target)
    monkeypatch.undo()
    assert disk.failures >= 1  # the fault was hit, part-way through the data
    assert caught.value.errno == errno.ENOSPC
    assert str(target) in str(caught.value) and "No space left" in str(caught.value)
    assert target.read_bytes() == b"the previous complete file" if existing else not target.exists()
    assert partials(tmp_path) == []


# ================================================================================================ batch grounding
@pytest.fixture(scope="module")
def grounding(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random R²-Tuning checkpoint, its CLIP, and three short videos (tests/tiny_grounder.py)."""
    from tiny_grounder import write_tiny_checkpoint, write_tiny_clip, write_video

    root = tmp_path_factory.mktemp("grounding")
    assets = {"checkpoint": write_tiny_checkpoint(root / "checkpoint"),
              "clip": write_tiny_clip(root / "clip.safetensors")}
    for index in range(3):
        assets[f"video{index}"] = write_video(root / f"video{index}.mp4", seconds=6.0 + 2 * index)
    return assets


def _model_options(assets: dict[str, Path], cache: Path) -> list[str]:
    return ["--checkpoint", str(assets["checkpoint"]), "--clip-weights", str(assets["clip"]), "--cache-dir",
            str(cache), "--quiet"]


def _manifest(folder: Path, assets: dict[str, Path], queries_per_video: int) -> tuple[Path, set[str]]:
    rows = [{"video": str(assets[f"video{v}"]), "query": f"object {q} moves", "id": f"v{v}q{q}"}
            for v in range(3) for q in range(queries_per_video)]
    return write_jsonl(folder / "manifest.jsonl", rows), {row["id"] for row in rows}


def _assert_each_item_once(results: Path, ids: set[str]) -> None:
    data = results.read_bytes()
    assert data.endswith(b"\n")  # no torn last line
    lines = read_jsonl(results)
    assert sorted(line["id"] for line in lines) == sorted(ids)  # every item exactly once
    assert all(line["status"] == "ok" and line["moments"] for line in lines)


@pytest.mark.slow
def test_sigkill_during_batch_then_rerun_has_every_item_once(grounding: dict[str, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ids = _manifest(tmp_path, grounding, queries_per_video=3)
    results = tmp_path / "out" / "results.jsonl"
    argv = ["batch", str(manifest), "--output", str(results), *_model_options(grounding, tmp_path / "cache")]
    process = subprocess.Popen(vtgkit_command(*argv), env=subprocess_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    kill_when(process, lambda: results.is_file() and results.read_bytes().count(b"\n") >= 2,
              "two result lines were written")
    complete = results.read_bytes().count(b"\n")  # whole lines at the kill; a torn one after them is not done
    assert 2 <= complete <= len(ids)  # (all of them only if the kill came while the process was wrapping up)
    code, _, err = _run(capsys, *argv)  # the rerun (in this process: the same code, one interpreter start less)
    assert code == 0, err
    assert f"{complete} already done" in err and f"{len(ids) - complete} done now" in err
    _assert_each_item_once(results, ids)


def test_torn_last_result_line_is_cut_and_its_item_redone(grounding: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    manifest, ids = _manifest(tmp_path, grounding, queries_per_video=1)
    results = tmp_path / "results.jsonl"
    argv = ["batch", str(manifest), "--output", str(results), *_model_options(grounding, tmp_path / "cache")]
    assert _run(capsys, *argv)[0] == 0
    lines = results.read_bytes().splitlines(keepends=True)
    # what a kill in the middle of the third line leaves: two whole lines and half of the third, no newline
    results.write_bytes(b"".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    assert "2 already done" in err and "1 done now" in err and "partial last line" in err
    _assert_each_item_once(results, ids)
    assert read_jsonl(results)[:2] == [json.loads(line) for line in lines[:2]]


def test_full_disk_on_batch_results_keeps_whole_lines_and_names_the_file(
        grounding: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, ids = _manifest(tmp_path, grounding, queries_per_video=1)
    results = tmp_path / "out" / "results.jsonl"
    argv = ["batch", str(manifest), "--output", str(results), *_model_options(grounding, tmp_path / "cache")]
    # the run opens the results file once to check that it can, then for appending: room for 1.5 lines in the latter
    disk = FullDisk(tmp_path / "out", match="results.jsonl", room=700, spare_files=1).install(monkeypatch)
    code, _, err = _run(capsys, *argv)
    monkeypatch.undo()
    assert disk.failures == 1
    assert code == 2 and f"cannot write {results}" in err and "No space left" in err
    data = results.read_bytes()
    assert data.count(b"\n") == 1 and data.endswith(b"\n")  # the torn second line was cut off at once
    code, _, err = _run(capsys, *argv)  # space again: the rerun finishes the work
    assert code == 0 and "1 already done" in err and "partial last line" not in err
    _assert_each_item_once(results, ids)


# ======================================================================================================= training
@pytest.fixture(scope="module")
def synthvtg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SynthVTG dataset with tiny-CLIP features (4 training videos, 8 queries)."""
    from vtgkit.synth.pipeline import prepare_synthvtg

    root = tmp_path_factory.mktemp("synthvtg")
    prepare_synthvtg(root, seed=2024, splits={"train": 4, "val": 1, "test": 1})
    return root


def _train_argv(data: Path, output: Path, *extra: str) -> list[str]:
    # 4 steps per epoch; a resume point after every step
    return ["train", "synthvtg-r2tuning", f"data_root={data}", "epochs=2", "batch_size=2",
            "checkpoint_every_steps=1", "log_every_steps=1", "--output", str(output), "--threads", "1",
            "--no-progress", *extra]


def _assert_same_training_state(expected: Path, found: Path) -> None:
    reference, resumed = load_checkpoint(expected), load_checkpoint(found)
    assert reference["progress"] == resumed["progress"]
    assert reference["model"].keys() == resumed["model"].keys()
    for key, value in reference["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for index, state in reference.get("optimizer", {"state": {}})["state"].items():
        for name, value in state.items():
            assert torch.equal(value, resumed["optimizer"]["state"][index][name]), (index, name)


def _logged_epoch_two(log: Path) -> bool:
    if not log.is_file():
        return False
    return any('"epoch": 2' in line and '"kind": "train"' in line for line in log.read_text().splitlines())


@pytest.fixture(scope="module")
def reference_run(synthvtg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run without interruption."""
    output = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert main(_train_argv(synthvtg, output)) == 0
    return output


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(
        synthvtg: Path, reference_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = reference_run
    run = tmp_path / "killed"
    process = subprocess.Popen(vtgkit_command(*_train_argv(synthvtg, run)), env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(process, lambda: _logged_epoch_two(run / "log.jsonl"), "a training step of epoch 2 was logged")
    # What the kill left is a complete checkpoint (never a torn one): a resume point inside or at the end of epoch 1.
    killed_at = load_checkpoint(run / "last.pt")["progress"]
    assert 4 <= killed_at["global_step"] <= 8, killed_at  # (8 only if the kill came during the final evaluation)
    assert not (run / "metrics.json").exists()
    # A leftover of a checkpoint write cut short is a hidden partial file; resume never reads it.
    (run / f"{PARTIAL_PREFIX}last.pt.killed").write_bytes(b"half a checkpoint")

    code, _, err = _run(capsys, *_train_argv(synthvtg, run, "--resume"))
    assert code == 0, err
    _assert_same_training_state(reference / "last.pt", run / "last.pt")
    _assert_same_training_state(reference / "best.pt", run / "best.pt")
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    resumes = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"resume"' in line]
    assert [entry["step"] for entry in resumes] == [killed_at["global_step"]]


# ============================================================================================= feature extraction
FEATURES = "clip_b32_vid_k4_5.0fps"  # the r2tuning-qvhighlights folder at --fps 5


@pytest.fixture(scope="module")
def extraction_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extraction")
    return {"clip": write_clip224(root / "clip224.safetensors"), "videos": root / "videos",
            **{f"video{index}": path for index, path in enumerate(write_videos(root / "videos", 5, seconds=4.0))}}


def _extract_argv(inputs: dict[str, Path], output: Path, count: int = 5) -> list[str]:
    videos = [str(inputs[f"video{index}"]) for index in range(count)]
    return ["extract", "--clip-weights", str(inputs["clip"]), "--fps", "5", "--batch-size", "4", "--no-progress",
            "--output", str(output), *videos]


def _manifest_records(output: Path) -> list[dict]:
    lines = (output / STATE_DIR / "manifest.0of1.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must parse


def _assert_same_features(expected: Path, found: Path, count: int) -> None:
    for index in range(count):
        reference = np.load(expected / FEATURES / f"clip{index}.npy")
        assert np.array_equal(reference, np.load(found / FEATURES / f"clip{index}.npy")), index


@pytest.mark.slow
def test_sigkill_during_extraction_then_rerun_verifies_and_finishes(
        extraction_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "uninterrupted"
    assert _run(capsys, *_extract_argv(extraction_inputs, reference))[0] == 0

    output = tmp_path / "killed"
    process = subprocess.Popen(vtgkit_command(*_extract_argv(extraction_inputs, output)), env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(process, lambda: any((output / FEATURES).glob("clip*.npy")), "the first feature file was published")
    finished = sorted((output / FEATURES).glob("clip*.npy"))
    assert 1 <= len(finished) <= 5  # (5 only if the kill came while the process was wrapping up)
    for path in finished:  # what carries a feature file's name is complete; anything else is a hidden partial
        assert np.load(path).shape == (20, 4, 50, 64), path
    left = len(partials(output))

    code, out, err = _run(capsys, *_extract_argv(extraction_inputs, output))
    assert code == 0, err
    assert f"videos: {5 - len(finished)} extracted" in out and f"{len(finished)} already done (verified)" in out
    assert (f"removed {left} partial" in out) == bool(left) and partials(output) == []
    _assert_same_features(reference, output, 5)
    records = _manifest_records(output)
    assert sorted(record["path"] for record in records) == [f"{FEATURES}/clip{index}.npy" for index in range(5)]


def test_damaged_feature_files_are_redone_not_taken_as_done(
        extraction_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    argv = _extract_argv(extraction_inputs, output, count=3)
    assert _run(capsys, *argv)[0] == 0
    originals = {index: (output / FEATURES / f"clip{index}.npy").read_bytes() for index in range(3)}
    # clip0: same size, other bytes (the manifest's sha256 catches it)
    damaged = bytearray(originals[0])
    damaged[-10:] = bytes(10)
    (output / FEATURES / "clip0.npy").write_bytes(bytes(damaged))
    # clip1: a torn copy made by another tool, with no manifest record (the header's size check catches it)
    (output / FEATURES / "clip1.npy").write_bytes(originals[1][: len(originals[1]) // 2])
    manifest = output / STATE_DIR / "manifest.0of1.jsonl"
    manifest.write_text("".join(line + "\n" for line in manifest.read_text().splitlines() if "clip1.npy" not in line))
    # clip2 untouched: verified and skipped
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and "videos: 2 extracted" in out and "1 already done (verified)" in out
    for index in range(3):
        assert (output / FEATURES / f"clip{index}.npy").read_bytes() == originals[index]


def test_torn_manifest_line_is_cut_and_the_next_record_kept(
        extraction_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    assert _run(capsys, *_extract_argv(extraction_inputs, output, count=1))[0] == 0
    manifest = output / STATE_DIR / "manifest.0of1.jsonl"
    whole = manifest.read_bytes()
    manifest.write_bytes(whole + whole[: len(whole) // 3])  # a kill in the middle of appending the next record
    code, out, _ = _run(capsys, *_extract_argv(extraction_inputs, output, count=2))
    assert code == 0 and "videos: 1 extracted" in out and "1 already done (verified)" in out
    assert [record["path"] for record in _manifest_records(output)] == [f"{FEATURES}/clip{i}.npy" for i in range(2)]


@pytest.mark.parametrize("where", ["feature file", "manifest"])
def test_full_disk_during_extraction_leaves_nothing_taken_as_done(
        extraction_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    output = tmp_path / "out"
    argv = _extract_argv(extraction_inputs, output, count=2)
    disk = FullDisk(output, match="*.npy*" if where == "feature file" else "manifest.*", room=200)
    disk.install(monkeypatch)
    code, _, err = _run(capsys, *argv)
    monkeypatch.undo()
    assert code == 1 and disk.failures == 2  # each video failed, was logged and counted; the run went on
    failures = read_jsonl(output / STATE_DIR / "failures.0of1.jsonl")
    assert len(failures) == 2 and all("No space left" in failure["message"] for failure in failures)
    if where == "feature file":
        assert [f"cannot write {output / FEATURES / f'clip{i}.npy'}" in failures[i]["message"] for i in range(2)] \
            == [True, True]
        assert entries(output / FEATURES) == []  # neither a feature file nor a partial one
    else:
        assert all(str(output / STATE_DIR / "manifest.0of1.jsonl") in failure["message"] for failure in failures)
    manifest = output / STATE_DIR / "manifest.0of1.jsonl"
    assert not manifest.exists() or manifest.read_bytes() == b""  # the torn record was cut off at once
    code, out, _ = _run(capsys, *argv)  # space again
    assert code == 0
    # complete feature files without a record (the manifest write failed) are verified from their header
    assert ("videos: 2 extracted" if where == "feature file" else "videos: 0 extracted (0 frames), 2 already done") \
        in out
    assert len(_manifest_records(output)) == 2


_DIE_IN_CHECKPOINT_WRITE = """
import os, signal, sys
import torch
from vtgkit.atomic_files import torch_save_atomic
from vtgkit.train.checkpointing import FORMAT

target = sys.argv[1]
torch_save_atomic({"format": FORMAT, "progress": {"global_step": 1}, "model": {"w": torch.ones(4)}}, target)
def save_half_then_die(obj, file, *args, **kwargs):  # the process is killed half-way through the next checkpoint
    file.write(b"PK\\x03\\x04" + bytes(1000))
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_half_then_die
torch_save_atomic({"format": FORMAT, "progress": {"global_step": 2}, "model": {"w": torch.zeros(4)}}, target)
"""


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "run" / "last.pt"
    process = subprocess.run([sys.executable, "-c", _DIE_IN_CHECKPOINT_WRITE, str(target)], env=subprocess_env(),
                             capture_output=True, text=True, check=False)
    assert process.returncode == -9, process.stderr  # killed inside the second write, deterministically
    state = load_checkpoint(target)  # the previous complete checkpoint, never the torn one
    assert state["progress"]["global_step"] == 1 and torch.equal(state["model"]["w"], torch.ones(4))
    (torn,) = partials(tmp_path)  # the torn bytes are only in a hidden partial file
    assert torn.name.startswith(PARTIAL_PREFIX + "last.pt.") and torn.stat().st_size > 1000


def test_resume_from_a_torn_or_missing_last_pt_is_refused_naming_the_file(
        synthvtg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code, _, err = _run(capsys, *_train_argv(synthvtg, run, "--resume"))
    assert code == 2 and f"{run / 'last.pt'}: checkpoint file not found" in err
    run.mkdir(exist_ok=True)
    (run / "last.pt").write_bytes(b"PK\x03\x04" + bytes(300))  # a torn copy (e.g. copied off a full disk)
    code, _, err = _run(capsys, *_train_argv(synthvtg, run, "--resume"))
    assert code == 2 and f"{run / 'last.pt'}: cannot load" in err  # never a silent fresh start
    assert not (run / "metrics.json").exists()


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_keeps_the_last_one_and_resume_finishes(
        synthvtg: Path, reference_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    # the third checkpoint write (after step 3) finds the disk full after 64 kB
    disk = FullDisk(run, match="*last.pt*", room=1 << 16, spare_files=2).install(monkeypatch)
    code, _, err = _run(capsys, *_train_argv(synthvtg, run))
    monkeypatch.undo()
    assert disk.failures == 1
    assert code == 2 and f"cannot write {run / 'last.pt'}: No space left" in err
    assert load_checkpoint(run / "last.pt")["progress"]["global_step"] == 2  # the previous resume point, whole
    assert partials(run) == [] and not (run / "metrics.json").exists()
    code, _, err = _run(capsys, *_train_argv(synthvtg, run, "--resume"))
    assert code == 0, err
    _assert_same_training_state(reference_run / "last.pt", run / "last.pt")


# ================================================================== predict / evaluate / convert outputs, all writers
@pytest.fixture(scope="module")
def model_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny R²-Tuning checkpoint in vtgkit's format, a feature cache for it, annotations and prediction files."""
    from vtgkit.models.r2tuning import R2Tuning, R2TuningConfig
    from vtgkit.models.r2tuning.convert import save_vtgkit

    root = tmp_path_factory.mktemp("model_inputs")
    layers, tokens, video_dims, query_dims = 2, 3, 8, 6
    config = R2TuningConfig(video_dims=video_dims, query_dims=query_dims, tokens_per_frame=tokens,
                            num_layers=layers, hidden_dims=16, num_heads=2)
    torch.manual_seed(0)
    save_vtgkit(R2Tuning(config), root / "checkpoint")
    rng = np.random.default_rng(0)
    for folder, name, shape in (("vid", "va", (10, layers, tokens, video_dims)), ("txt", "1", (4, layers, query_dims))):
        (root / "data" / f"clip_b32_{folder}_k{layers}").mkdir(parents=True)
        np.save(root / "data" / f"clip_b32_{folder}_k{layers}" / f"{name}.npy",
                rng.standard_normal(shape).astype(np.float16))
    write_jsonl(root / "anno.jsonl", [{"qid": 1, "query": "one", "duration": 20, "vid": "va",
                                       "relevant_windows": [[0, 4]]}])
    predictions, ground_truth = prediction_pair(root)
    return {"checkpoint": root / "checkpoint", "data": root / "data", "annotations": root / "anno.jsonl",
            "predictions": predictions, "ground_truth": ground_truth, "official": _official_checkpoint(root)}


def _official_checkpoint(root: Path) -> Path:
    """An official-layout checkpoint (the ViT-B/32 widths the converter recognises, hidden width 16: 160 kB)."""
    from vtgkit.models.r2tuning import R2Tuning, R2TuningConfig
    from vtgkit.models.r2tuning.convert import save_official_checkpoint

    return save_official_checkpoint(R2Tuning(R2TuningConfig(hidden_dims=16, num_heads=2)), root / "official.pth")


# command -> (argv for an output folder, the file it writes there, the writer's route to a full disk)
OUTPUT_COMMANDS: dict[str, tuple[Callable[[dict[str, Path], Path], list[str]], str, dict]] = {
    "predict": (lambda i, out: ["predict", "--model", "r2tuning", "--dataset", "qvhighlights", "--checkpoint",
                                str(i["checkpoint"]), "--data-root", str(i["data"]), "--annotations",
                                str(i["annotations"]), "--output", str(out / "preds.jsonl"), "--quiet"],
                "preds.jsonl", {"room": 50}),
    "evaluate --output": (lambda i, out: ["evaluate", "--dataset", "qvhighlights", "--predictions",
                                          str(i["predictions"]), "--ground-truth", str(i["ground_truth"]),
                                          "--output", str(out / "metrics.json"), "--quiet"],
                          "metrics.json", {"room": 50}),
    "evaluate --package": (lambda i, out: ["evaluate", "--package", "--val", str(i["predictions"]), "--test",
                                           str(i["predictions"]), "--output", str(out / "submission.zip")],
                           "submission.zip", {"room": 50}),
    "convert --to official": (lambda i, out: ["convert", "--model", "r2tuning", "--input", str(i["checkpoint"]),
                                              "--to", "official", "--output", str(out / "r2.pth")],
                              "r2.pth", {"room": 2000}),
    "convert --to vtgkit": (lambda i, out: ["convert", "--model", "r2tuning", "--input", str(i["official"]),
                                            "--output", str(out / "model.safetensors")],
                            "model.safetensors", {"on_fsync": True}),  # safetensors writes outside Python
}


@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_full_disk_on_command_output_leaves_no_file_and_names_it(
        model_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    argv, name, route = OUTPUT_COMMANDS[command]
    out = tmp_path / "out"
    disk = FullDisk(out, **route).install(monkeypatch)
    code, _, err = _run(capsys, *argv(model_inputs, out))
    monkeypatch.undo()
    assert disk.failures >= 1
    assert code == 2 and f"cannot write {out / name}: No space left" in err and "Traceback" not in err
    assert entries(out) == []  # neither the output nor a partial of it
    assert _run(capsys, *argv(model_inputs, out))[0] == 0 and (out / name).is_file()  # space again: it works


READ_ONLY_COMMANDS = {
    **{command: argv for command, (argv, _, _) in OUTPUT_COMMANDS.items()},
    "batch": lambda i, out: ["batch", str(i["manifest"]), "--output", str(out / "results.jsonl"),
                             *_model_options(i, i["cache"])],
    "extract": lambda i, out: ["extract", "--clip-weights", str(i["clip224"]), "--fps", "2", "--no-progress",
                               "--output", str(out), str(i["video0"])],
    "train": lambda i, out: _train_argv(i["synthvtg"], out),
}


@pytest.mark.parametrize("command", list(READ_ONLY_COMMANDS))
def test_read_only_output_folder_is_reported_naming_the_folder(
        model_inputs: dict[str, Path], grounding: dict[str, Path], extraction_inputs: dict[str, Path],
        synthvtg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    inputs = {**model_inputs, **grounding, "clip224": extraction_inputs["clip"], "synthvtg": synthvtg,
              "manifest": _manifest(tmp_path, grounding, queries_per_video=1)[0], "cache": tmp_path / "cache"}
    out = tmp_path / "read-only"
    with read_only_folder(out):
        code, _, err = _run(capsys, *READ_ONLY_COMMANDS[command](inputs, out))
    assert code == 2 and f"folder {out} is not writable" in err and "Traceback" not in err, err
    assert entries(out) == []
