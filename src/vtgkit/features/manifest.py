"""The extraction manifest and failure log of an output folder, so that reruns resume and verify.

Both live in ``<output>/.vtgkit-extract/`` as JSON lines, one file per shard (``manifest.<i>of<n>.jsonl``), so that
processes working on different shards never write the same file. A manifest record names one finished output file
(path relative to the output folder), its sha256, shape, dtype, the source it came from and the settings that made
it. A rerun skips an output only when the file exists, its sha256 equals the record's and the settings are the
same; a file without a record (e.g. written by the official tools) is accepted when its header says the expected
dtype and row shape (and, for ``.npy``, its size matches the header), and is then recorded.

Lines are appended unbuffered and fsynced. A run killed mid-line leaves a last line without its newline: the next
run of that shard cuts it off before appending (otherwise its first record would be glued to the fragment and
lost), and the file it described is verified again from its header. A failed append (a full disk) is cut off at
once and raises an error naming the manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.atomic_files import append_whole, cut_torn_last_line, open_append

STATE_DIR = ".vtgkit-extract"


def append_line(path: Path, line: str) -> None:
    """Append ``line`` + newline to ``path`` (fsynced), or nothing of it: a failed write is cut off again."""
    with open_append(path) as handle:
        append_whole(handle, (line + "\n").encode("utf-8"))


def cut_partial_last_line(path: Path) -> bool:
    """Remove a last line that lacks its newline (a killed append); True when one was removed."""
    return cut_torn_last_line(path) > 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _header(file: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(file)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(file)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    return tuple(shape), dtype


def read_array_header(path: Path) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) of a ``.npy`` file or of the first array of a ``.npz``, without reading the data.

    A ``.npy`` whose size disagrees with its header (a truncated copy) raises ``ValueError``.
    """
    if path.suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            with archive.open(archive.namelist()[0]) as file:
                shape, dtype = _header(file)
        return shape, str(dtype)
    with open(path, "rb") as file:
        shape, dtype = _header(file)
        expected = int(np.prod(shape)) * dtype.itemsize + file.tell()
    if path.stat().st_size != expected:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, the header promises {expected}")
    return tuple(shape), str(dtype)


@dataclass
class ExtractionManifest:
    """Records of finished outputs across all shards, and the writer of this shard's files."""

    root: Path
    shard: str = "0of1"
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.root / STATE_DIR
        self.path = self.state_dir / f"manifest.{self.shard}.jsonl"
        # This shard's own file only: another shard's process may be appending to its file right now.
        self.partial_line_removed = cut_partial_last_line(self.path)
        self.unreadable_lines = 0  # counted, and the files they described are verified again from their headers
        for path in sorted(self.state_dir.glob("manifest.*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None  # a line cut by a kill (another shard's last line)
                if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                    self.unreadable_lines += bool(line.strip())
                    continue
                self.records[record["path"]] = record

    def record(self, relative: str, source: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Describe the finished file ``relative`` and append it to this shard's manifest (fsynced)."""
        path = self.root / relative
        shape, dtype = read_array_header(path)
        entry = {"path": relative, "sha256": file_sha256(path), "shape": list(shape), "dtype": dtype,
                 "source": source, "settings": settings, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_line(self.path, json.dumps(entry))
        self.records[relative] = entry
        return entry

    def check_done(self, relative: str, settings: dict[str, Any], row_shape: tuple[int, ...] | None,
                   dtype: str) -> tuple[bool, str]:
        """Whether ``relative`` is finished: (done, reason when not done or how it was verified)."""
        path = self.root / relative
        if not path.is_file():
            return False, "missing"
        record = self.records.get(relative)
        if record is not None:
            if record.get("settings") != settings:
                return False, "recorded with other settings"
            if file_sha256(path) != record["sha256"]:
                return False, "sha256 differs from the manifest"
            return True, "sha256 verified"
        try:
            shape, found_dtype = read_array_header(path)
        except (OSError, ValueError, zipfile.BadZipFile, IndexError) as error:
            return False, f"unreadable ({error})"
        if found_dtype != dtype or (row_shape is not None and tuple(shape[1:]) != tuple(row_shape)):
            return False, f"found {found_dtype} {shape}, expected {dtype} rows {row_shape}"
        return True, "header verified (no manifest record)"


class FailureLog:
    """Failures of this run, appended to ``failures.<shard>.jsonl`` as they happen."""

    def __init__(self, root: Path, shard: str) -> None:
        self.path = root / STATE_DIR / f"failures.{shard}.jsonl"
        self.entries: list[dict[str, str]] = []
        cut_partial_last_line(self.path)  # a fragment from a killed run would swallow the first new entry

    def add(self, item: str, error: BaseException) -> None:
        entry = {"item": item, "error": type(error).__name__, "message": str(error),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_line(self.path, json.dumps(entry))
        self.entries.append(entry)
