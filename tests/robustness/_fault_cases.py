"""Helpers of the fault tests: a simulated full disk, a read-only folder that holds even for root, subprocess runs
of ``vtgkit`` that can be killed, and tiny inputs (CLIP weights, videos, a grounding checkpoint, prediction files).

The full disk and the read-only folder are simulated in-process with ``monkeypatch`` (no tmpfs of a chosen size can
be mounted here, and root ignores folder permissions): every Python-level way vtgkit opens a file for writing goes
through ``builtins.open`` / ``io.open`` / ``os.open`` / ``os.mkdir`` / ``os.replace``, which are patched for paths
inside one folder only.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import vtgkit

SRC = Path(vtgkit.__file__).resolve().parents[1]
_REAL_OPEN = builtins.open


def _resolve(file: Any) -> str | None:
    """The absolute path behind an ``open`` argument (a path or a file descriptor)."""
    if isinstance(file, int):
        try:
            return os.readlink(f"/proc/self/fd/{file}")
        except OSError:
            return None
    try:
        return os.path.realpath(os.fspath(file))
    except TypeError:
        return None


def _writing(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


# ------------------------------------------------------------------------------------------------------ full disk
class FullDisk:
    """Writes to files under ``folder`` whose name matches ``match`` fail with ENOSPC part-way.

    The first ``spare_files`` matching files are written in full; from the next one on, each file may take
    ``room`` bytes, and the write that would exceed it writes what fits and raises ``OSError(ENOSPC)``. With
    ``on_fsync`` the data is accepted and ``os.fsync`` of a matching file reports the full disk instead, after
    ``spare_files`` fsyncs that succeed (what delayed allocation does, and the only way to reach writers that do not
    write through Python, such as safetensors).
    """

    def __init__(self, folder: Path, match: str = "*", room: int = 0, spare_files: int = 0,
                 on_fsync: bool = False) -> None:
        self.folder = os.path.realpath(folder)
        self.match = match
        self.room = room
        self.spare_files = spare_files
        self.on_fsync = on_fsync
        self.opened = 0  # matching files opened for writing
        self.synced = 0  # fsyncs of matching files (on_fsync)
        self.failures = 0  # writes (or fsyncs) that raised ENOSPC

    def covers(self, path: str | None) -> bool:
        return (path is not None and path.startswith(self.folder + os.sep)
                and fnmatch.fnmatch(os.path.basename(path), self.match))

    def error(self) -> OSError:
        self.failures += 1
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FullDisk:
        real_fsync = os.fsync

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = _REAL_OPEN(file, mode, *args, **kwargs)
            if not _writing(mode) or not self.covers(_resolve(file)):
                return handle
            self.opened += 1
            if self.opened <= self.spare_files or self.on_fsync:
                return handle
            return _FillingFile(handle, self, self.room)

        def fake_fsync(descriptor: Any) -> None:
            number = descriptor if isinstance(descriptor, int) else descriptor.fileno()
            if self.on_fsync and self.covers(_resolve(number)):
                self.synced += 1
                if self.synced > self.spare_files:
                    raise self.error()
            real_fsync(descriptor)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        return self


class _FillingFile:
    """A real file object whose writes stop with ENOSPC after ``room`` bytes (or characters)."""

    def __init__(self, real: Any, disk: FullDisk, room: int) -> None:
        self._real = real
        self._disk = disk
        self._room = room

    def write(self, data: Any) -> int:
        size = len(data)  # memoryview / bytes: bytes; str: characters
        if size <= self._room:
            self._room -= size
            return self._real.write(data)
        if self._room:
            self._real.write(data[: self._room])
            self._real.flush()
            self._room = 0
        raise self._disk.error()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._real)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()


# ------------------------------------------------------------------------------------------------- read-only folder
@contextmanager
def read_only_folder(folder: Path) -> Iterator[str]:
    """Make ``folder`` read-only (mode 0o555) for the block; yields ``"permissions"`` or ``"simulated"``.

    As root the mode does not stop anything, so the refusals a 0o555 folder gives are raised in Python: creating,
    removing or renaming an entry directly in ``folder``. Existing files stay writable, as with real permissions.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        probe = folder / ".write-probe"
        try:
            probe.touch()
        except PermissionError:
            yield "permissions"
            return
        probe.unlink()
        with pytest.MonkeyPatch.context() as monkeypatch:
            _simulate_read_only(os.path.realpath(folder), monkeypatch)
            yield "simulated"
    finally:
        folder.chmod(0o755)


def _simulate_read_only(folder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def inside(path: Any) -> bool:
        resolved = _resolve(path)
        return resolved is not None and os.path.dirname(resolved) == folder

    def refuse(path: Any) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_os_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace
    real_rename, real_unlink = os.rename, os.unlink

    def fake_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT and inside(path) and not os.path.exists(path):
            raise refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not isinstance(file, int) and _writing(mode) and inside(file) and not os.path.exists(file):
            raise refuse(file)
        return _REAL_OPEN(file, mode, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if inside(path) and not os.path.exists(path):
            raise refuse(path)
        real_mkdir(path, *args, **kwargs)

    def guarded(real: Callable[..., Any], position: int) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if inside(args[position]):
                raise refuse(args[position])
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "replace", guarded(real_replace, 1))
    monkeypatch.setattr(os, "rename", guarded(real_rename, 1))
    monkeypatch.setattr(os, "unlink", guarded(real_unlink, 0))


def entries(folder: Path) -> list[str]:
    """Every name under ``folder`` (recursively), relative, sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def partials(folder: Path) -> list[Path]:
    from vtgkit.atomic_files import PARTIAL_PREFIX

    return sorted(folder.rglob(PARTIAL_PREFIX + "*"))


# -------------------------------------------------------------------------------------------------- subprocesses
def vtgkit_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "vtgkit.cli.main", *argv]


def subprocess_env() -> dict[str, str]:
    """The environment of a ``vtgkit`` child: this checkout's sources first, one thread (the same kernels, and
    so the same numbers, as the in-process runs of the tests, which also use one thread)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH", "")]))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], what: str, limit: float = 240.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (polled every 10 ms); fails if the process ended first.

    ``limit`` only bounds a hung child; no assertion depends on how long anything took.
    """
    deadline = time.monotonic() + limit
    while process.poll() is None and not ready():
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} never happened")
        time.sleep(0.01)
    if process.poll() is not None:
        output = process.communicate()[1] if process.stderr else ""
        pytest.fail(f"the process ended (code {process.returncode}) before {what}; it could not be killed mid-way\n"
                    f"{output}")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


# ----------------------------------------------------------------------------------------------------- tiny inputs
def write_clip224(path: Path) -> Path:
    """A random CLIP that takes the official 224-px frames (patch 32, width 64, 3 layers) as safetensors."""
    from safetensors.torch import save_file

    from vtgkit.features.clip_model import CLIPConfig
    from vtgkit.synth.tiny_clip import build_tiny_clip

    config = CLIPConfig(embed_dim=32, image_resolution=224, vision_layers=3, vision_width=64, vision_patch_size=32,
                        context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                        transformer_layers=3)
    clip = build_tiny_clip(0, config)
    save_file({key: value.contiguous() for key, value in clip.state_dict().items()}, str(path))
    return path


def write_videos(folder: Path, count: int, seconds: float = 3.0) -> list[Path]:
    from vtgkit.features.synthetic_video import write_test_video

    folder.mkdir(parents=True, exist_ok=True)
    return [write_test_video(folder / f"clip{index}.mp4", seconds, fps=10, width=96, height=64, seed=index)
            for index in range(count)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prediction_pair(folder: Path) -> tuple[Path, Path]:
    """A QVHighlights prediction file and its ground truth: 60-s videos, one short, one middle, one long window."""
    windows = {1: [4, 10], 2: [10, 30], 3: [10, 50]}
    gt, preds = [], []
    for qid, (start, end) in windows.items():
        clips = list(range(start // 2, end // 2))
        gt.append({"qid": qid, "query": f"q{qid}", "vid": f"v{qid}", "duration": 60,
                   "relevant_windows": [[start, end]], "relevant_clip_ids": clips,
                   "saliency_scores": [[1 + clip % 3, 2, 3] for clip in clips]})
        preds.append({"qid": qid, "query": f"q{qid}", "vid": f"v{qid}",
                      "pred_relevant_windows": [[start, end, 0.9], [0, 4, 0.2]],
                      "pred_saliency_scores": [0.01 * clip for clip in range(30)]})
    return write_jsonl(folder / "preds.jsonl", preds), write_jsonl(folder / "gt.jsonl", gt)
