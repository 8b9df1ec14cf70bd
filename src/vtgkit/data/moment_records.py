"""Parsing one moment-retrieval record (QVHighlights / Charades-STA / TACoS / Ego4D-NLQ JSON lines) into a sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vtgkit.data.annotation_fields import (
    check_clip_ids,
    check_duration,
    check_id,
    check_rater_scores,
    check_string,
    check_unique_id,
    check_windows,
    read_jsonl,
)
from vtgkit.errors import AnnotationError
from vtgkit.structures import GroundingSample

NUM_RATERS = 3  # QVHighlights: three raters per clip


def parse_moment_record(
    record: dict[str, Any],
    location: str,
    *,
    windows_required: bool,
    allow_scores: bool = False,
) -> GroundingSample:
    """Validate one record with ``qid``, ``query``, ``duration``, ``vid`` and (optionally) ``relevant_windows``.

    Args:
        windows_required: whether ``relevant_windows`` must be present (False for QVHighlights test files).
        allow_scores: whether ``relevant_clip_ids`` / ``saliency_scores`` (QVHighlights) are read; they must then
            come together and be equally long.
    """
    qid = check_id(record, "qid", location)
    vid = check_string(record, "vid", location)
    query = check_string(record, "query", location, allow_empty=True)
    duration = check_duration(record, "duration", location)
    windows: list[tuple[float, float]] = []
    if "relevant_windows" in record or windows_required:
        windows = check_windows(record, "relevant_windows", location)
    clip_ids = scores = None
    if allow_scores and ("relevant_clip_ids" in record or "saliency_scores" in record):
        if "relevant_clip_ids" not in record or "saliency_scores" not in record:
            present = "relevant_clip_ids" if "relevant_clip_ids" in record else "saliency_scores"
            raise AnnotationError(f"{location}: '{present}' needs its partner field ('relevant_clip_ids' and "
                                  f"'saliency_scores' come together); only '{present}' is present")
        clip_ids = check_clip_ids(record, "relevant_clip_ids", location)
        scores = check_rater_scores(record, "saliency_scores", location, num_raters=NUM_RATERS)
        if len(clip_ids) != len(scores):
            raise AnnotationError(f"{location}: 'saliency_scores' must have one entry per 'relevant_clip_ids' entry; "
                                  f"got {len(scores)} scores for {len(clip_ids)} clip ids")
    return GroundingSample(
        qid=qid,
        vid=vid,
        query=query,
        duration=duration,
        windows=windows,
        relevant_clip_ids=clip_ids,
        saliency_scores=scores,
        raw=record,
    )


def load_moment_jsonl(
    path: str | Path,
    parse: Callable[[dict[str, Any], str], GroundingSample],
) -> list[GroundingSample]:
    """Parse every line of a JSON-lines file with ``parse`` and check that qids are unique."""
    samples: list[GroundingSample] = []
    first_seen: dict[int | str, str] = {}
    for location, record in read_jsonl(path):
        sample = parse(record, location)
        check_unique_id(sample.qid, location, first_seen)
        samples.append(sample)
    if not samples:
        raise AnnotationError(f"{path}: no records (the file is empty)")
    return samples
