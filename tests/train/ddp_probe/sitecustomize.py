"""Test probe, on PYTHONPATH only in tests/train/test_train_ddp_recipes.py: which torchrun rank writes where.

With ``VTGKIT_TEST_WATCH`` (a folder) and ``VTGKIT_TEST_WRITES`` (where to report) set, every torchrun worker
(``RANK`` set) records the files it opens for writing, renames, removes or creates under the watched folder (Python
audit events: vtgkit publishes every file with ``os.replace``, which raises ``os.rename``) and writes them to
``VTGKIT_TEST_WRITES/rank<RANK>.json`` when it exits normally — so the file also shows the rank finished.
"""

from __future__ import annotations

import atexit
import json
import os
import sys

_WATCH = os.environ.get("VTGKIT_TEST_WATCH")
_REPORT = os.environ.get("VTGKIT_TEST_WRITES")
_RANK = os.environ.get("RANK")


def _install(watch: str, report: str, rank: str) -> None:
    root = os.path.realpath(watch)
    events: list[list[str]] = []

    def under(path: object) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return None
        full = os.path.realpath(path)
        return full if full == root or full.startswith(root + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (any(letter in mode for letter in "wax+") if isinstance(mode, str)
                       else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
            target = under(path) if writing else None
            if target:
                events.append(["open", target])
        elif event in {"os.rename", "os.remove", "os.mkdir"}:
            target = under(args[1] if event == "os.rename" else args[0])
            if target:
                events.append([event, target])

    def report_on_exit() -> None:
        os.makedirs(report, exist_ok=True)
        with open(os.path.join(report, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
            json.dump(events, handle)

    sys.addaudithook(hook)
    atexit.register(report_on_exit)


if _WATCH and _REPORT and _RANK is not None:
    _install(_WATCH, _REPORT, _RANK)
