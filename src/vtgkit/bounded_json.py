"""Reading JSON-lines and JSON files with bounded memory, for annotation and prediction files of unknown origin.

A line is read with a byte limit, so a file holding one 1 GB line fails with an error naming the file, the line and
the limit instead of loading the whole line. Limits are far above any real file: a QVHighlights line is about 1 KB,
a prediction line of a 10-hour video at 0.5 clips/s about 400 KB, TVSum's whole annotation object about 2 MB.
Duplicate keys in a JSON object are reported (the standard parser would silently keep the last one).
Standard library + ``vtgkit.errors`` only: both ``data`` and ``evaluation`` use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vtgkit.errors import AnnotationError

MAX_LINE_BYTES = 32 * 2**20  # one JSON-lines record
MAX_JSON_FILE_BYTES = 256 * 2**20  # a whole-file JSON document (R²-Tuning's *_anno.json, split tables)


def iter_lines(path: str | Path, max_line_bytes: int | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(1-based line number, text)`` of a UTF-8 file, each line read with at most ``max_line_bytes`` bytes.

    Raises:
        AnnotationError: a line is longer than the limit or is not UTF-8 (file and line named).
    """
    path = Path(path)
    limit = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    with path.open("rb") as handle:
        number = 0
        while True:
            raw = handle.readline(limit + 1)
            if not raw:
                return
            number += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise AnnotationError(f"{path} line {number}: longer than {limit} bytes (the line limit); expected "
                                      "one JSON record per line (is this a JSON-lines file?)")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise AnnotationError(f"{path} line {number}: not UTF-8 text (byte {error.start + 1} of the "
                                      "line); expected UTF-8 JSON") from None
            yield number, text


def iter_json_objects(path: str | Path, max_line_bytes: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(1-based line number, object)`` for every non-blank line of a JSON-lines file (lines bounded as in
    :func:`iter_lines`).

    Raises:
        AnnotationError: a line is not valid JSON or not a JSON object (file and line named).
    """
    for number, line in iter_lines(path, max_line_bytes):
        if not line.strip():
            continue
        location = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise AnnotationError(f"{location}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise AnnotationError(f"{location}: expected a JSON object per line; got {type(record).__name__}")
        yield number, record


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(Exception):
    pass


def loads_unique(text: str | bytes) -> Any:
    """``json.loads`` that raises ``ValueError('duplicate key ...')`` when an object repeats a key."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as error:
        raise ValueError(f"duplicate key {error.args[0]!r}") from None


def read_json_document(path: str | Path, max_bytes: int | None = None) -> Any:
    """Parse a whole-file JSON document of at most ``max_bytes`` bytes; duplicate object keys are an error.

    Raises:
        AnnotationError: too large, not UTF-8, not valid JSON, or a repeated key (file, line and key named).
    """
    path = Path(path)
    limit = MAX_JSON_FILE_BYTES if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > limit:
        raise AnnotationError(f"{path}: {size} bytes, above the {limit}-byte limit of a JSON document; expected an "
                              "annotation object (JSON-lines files are read line by line instead)")
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {error.start + 1}); expected UTF-8 JSON") from None
    try:
        return loads_unique(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path} line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})") \
            from None
    except ValueError as error:  # a repeated key
        raise AnnotationError(f"{path}: {error}; each key (video id) must appear once") from None
