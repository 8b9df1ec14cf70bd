"""QVHighlights (Lei et al., NeurIPS 2021): moment retrieval + highlight detection on 150-s YouTube segments.

Files: ``highlight_{train,val,test}_release.jsonl`` (R²-Tuning renames them ``qvhighlights_{split}.jsonl``). Test
files carry no ``relevant_windows`` / ``relevant_clip_ids`` / ``saliency_scores``; the parser accepts that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtgkit.data.moment_records import load_moment_jsonl, parse_moment_record
from vtgkit.structures import GroundingSample


def parse_qvhighlights_record(record: dict[str, Any], location: str) -> GroundingSample:
    return parse_moment_record(record, location, windows_required=False, allow_scores=True)


def load_qvhighlights(path: str | Path) -> list[GroundingSample]:
    """Parse a QVHighlights JSON-lines file (any split) into validated samples, in file order."""
    return load_moment_jsonl(path, parse_qvhighlights_record)
