"""A run's log: every logged value as one JSON line (``log.jsonl``), optionally TensorBoard event files too.

Only the main process writes. TensorBoard is the optional ``train`` extra; asking for it without the package
installed raises instead of silently logging less.

Each record is appended whole and fsynced (:func:`vtgkit.atomic_files.append_whole`): a failed write (a full disk)
leaves no fragment. A kill mid-append can still leave a torn last line (no newline); opening the log again (a
resumed run) cuts it off, with a warning, so the next record does not get glued to it, and :func:`read_run_log`
ignores and counts it.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtgkit.atomic_files import append_whole, cut_torn_last_line, open_append
from vtgkit.errors import ConfigError


class RunLog:
    """Append-only JSON-lines log with an optional TensorBoard mirror of the numeric values."""

    def __init__(self, output_dir: str | Path, *, tensorboard: bool = False, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "log.jsonl"
        self._writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.torn_bytes_removed = cut_torn_last_line(self.path)
        if self.torn_bytes_removed:
            warnings.warn(f"{self.path}: removed a torn last line ({self.torn_bytes_removed} bytes) left by a killed "
                          "run", RuntimeWarning, stacklevel=2)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ConfigError(
                    "tensorboard=true needs the tensorboard package: pip install 'vtgkit[train]'"
                ) from error
            self._writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """Append ``{"kind", "step", "time", **values}``; non-finite floats are written as strings ("nan")."""
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3)}
        record.update({key: _json_value(value) for key, value in values.items()})
        with open_append(self.path) as handle:
            append_whole(handle, (json.dumps(record) + "\n").encode("utf-8"))
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class RunLogContents:
    """The records of a ``log.jsonl``; ``torn_last_line``: a killed append's fragment was ignored;
    ``unreadable_lines``: 1-based numbers of complete lines that are not JSON objects (skipped)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    torn_last_line: bool = False
    unreadable_lines: list[int] = field(default_factory=list)


def read_run_log(path: str | Path) -> RunLogContents:
    """Read a run's ``log.jsonl``, ignoring and counting a torn last line and lines that are not JSON objects."""
    path = Path(path)
    contents = RunLogContents()
    lines = path.read_bytes().split(b"\n")
    # The part after the last newline is empty for a whole file, else the fragment of a killed append.
    contents.torn_last_line = bool(lines.pop().strip())
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError (e.g. a fragment glued by an older version)
            record = None
        if isinstance(record, dict):
            contents.records.append(record)
        else:
            contents.unreadable_lines.append(number)
    return contents
