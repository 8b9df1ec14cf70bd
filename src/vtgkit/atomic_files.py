"""Files that appear whole or not at all: a temporary name in the target folder, fsync, then ``os.replace``.

The one home of this mechanism in vtgkit (feature files, checkpoints, prediction files, downloads, video clips).
A run killed at any point (even SIGKILL) leaves at most a hidden ``.partial-*`` file, which no reader takes for a
finished file; :func:`remove_partials` clears them on the next run. After the rename the folder is fsynced too, so
that the rename itself survives a power loss.

Bottom layer: imports only the standard library; numpy and torch are imported inside the functions that need them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def _publish(temporary: Path, target: Path) -> None:
    """Rename the finished (already fsynced) ``temporary`` onto ``target`` and make the rename durable."""
    os.replace(temporary, target)
    _fsync_dir(target.parent)


def _read_umask() -> int:
    # Reading the umask means setting it and back; done once at import, before any worker thread creates files.
    umask = os.umask(0)
    os.umask(umask)
    return umask


_NEW_FILE_MODE = 0o666 & ~_read_umask()  # what open() gives a new file


def _temporary(target: Path, suffix: str = "") -> tuple[int, Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX + target.name + ".", suffix=suffix)
    # mkstemp creates the file 0o600; the published file should have the permissions a plain write would give it.
    os.fchmod(handle, _NEW_FILE_MODE)
    return handle, Path(name)


@contextmanager
def atomic_write(target: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target``; it replaces ``target`` only when the block ends without an error.

    On success the file is flushed and fsynced, renamed onto ``target`` and the folder fsynced. On any exception
    (including one the block raises on purpose, e.g. a failed hash check) the temporary file is deleted and
    ``target`` is left as it was.

    Args:
        target: final path; its folder is created if missing.
        mode: ``"wb"`` (bytes) or ``"w"`` (text).
        encoding: text encoding for ``"w"`` (e.g. ``"utf-8"``).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    # the file is closed (flushed) before atomic_path fsyncs and renames it
    with atomic_path(target) as temporary, open(temporary, mode, encoding=encoding) as file:
        yield file


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target`` for writers that need a path (safetensors, PyAV, ...).

    When the block ends without an error the file is fsynced and renamed onto ``target`` (then the folder is
    fsynced); otherwise it is deleted and ``target`` is left as it was.

    Args:
        target: final path; its folder is created if missing.
        suffix: ending of the temporary name, for writers that pick the format from it (e.g. ``".mp4"``).
    """
    target = Path(target)
    handle, temporary = _temporary(target, suffix)
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as written:  # the writer closed its own handle: fsync through a new one
            os.fsync(written.fileno())
        _publish(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_write(target, "wb") as file:
        file.write(data)


def write_text_atomic(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_write(target, "w", encoding=encoding) as file:
        file.write(text)


def save_npy_atomic(target: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` (no pickle) to ``target`` atomically."""
    import numpy as np

    with atomic_write(target, "wb") as file:
        np.save(file, array, allow_pickle=False)


def save_npz_atomic(target: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed) of ``arrays`` to ``target`` atomically."""
    import numpy as np

    with atomic_write(target, "wb") as file:
        np.savez(file, **arrays)


def torch_save_atomic(obj: Any, target: str | os.PathLike[str]) -> None:
    """``torch.save(obj, target)`` atomically (argument order as ``torch.save``).

    A reader (or a resume after a crash) sees either the previous complete file or the new complete file, never a
    torn one.
    """
    import torch

    with atomic_write(target, "wb") as file:
        torch.save(obj, file)


def remove_partials(directory: str | os.PathLike[str]) -> int:
    """Delete leftovers of killed runs in ``directory``; returns how many were removed."""
    directory = Path(directory)
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

    def __init__(self, target: str | os.PathLike[str], dtype: np.dtype | type, row_shape: tuple[int, ...]) -> None:
        import numpy as np

        self.target = Path(target)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        handle, self._temporary = _temporary(self.target)
        self._file = os.fdopen(handle, "wb")
        self._header_length = self._write_header()

    def _write_header(self) -> int:
        import numpy as np

        self._file.seek(0)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows, *self.row_shape)}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    def append(self, rows: np.ndarray) -> None:
        """Append (n, *row_shape) rows (cast to the stored dtype)."""
        import numpy as np

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
        _publish(self._temporary, self.target)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> StreamingNpyWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None or not self._file.closed:
            self.abort()
