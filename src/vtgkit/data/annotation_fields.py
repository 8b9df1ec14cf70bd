"""Reading annotation files and checking their fields, with errors that say file, line (or key) and field.

Every benchmark parser builds on these helpers so that a bad record anywhere reports the same way, e.g.
``qvhighlights_val.jsonl line 12: 'relevant_windows' must be [[start, end], ...] in seconds; got [[30]]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vtgkit.bounded_json import iter_json_objects, read_json_document
from vtgkit.errors import AnnotationError


def read_jsonl(path: str | Path, max_line_bytes: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` for every non-blank line of a JSON-lines file.

    ``location`` is ``"<path> line <n>"`` (1-based physical line), ready to prefix an error message. Lines are read
    with a byte limit (default ``vtgkit.bounded_json.MAX_LINE_BYTES``), so a huge line fails fast with its number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    for number, record in iter_json_objects(path, max_line_bytes):
        yield f"{path} line {number}", record


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Load a JSON file whose top level must be a non-empty object (e.g. ``tvsum_anno.json`` keyed by video id).

    A key that appears twice is an error (the standard parser would keep the last one silently).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    data = read_json_document(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object at the top level; got {type(data).__name__}")
    if not data:
        raise AnnotationError(f"{path}: no records (the JSON object is empty)")
    return data


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    # type() checks: bool is an int subclass and must not pass; much faster than isinstance on large files.
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def require(record: dict[str, Any], key: str, location: str) -> Any:
    """Return ``record[key]`` or raise naming the missing field."""
    if key not in record:
        raise AnnotationError(f"{location}: missing field '{key}' (fields present: {sorted(record)})")
    return record[key]


def check_id(record: dict[str, Any], key: str, location: str) -> int | str:
    """An id (``qid``): a non-empty string or an integer, kept in the file's type so predictions round-trip."""
    value = require(record, key, location)
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise AnnotationError(f"{location}: '{key}' must be an integer or a non-empty string; got {_short(value)}")
    return value


def check_unique_id(value: int | str, location: str, first_seen: dict[int | str, str], key: str = "qid") -> None:
    """Record where ``value`` was first seen; raise naming both places when it repeats."""
    if value in first_seen:
        raise AnnotationError(f"{location}: '{key}' {value!r} repeats the {key} of {first_seen[value]}; {key}s name "
                              "feature files and predictions, so they must be unique")
    first_seen[value] = location


def check_string(record: dict[str, Any], key: str, location: str, *, allow_empty: bool = False) -> str:
    value = require(record, key, location)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise AnnotationError(f"{location}: '{key}' must be a non-empty string; got {_short(value)}")
    return value


def check_duration(record: dict[str, Any], key: str, location: str) -> float:
    """A video length in seconds: a finite number > 0."""
    value = require(record, key, location)
    if not _is_number(value) or value <= 0:
        raise AnnotationError(f"{location}: '{key}' must be the video length in seconds (a number > 0); "
                              f"got {_short(value)}")
    return float(value)


def check_windows(record: dict[str, Any], key: str, location: str) -> list[tuple[float, float]]:
    """Ground-truth moments ``[[start, end], ...]`` in seconds: at least one pair of finite numbers.

    Reversed or out-of-range windows are accepted on purpose: the official dataset repairs them (spec r2-tuning.md
    §8.2: clamp, swap, widen), so rejecting them here would refuse files the official code trains on.
    """
    value = require(record, key, location)
    expected = f"'{key}' must be [[start, end], ...] in seconds (at least one window of two finite numbers)"
    if not isinstance(value, list) or not value:
        raise AnnotationError(f"{location}: {expected}; got {_short(value)}")
    windows = []
    for window in value:
        if not isinstance(window, list) or len(window) != 2 or not all(_is_number(x) for x in window):
            raise AnnotationError(f"{location}: {expected}; got {_short(value)} (bad window {_short(window)})")
        windows.append((float(window[0]), float(window[1])))
    return windows


def check_clip_ids(record: dict[str, Any], key: str, location: str) -> list[int]:
    value = require(record, key, location)
    if not isinstance(value, list) or not all(type(x) is int and x >= 0 for x in value):
        raise AnnotationError(f"{location}: '{key}' must be a list of clip indices (integers >= 0); "
                              f"got {_short(value)}")
    return list(value)


def check_rater_scores(record: dict[str, Any], key: str, location: str, *, num_raters: int) -> list[list[float]]:
    """Per-clip rater scores ``[[s1, ..., s_n], ...]`` of non-negative finite numbers."""
    value = require(record, key, location)
    expected = f"'{key}' must be a list of [{', '.join(f's{i + 1}' for i in range(num_raters))}] (numbers >= 0)"
    if not isinstance(value, list):
        raise AnnotationError(f"{location}: {expected}; got {_short(value)}")
    for scores in value:
        if type(scores) is not list or len(scores) != num_raters:
            raise AnnotationError(f"{location}: {expected}; got {_short(value)} (bad entry {_short(scores)})")
        for x in scores:
            if not _is_number(x) or x < 0:
                raise AnnotationError(f"{location}: {expected}; got {_short(value)} (bad entry {_short(scores)})")
    return value  # numbers as written (ints stay ints: sums and the /12 scaling are unaffected)


def check_number_matrix(value: Any, location: str, key: str, *, columns: int | None = None) -> list[list[float]]:
    """A non-empty list of equally long lists of finite numbers (TVSum annotator scores: clips x 20)."""
    width = "" if columns is None else f" of {columns}"
    expected = f"'{key}' must be a non-empty list of per-clip lists{width} finite numbers"
    if not isinstance(value, list) or not value:
        raise AnnotationError(f"{location}: {expected}; got {_short(value)}")
    for index, row in enumerate(value):
        if (not isinstance(row, list) or (columns is not None and len(row) != columns)
                or not all(_is_number(x) for x in row)):
            raise AnnotationError(f"{location}: {expected}; clip {index} is {_short(row)}")
    return value


def check_number_list(value: Any, location: str, key: str) -> list[float]:
    if not isinstance(value, list) or not value or not all(_is_number(x) for x in value):
        raise AnnotationError(f"{location}: '{key}' must be a non-empty list of finite numbers; got {_short(value)}")
    return value


def check_positive_number(value: Any, location: str, key: str) -> float:
    """A finite number > 0, also accepted as a numeric string (YouTube/TVSum store ``frames`` as strings)."""
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if not _is_number(number) or number <= 0:
        raise AnnotationError(f"{location}: '{key}' must be a number > 0; got {_short(value)}")
    return float(number)
