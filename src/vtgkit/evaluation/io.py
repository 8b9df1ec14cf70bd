"""Reading and validating prediction and ground-truth files, with errors that name the file, line and field.

Every record keeps the line it came from, so a later check (a duplicate qid, a window with start > end, a missing
field) can say where it is. In-memory lists are accepted too; their "lines" are 1-based list positions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.bounded_json import iter_lines, read_json_document
from vtgkit.errors import AnnotationError

try:  # optional: about 3x faster parsing of large prediction files; the standard parser is the fallback
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None


@dataclass
class Records:
    """Rows of a JSON-lines file (or list) with their line numbers and the name used in error messages."""

    source: str
    rows: list[dict[str, Any]]
    lines: list[int]

    def where(self, index: int, field: str | None = None) -> str:
        location = f"{self.source} line {self.lines[index]}"
        return f"{location}: field {field!r}" if field else location


def read_jsonl(path: str | Path, max_line_bytes: int | None = None) -> Records:
    """Read a JSON-lines file: one JSON object per line (an empty line is an error, as in the official loader).

    Lines are read with a byte limit (default ``vtgkit.bounded_json.MAX_LINE_BYTES``): a huge line is an error
    naming the file, the line and the limit, and is never loaded whole.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, text in iter_lines(path, max_line_bytes):
        stripped = text.strip()
        if not stripped:
            raise AnnotationError(f"{path} line {number}: empty line; expected one JSON object per line")
        row = _parse_line(stripped)
        if row is _INVALID:
            try:
                row = json.loads(stripped)  # the standard parser also reads NaN/Infinity, reported later
            except json.JSONDecodeError as error:
                raise AnnotationError(
                    f"{path} line {number}: not valid JSON ({error.msg} at column {error.colno}); "
                    "expected a JSON-lines file with one object per line"
                ) from None
        if not isinstance(row, dict):
            raise AnnotationError(f"{path} line {number}: expected a JSON object, found {type(row).__name__}")
        rows.append(row)
        lines.append(number)
    if not rows:
        raise AnnotationError(f"{path}: no records (empty file)")
    return Records(str(path), rows, lines)


_INVALID = object()


def _parse_line(text: str) -> Any:
    if _fast_loads is None:
        return _INVALID
    try:
        return _fast_loads(text)
    except ValueError:  # orjson rejects NaN/Infinity and huge ints: let the standard parser decide
        return _INVALID


def read_json(path: str | Path) -> Any:
    """Read a whole-file JSON document (R²-Tuning's ``*_anno.json`` / split tables): size-limited, and a key that
    appears twice in an object is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return read_json_document(path)


def as_records(data: str | Path | Records | Sequence[dict[str, Any]], name: str) -> Records:
    """A path (read as JSON lines), ``Records`` (as is) or a list of dicts (named ``name`` in errors)."""
    if isinstance(data, Records):
        return data
    if isinstance(data, str | Path):
        return read_jsonl(data)
    rows = list(data)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise AnnotationError(f"{name} line {index + 1}: expected a dict, found {type(row).__name__}")
    if not rows:
        raise AnnotationError(f"{name}: no records")
    return Records(name, rows, list(range(1, len(rows) + 1)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def require_field(records: Records, index: int, field: str) -> Any:
    row = records.rows[index]
    if field not in row:
        raise AnnotationError(f"{records.where(index, field)} is missing")
    return row[field]


def require_number(records: Records, index: int, field: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise AnnotationError(f"{records.where(index, field)}: expected a finite number, found {value!r}")
    return float(value)


def qid_index(records: Records, key: str = "qid") -> dict[Any, int]:
    """qid -> row index; a qid that appears twice is an error naming both lines."""
    seen: dict[Any, int] = {}
    for index, row in enumerate(records.rows):
        if key not in row:
            raise AnnotationError(f"{records.where(index, key)} is missing")
        qid = row[key]
        if not isinstance(qid, int | str) or isinstance(qid, bool):
            raise AnnotationError(f"{records.where(index, key)}: expected an int or string id, found {qid!r}")
        if qid in seen:
            # The official evaluators do not reject duplicates: they merge the windows for mAP and use the last
            # entry for R1/HD (spec metrics.md §1), which hides the mistake. vtgkit refuses them.
            raise AnnotationError(
                f"{records.where(index, key)}: duplicate {key} {qid!r} (first at line {records.lines[seen[qid]]}); "
                f"each {key} must appear once"
            )
        seen[qid] = index
    return seen


def check_same_ids(pred_ids: Iterable[Any], gt_ids: Iterable[Any], pred_source: str, gt_source: str) -> None:
    """The official evaluator asserts that the prediction and ground-truth qid sets are equal (spec metrics.md §1)."""
    pred_set, gt_set = set(pred_ids), set(gt_ids)
    if pred_set == gt_set:
        return
    missing = sorted(gt_set - pred_set, key=str)
    extra = sorted(pred_set - gt_set, key=str)
    parts = []
    if missing:
        parts.append(f"{len(missing)} qid(s) of {gt_source} have no prediction in {pred_source}: {missing[:10]}")
    if extra:
        parts.append(f"{len(extra)} qid(s) of {pred_source} are not in {gt_source}: {extra[:10]}")
    raise AnnotationError("; ".join(parts) + " (the official evaluator requires equal qid sets)")


def _numeric_array(value: list[Any]) -> np.ndarray:
    """``value`` as float64 when every entry is a number; numpy would also convert numeric strings ("4")."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise ValueError("not all numbers")
    return array.astype(np.float64, copy=False)


def windows_array(records: Records, index: int, field: str, width: int, allow_empty: bool = False) -> np.ndarray:
    """Validate a list of windows ``[[start, end(, score)], ...]`` -> (N, width) float64: finite, start <= end."""
    value = require_field(records, index, field)
    if isinstance(value, list) and (value or allow_empty):
        try:  # fast path: a well-formed list converts in one call; anything else gets the detailed check below
            array = _numeric_array(value).reshape(len(value), -1)
        except (TypeError, ValueError):
            array = None
        if array is not None and array.shape[1] >= width and np.isfinite(array[:, :width]).all():
            array = array[:, :width]
            if (array[:, 0] <= array[:, 1]).all():
                return array
    _explain_bad_windows(records, index, field, width, value, allow_empty)
    raise AssertionError("unreachable")  # pragma: no cover


def _explain_bad_windows(records: Records, index: int, field: str, width: int, value: Any, allow_empty: bool) -> None:
    if not isinstance(value, list) or (not value and not allow_empty):
        shape = "[start, end, score]" if width == 3 else "[start, end]"
        raise AnnotationError(
            f"{records.where(index, field)}: expected a non-empty list of windows {shape}, found {value!r}"
        )
    for number, window in enumerate(value):
        if not isinstance(window, list) or len(window) < width or not all(_is_number(v) for v in window[:width]):
            raise AnnotationError(
                f"{records.where(index, field)}[{number}]: expected {width} numbers, found {window!r}"
            )
        if not all(math.isfinite(v) for v in window[:width]):
            raise AnnotationError(f"{records.where(index, field)}[{number}]: non-finite value in {window!r}")
        if window[0] > window[1]:
            # The official evaluators would compute a meaningless IoU for a reversed window without complaint.
            raise AnnotationError(
                f"{records.where(index, field)}[{number}]: start > end in {window!r}; expected start <= end"
            )
    raise AnnotationError(f"{records.where(index, field)}: rows of different lengths in {str(value)[:80]}")


def score_list(records: Records, index: int, field: str) -> np.ndarray:
    """Validate a non-empty list of finite numbers (saliency scores) -> (N,) float64."""
    value = require_field(records, index, field)
    if isinstance(value, list) and value:
        try:
            array = _numeric_array(value)
        except (TypeError, ValueError):
            array = None
        if array is not None and array.ndim == 1 and np.isfinite(array).all():
            return array
    if not isinstance(value, list) or not value:
        raise AnnotationError(f"{records.where(index, field)}: expected a non-empty list of numbers, found {value!r}")
    for number, item in enumerate(value):
        if not _is_number(item) or not math.isfinite(item):
            # sklearn (QVHighlights HD) rejects NaN/inf; torch.argsort (YouTube/TVSum) would rank NaN arbitrarily.
            raise AnnotationError(f"{records.where(index, field)}[{number}]: expected a finite number, found {item!r}")
    raise AnnotationError(f"{records.where(index, field)}: expected a flat list of numbers")  # pragma: no cover
