"""TACoS (Regneri et al., TACL 2013): cooking videos of MPII Cooking, JSON lines with string qids ``<vid>_<n>``.

Quirk: R²-Tuning's feature files are named after the camera-2 recording, ``<vid>-cam-002.npy``, while the
annotations say ``<vid>``. The suffix is applied only when features are looked up; samples and predictions keep the
annotated ``vid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtgkit.data.moment_records import load_moment_jsonl, parse_moment_record
from vtgkit.structures import GroundingSample

CAMERA_SUFFIX = "-cam-002"


def tacos_feature_video_id(sample: GroundingSample) -> str:
    """Name of the video feature file of a TACoS sample (spec r2-tuning.md §2.1: ``-cam-002`` appended)."""
    return f"{sample.vid}{CAMERA_SUFFIX}"


def parse_tacos_record(record: dict[str, Any], location: str) -> GroundingSample:
    return parse_moment_record(record, location, windows_required=True)


def load_tacos(path: str | Path) -> list[GroundingSample]:
    """Parse a TACoS JSON-lines file (``train``/``val``/``test.jsonl``) into validated samples, in file order."""
    return load_moment_jsonl(path, parse_tacos_record)
