"""The query texts (and YouTube per-video rates) of an annotation file, as ``tools/extract_feat.py`` reads them.

* JSON lines / JSON list (QVHighlights, Charades-STA, TACoS, Ego4D-NLQ, FlashVTG's TVSum/YouTube jsonl): one
  record per query with ``qid`` and ``query``.
* JSON object keyed by video id (R²-Tuning's ``tvsum_anno.json`` / ``youtube_anno.json``): the query id is the
  video id and the text is the first of ``query``, ``title``, ``info[5]`` present (official lookup order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtgkit.errors import AnnotationError


@dataclass(frozen=True)
class QueryText:
    qid: str
    text: str
    vid: str | None


def _text_of(record: dict[str, Any], where: str) -> str:
    for key in ("query", "title", "info"):
        if key in record:
            value = record[key]
            if key == "info":
                if not isinstance(value, list) or len(value) < 6:
                    raise AnnotationError(f"{where}: field 'info' must be a list with at least 6 items")
                value = value[5]
            if not isinstance(value, str):
                raise AnnotationError(f"{where}: field {key!r} must be a string, found {type(value).__name__}")
            return value
    raise AnnotationError(f"{where}: no query text (expected one of the fields 'query', 'title', 'info')")


def _load(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """(location, record) pairs and whether the file is keyed by video id."""
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise AnnotationError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {column}); "
                              "annotation files must be UTF-8") from None
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise AnnotationError(f"{path}:{number}: invalid JSON: {error}") from error
        return records, False
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: invalid JSON: {error}") from error
    if isinstance(data, list):
        return [(f"{path}[{index}]", record) for index, record in enumerate(data)], False
    if isinstance(data, dict):
        return [(f"{path}[{key!r}]", {**record, "vid": key}) for key, record in data.items()], True
    raise AnnotationError(f"{path}: expected JSON lines, a list or an object keyed by video id")


def read_queries(path: str | Path) -> list[QueryText]:
    """Every query of the file in file order, one per query id (a repeated id keeps its first text)."""
    records, keyed_by_video = _load(Path(path))
    queries: dict[str, QueryText] = {}
    for where, record in records:
        if not isinstance(record, dict):
            raise AnnotationError(f"{where}: expected an object, found {type(record).__name__}")
        if keyed_by_video:
            qid = str(record["vid"])
        elif "qid" in record:
            qid = str(record["qid"])
        else:
            raise AnnotationError(f"{where}: missing field 'qid'")
        if qid not in queries:
            queries[qid] = QueryText(qid=qid, text=_text_of(record, where), vid=record.get("vid"))
    return list(queries.values())


def read_per_video_fps(path: str | Path) -> dict[str, float]:
    """YouTube Highlights' per-video rate ``len(match) / (frames / fps)`` (spec r2-tuning.md §10.1)."""
    records, _ = _load(Path(path))
    rates: dict[str, float] = {}
    for where, record in records:
        try:
            duration = int(record["frames"]) / record["fps"]
            rates[str(record["vid"])] = len(record["match"]) / duration
        except (KeyError, TypeError, ZeroDivisionError) as error:
            message = f"{where}: needs 'frames', 'fps' and 'match' for a per-video rate: {error}"
            raise AnnotationError(message) from error
    return rates
