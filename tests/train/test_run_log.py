"""``log.jsonl``: whole-line appends, a killed run's torn last line cut on reopening and ignored (counted) by the
reader, a failed write leaving nothing behind."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import pytest

import vtgkit.atomic_files
from vtgkit.train.run_log import RunLog, read_run_log

TORN = b'{"kind": "train", "step": 3, "loss'  # what a kill mid-append leaves: no closing brace, no newline


def test_records_round_trip_as_whole_lines(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.write("train", 1, {"loss": 0.5})
    log.write("eval", 2, {"score": math.nan})
    data = (tmp_path / "log.jsonl").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 2
    contents = read_run_log(tmp_path / "log.jsonl")
    assert [(r["kind"], r["step"]) for r in contents.records] == [("train", 1), ("eval", 2)]
    assert contents.records[1]["score"] == "nan"
    assert not contents.torn_last_line and contents.unreadable_lines == []


def test_torn_last_line_is_ignored_and_counted_then_cut_on_reopening(tmp_path: Path) -> None:
    RunLog(tmp_path).write("train", 1, {"loss": 0.5})
    path = tmp_path / "log.jsonl"
    with open(path, "ab") as file:
        file.write(TORN)
    contents = read_run_log(path)
    assert contents.torn_last_line and [r["step"] for r in contents.records] == [1]

    with pytest.warns(RuntimeWarning, match=r"log\.jsonl: removed a torn last line \(\d+ bytes\)"):
        resumed = RunLog(tmp_path)  # a resumed run: its first record must not be glued to the fragment
    assert resumed.torn_bytes_removed == len(TORN)
    resumed.write("resume", 2, {"from": "last.pt"})
    contents = read_run_log(path)
    assert [(r["kind"], r["step"]) for r in contents.records] == [("train", 1), ("resume", 2)]
    assert not contents.torn_last_line and contents.unreadable_lines == []


def test_glued_line_in_the_middle_is_skipped_and_numbered(tmp_path: Path) -> None:
    """What a resume after a kill left before the torn line was cut: a fragment glued to a whole record."""
    path = tmp_path / "log.jsonl"
    whole = [json.dumps({"kind": kind, "step": step}).encode() for kind, step in (("train", 1), ("resume", 1),
                                                                                  ("train", 2))]
    lines = [whole[0], TORN + whole[1], whole[2]]
    path.write_bytes(b"\n".join(lines) + b"\n")
    contents = read_run_log(path)
    assert [r["step"] for r in contents.records] == [1, 2]
    assert contents.unreadable_lines == [2] and not contents.torn_last_line


def test_failed_write_leaves_the_log_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunLog(tmp_path)
    log.write("train", 1, {"loss": 0.5})
    before = (tmp_path / "log.jsonl").read_bytes()

    def full_disk(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(vtgkit.atomic_files.os, "fsync", full_disk)  # the bytes are written, then the disk is full
    with pytest.raises(OSError, match=r"cannot write .*log\.jsonl: No space left"):
        log.write("train", 2, {"loss": 0.4})
    monkeypatch.undo()
    assert (tmp_path / "log.jsonl").read_bytes() == before
