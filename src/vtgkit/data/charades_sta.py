"""Charades-STA (Gao et al., ICCV 2017): one ground-truth window per query, "TVR format" JSON lines.

Files: ``charades_sta_{train,test}_tvr_format.jsonl`` (R²-Tuning: ``charades_{train,test}.jsonl``, same fields).
R²-Tuning samples Charades at 1 fps and rounds predicted windows to 0.1 s (see ``vtgkit.data.benchmarks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtgkit.data.moment_records import load_moment_jsonl, parse_moment_record
from vtgkit.structures import GroundingSample


def parse_charades_sta_record(record: dict[str, Any], location: str) -> GroundingSample:
    return parse_moment_record(record, location, windows_required=True)


def load_charades_sta(path: str | Path) -> list[GroundingSample]:
    """Parse a Charades-STA JSON-lines file into validated samples, in file order."""
    return load_moment_jsonl(path, parse_charades_sta_record)
