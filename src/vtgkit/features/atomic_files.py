"""Files that appear whole or not at all: a temporary name in the target folder, fsync, then ``os.replace``.

A run killed at any point (even SIGKILL) leaves at most a hidden ``.partial-*`` file, which no reader takes for a
finished feature file; :func:`remove_partials` clears them on the next run.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np

PARTIAL_PREFIX = ".partial-"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(target: Path) -> tuple[int, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX + target.name + ".")
    return handle, Path(name)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    handle, temporary = _temporary(target)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    finally:
        if temporary.exists():
            temporary.unlink()


def save_npy_atomic(target: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes_atomic(target, buffer.getvalue())


def save_npz_atomic(target: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(target, buffer.getvalue())


def remove_partials(directory: Path) -> int:
    """Delete leftovers of killed runs in ``directory``; returns how many were removed."""
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob(PARTIAL_PREFIX + "*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class StreamingNpyWriter:
    """Append rows to a ``.npy`` file without holding them in memory; the file appears on :meth:`commit`.

    The header is written for 0 rows first and rewritten with the final row count on commit (numpy pads headers
    to 64 bytes, so the length only changes for shapes with > ~40 digits; that is checked).

    Args:
        target: final path.
        dtype: stored dtype (e.g. float16).
        row_shape: shape of one row (e.g. (K, P, D)).
    """

    def __init__(self, target: Path, dtype: np.dtype | type, row_shape: tuple[int, ...]) -> None:
        self.target = Path(target)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        handle, self._temporary = _temporary(self.target)
        self._file = os.fdopen(handle, "wb")
        self._header_length = self._write_header()

    def _write_header(self) -> int:
        self._file.seek(0)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, *self.row_shape)}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def append(self, rows: np.ndarray) -> None:
        """Append (n, *row_shape) rows (cast to the stored dtype)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} appended to a file of rows {self.row_shape}")
        self._file.write(rows.tobytes())
        self.rows += rows.shape[0]

    def commit(self) -> None:
        end = self._file.tell()
        if self._write_header() != self._header_length:
            self.abort()
            raise ValueError(f"{self.target}: npy header length changed; shape too large for streaming")
        self._file.seek(end)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temporary, self.target)
        _fsync_dir(self.target.parent)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> StreamingNpyWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None or not self._file.closed:
            self.abort()
