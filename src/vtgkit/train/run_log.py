"""A run's log: every logged value as one JSON line (``log.jsonl``), optionally TensorBoard event files too.

Only the main process writes. TensorBoard is the optional ``train`` extra; asking for it without the package
installed raises instead of silently logging less.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

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
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
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
