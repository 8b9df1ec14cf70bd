"""vtgkit.atomic_files: files appear whole or not at all; a failed write keeps the old file and leaves no partial."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vtgkit.atomic_files import (
    PARTIAL_PREFIX,
    StreamingNpyWriter,
    atomic_path,
    atomic_write,
    remove_partials,
    save_npy_atomic,
    save_npz_atomic,
    torch_save_atomic,
    write_bytes_atomic,
    write_text_atomic,
)


def test_writers_round_trip_and_leave_only_the_target(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "new" / "a.bin", b"\x00\x01")  # the folder is created
    write_text_atomic(tmp_path / "b.txt", "häh\n")
    array = np.arange(12, dtype=np.float16).reshape(3, 4)
    save_npy_atomic(tmp_path / "c.npy", array)
    save_npz_atomic(tmp_path / "d.npz", features=array, other=array[:1])
    torch_save_atomic({"w": torch.ones(2)}, tmp_path / "e.pt")
    with atomic_write(tmp_path / "f.jsonl", "w", encoding="utf-8") as file:
        file.write('{"x": 1}\n')
    with atomic_path(tmp_path / "g.bin", suffix=".mp4") as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(PARTIAL_PREFIX + "g.bin.")
        assert temporary.suffix == ".mp4"
        temporary.write_bytes(b"clip")

    assert (tmp_path / "new" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "häh\n"
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), array)
    with np.load(tmp_path / "d.npz") as stored:
        assert sorted(stored.files) == ["features", "other"]
        np.testing.assert_array_equal(stored["other"], array[:1])
    assert torch.equal(torch.load(tmp_path / "e.pt", weights_only=True)["w"], torch.ones(2))
    assert (tmp_path / "f.jsonl").read_text(encoding="utf-8") == '{"x": 1}\n'
    assert (tmp_path / "g.bin").read_bytes() == b"clip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "c.npy", "d.npz", "e.pt", "f.jsonl", "g.bin", "new"]


def _fail_in_atomic_write(target: Path) -> None:
    with atomic_write(target, "wb") as file:
        file.write(b"half of the new")
        raise OSError("disk full")


def _fail_in_atomic_path(target: Path) -> None:
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"half of the new")
        raise OSError("disk full")


class _Unsaveable:
    def __reduce__(self) -> tuple:
        raise OSError("disk full")


def _fail_in_torch_save(target: Path) -> None:
    # torch.save has begun the archive (the tensor) when pickling the second value fails
    torch_save_atomic({"w": torch.ones(3), "bad": _Unsaveable()}, target)


@pytest.mark.parametrize("fail", [_fail_in_atomic_write, _fail_in_atomic_path, _fail_in_torch_save],
                         ids=lambda fail: fail.__name__)
def test_failure_inside_the_write_keeps_the_old_file_and_leaves_no_partial(
        tmp_path: Path, fail: Callable[[Path], None]) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content")
    with pytest.raises(OSError, match="disk full"):
        fail(target)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_without_an_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hash"):
        with atomic_write(tmp_path / "download.pth", "wb") as file:
            file.write(b"tampered")
            raise ValueError("hash differs")  # e.g. a download rejected after streaming
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_streaming_npy_writer_commits_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "rows.npy"
    with StreamingNpyWriter(target, np.float16, (2, 3)) as writer:
        writer.append(np.ones((4, 2, 3)))
        writer.append(np.zeros((1, 2, 3)))
        assert not target.exists()  # nothing appears before commit
        writer.commit()
    stored = np.load(target)
    assert stored.shape == (5, 2, 3) and stored.dtype == np.float16 and stored[:4].all() and not stored[4].any()

    with pytest.raises(ValueError, match=r"rows of shape \(3,\)"):
        with StreamingNpyWriter(target, np.float16, (2, 3)) as writer:
            writer.append(np.ones((1, 3)))
    with StreamingNpyWriter(tmp_path / "never.npy", np.float16, (1,)) as writer:
        writer.append(np.ones((2, 1)))  # no commit: the block ends and the file never appears
    assert np.load(target).shape == (5, 2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["rows.npy"]


def test_remove_partials_counts_only_partial_files(tmp_path: Path) -> None:
    (tmp_path / f"{PARTIAL_PREFIX}a.npy.x1").write_bytes(b"half")
    (tmp_path / f"{PARTIAL_PREFIX}b.npz.x2").write_bytes(b"half")
    (tmp_path / "done.npy").write_bytes(b"whole")
    assert remove_partials(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["done.npy"]
    assert remove_partials(tmp_path / "missing") == 0


def test_import_pulls_in_neither_numpy_nor_torch() -> None:
    code = "import sys, vtgkit.atomic_files; print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_published_files_get_the_permissions_of_a_plain_write(tmp_path: Path) -> None:
    from vtgkit.atomic_files import atomic_write

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "atomic.txt"
    with atomic_write(target, "w", encoding="utf-8") as file:
        file.write("x")
    assert (target.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
