"""Files that appear whole or not at all: a temporary name in the target folder, fsync, then ``os.replace``.

The one home of this mechanism in vtgkit (feature files, checkpoints, prediction files, downloads, video clips).
A run killed at any point (even SIGKILL) leaves at most a hidden ``.partial-*`` file, which no reader takes for a
finished file; :func:`remove_partials` clears them on the next run. After the rename the folder is fsynced too, so
that the rename itself survives a power loss.

A write that fails for a storage reason (a full disk or quota, a folder that is not writable, an I/O error) raises
the same ``OSError`` subclass with a message naming the target file and, when the folder is the cause, the folder;
the temporary file is deleted and an existing target is left as it was.

Bottom layer: imports only the standard library; numpy and torch are imported inside the functions that need them.
"""

from __future__ import annotations

import errno
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


# errnos that only writing to storage produces; an OSError with one of these inside a writer's block is about the
# file being written (a read error or a network error in the same block keeps its own message)
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_FOLDER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def storage_error(error: OSError, target: str | os.PathLike[str], creating: bool = False,
                  folder: str | os.PathLike[str] | None = None) -> OSError:
    """``error`` (same type and errno) re-worded to name ``target`` and, when the folder is at fault, its folder.

    Args:
        error: the error the operating system raised.
        target: the file that was being written.
        creating: the error came from creating the file or its folder (permission errors are then about a folder).
        folder: the folder that could not be written (default: ``target``'s folder).
    """
    if getattr(error, "target", None) is not None:
        return error  # already re-worded by an inner layer
    target = Path(target)
    folder = Path(folder) if folder is not None else target.parent
    reason = error.strerror or str(error)
    if creating and error.errno in _FOLDER_ERRNOS:
        text = f"cannot write {target}: folder {folder} is not writable ({reason})"
    elif creating:
        text = f"cannot write {target}: cannot create a file in folder {folder} ({reason})"
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        text = f"cannot write {target}: {reason} (disk or quota full in {target.parent}); the file was not written"
    else:
        text = f"cannot write {target}: {reason}"
    renamed = type(error)(text)
    renamed.errno = error.errno  # callers can still test errno (str() stays the message above)
    renamed.target = str(target)  # type: ignore[attr-defined]
    return renamed


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
    try:
        os.replace(temporary, target)
    except OSError as error:
        raise storage_error(error, target) from error
    _fsync_dir(target.parent)


def _fsync_file(path: Path, target: Path) -> None:
    # a full disk may only show here (delayed allocation, network file systems)
    try:
        with open(path, "rb") as written:  # the writer closed its own handle: fsync through a new one
            os.fsync(written.fileno())
    except OSError as error:
        raise storage_error(error, target) from error


def _is_storage_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS


def _storage_cause(error: BaseException) -> OSError | None:
    """The storage OSError behind ``error`` (following ``__cause__`` / ``__context__``), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _is_storage_error(current):
            return current  # type: ignore[return-value]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _read_umask() -> int:
    # Reading the umask means setting it and back; done once at import, before any worker thread creates files.
    umask = os.umask(0)
    os.umask(umask)
    return umask


_NEW_FILE_MODE = 0o666 & ~_read_umask()  # what open() gives a new file


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _temporary(target: Path, suffix: str = "") -> tuple[int, Path]:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # the folder that refused is the deepest one that exists
        raise storage_error(error, target, creating=True, folder=_nearest_existing(target.parent)) from error
    try:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX + target.name + ".", suffix=suffix)
    except OSError as error:  # the message would name the hidden temporary file, not what the user asked for
        raise storage_error(error, target, creating=True) from error
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
    with atomic_path(target) as temporary:
        try:
            with open(temporary, mode, encoding=encoding) as file:
                yield file
        except OSError as error:  # a write or the final flush on close hit a full disk
            if _is_storage_error(error):
                raise storage_error(error, target) from error
            raise


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
        try:
            yield temporary
        except OSError as error:
            if _is_storage_error(error):
                raise storage_error(error, target) from error
            raise
        # Some writers (safetensors) replace the file they are given, which brings back mkstemp's 0o600.
        os.chmod(temporary, _NEW_FILE_MODE)
        _fsync_file(temporary, target)
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
        try:
            torch.save(obj, file)
        except RuntimeError as error:
            # torch's archive writer turns the file's OSError (e.g. a full disk) into a RuntimeError about stream
            # positions; report the storage error instead
            cause = _storage_cause(error)
            if cause is None:
                raise
            raise storage_error(cause, target) from error


def open_append(target: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``target`` for :func:`append_whole` (unbuffered binary append; its folder is created if missing)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise storage_error(error, target, creating=True, folder=_nearest_existing(target.parent)) from error
    try:
        # unbuffered: no bytes wait in a buffer to land after a failed write was cut off
        return open(target, "ab", buffering=0)
    except OSError as error:
        raise storage_error(error, target, creating=not target.exists()) from error


def cut_torn_last_line(target: str | os.PathLike[str]) -> int:
    """Cut a last line that lacks its newline (the fragment of a killed append) off ``target``, fsynced.

    Returns the bytes removed (0: the file ends with a newline, is empty, or does not exist). Appenders of JSON-lines
    files call it before their first append, so the next record is not glued onto the fragment.
    """
    target = Path(target)
    try:
        handle = open(target, "r+b")
    except FileNotFoundError:
        return 0
    except OSError as error:  # e.g. a read-only output folder: name the file and the folder
        raise storage_error(error, target, creating=not target.exists()) from error
    with handle:
        end = handle.seek(0, os.SEEK_END)
        keep = end
        while keep > 0:  # back to the last newline, a block at a time (the file may be large)
            start = max(0, keep - (1 << 16))
            handle.seek(start)
            newline = handle.read(keep - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        if keep < end:
            handle.truncate(keep)
            os.fsync(handle.fileno())
    return end - keep


def append_whole(handle: IO[bytes], data: bytes) -> None:
    """Append ``data`` (e.g. one JSON line) to a file from :func:`open_append` and fsync it, or append nothing.

    A write that fails part-way (a full disk) is cut off again, so the file keeps ending where it ended (for a
    JSON-lines file: with a complete line); the error names the file. A kill part-way can still leave a fragment,
    which readers of such files must drop (no trailing newline).
    """
    descriptor = handle.fileno()
    start = os.fstat(descriptor).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[handle.write(view) or 0 :]
        os.fsync(descriptor)
    except OSError as error:
        try:
            os.ftruncate(descriptor, start)
        except OSError:
            pass  # the reader drops the fragment instead
        raise storage_error(error, handle.name) from error


def ensure_writable(target: str | os.PathLike[str]) -> None:
    """Fail now, naming the folder, if ``target`` could not be written (its folder is created if missing).

    For commands that work for a long time before they write their output: a read-only or missing folder is
    reported before the work, not after it.
    """
    handle, temporary = _temporary(Path(target))
    os.close(handle)
    temporary.unlink(missing_ok=True)


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
        try:
            self._header_length = self._write_header()
        except OSError as error:
            self.abort()
            raise storage_error(error, self.target) from error

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
        try:
            self._file.write(rows.tobytes())
        except OSError as error:
            self.abort()
            raise storage_error(error, self.target) from error
        self.rows += rows.shape[0]

    def commit(self) -> None:
        try:
            end = self._file.tell()
            if self._write_header() != self._header_length:
                self.abort()
                raise ValueError(f"{self.target}: npy header length changed; shape too large for streaming")
            self._file.seek(end)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            _publish(self._temporary, self.target)
        except OSError as error:
            self.abort()
            raise storage_error(error, self.target) from error

    def abort(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # flushing the buffer onto a full disk fails again; the file is deleted anyway
                pass
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> StreamingNpyWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None or not self._file.closed:
            self.abort()
