"""Ego4D Natural Language Queries, in the JSON-lines conversion used by UniVTG / CG-DETR / R²-Tuning.

The Ego4D annotations are licence-gated (ego4d-data.org): download them with the official ``ego4d`` CLI after
accepting the licence, then convert the NLQ json to one line per query::

    {"qid": "val0", "query": "...", "duration": 480.03, "vid": "<clip_uid>", "video_uid": "<video uid>",
     "relevant_windows": [[425.0, 431.0]]}

Times are seconds relative to the clip; features are per clip (``vid`` = ``clip_uid``). Zero-length windows
(start = end) occur in val and are kept: the dataset widens them to one clip for training targets as the official
code does, and the evaluator scores them as it scores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtgkit.data.annotation_fields import check_string
from vtgkit.data.moment_records import load_moment_jsonl, parse_moment_record
from vtgkit.structures import GroundingSample


def parse_ego4d_nlq_record(record: dict[str, Any], location: str) -> GroundingSample:
    sample = parse_moment_record(record, location, windows_required=True)
    if "video_uid" in record:  # optional and unused by the evaluator, but checked when present
        check_string(record, "video_uid", location)
    return sample


def load_ego4d_nlq(path: str | Path) -> list[GroundingSample]:
    """Parse an Ego4D-NLQ JSON-lines file (``nlq_{train,val}.jsonl``) into validated samples, in file order."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"annotation file not found: {path}. Ego4D annotations are licence-gated: accept the "
                                "licence at ego4d-data.org, download the NLQ annotations with the `ego4d` CLI, and "
                                "convert them to one JSON line per query (format in vtgkit.data.ego4d_nlq)")
    return load_moment_jsonl(path, parse_ego4d_nlq_record)
