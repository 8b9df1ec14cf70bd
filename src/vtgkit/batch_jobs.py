"""Many (video, query) items through one grounding function, with a resumable JSON-lines result file.

Manifest: a ``.jsonl`` file (one object per line with ``video`` and ``query``, optional ``id``; other keys are kept in
``BatchItem.extra``) or a ``.csv`` file with a header row naming the same columns. Relative video paths are resolved
against the manifest's folder. Items without ``id`` get ``"<video>::<query>"``; ids must be unique.

Results: one JSON object per line, ``{"id", "video", "query", "status": "ok", ...result}`` or
``{"id", ..., "status": "error", "error_type", "error"}``. Each line is appended unbuffered and fsynced, so a killed
run leaves at most one partial last line; a write that fails (a full disk) cuts the file back to its last complete
line and stops the run with an error naming the results file. A rerun:

* reads the file; every complete line must parse as a JSON object with ``id`` and ``status`` (otherwise it stops
  with the line number: the file was not written by a batch job);
* truncates a partial last line (no trailing newline) and redoes that item;
* skips items whose latest line has status ``ok`` and retries items whose latest line is an error.

Items are processed grouped by video (stable order), so a per-video feature cache in the grounding function is hit
for every query after the first.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vtgkit.atomic_files import append_whole, open_append
from vtgkit.bounded_json import iter_json_objects
from vtgkit.errors import AnnotationError

ID_SEPARATOR = "::"


@dataclass(frozen=True)
class BatchItem:
    """One (video, query) pair of a manifest."""

    item_id: str
    video: str
    query: str
    line: int  # 1-based line of the manifest (CSV: counting the header as line 1)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchSummary:
    """What a run did; ``failed`` items have an error line in the results file."""

    total: int
    skipped_done: int = 0
    succeeded: int = 0
    failed: int = 0
    partial_line_redone: bool = False
    unknown_ids_in_results: int = 0  # result lines whose id is no longer in the manifest (kept, not counted)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id, message)

    def describe(self) -> str:
        text = (
            f"{self.total} items: {self.succeeded} done now, {self.skipped_done} already done, "
            f"{self.failed} failed"
        )
        if self.partial_line_redone:
            text += "; a partial last line from an interrupted run was removed and its item redone"
        if self.unknown_ids_in_results:
            text += f"; {self.unknown_ids_in_results} result lines have ids not in the manifest"
        return text


def read_manifest(path: str | os.PathLike[str]) -> list[BatchItem]:
    """Read a ``.jsonl`` or ``.csv`` manifest; errors name the file, line and field."""
    manifest = Path(path)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    suffix = manifest.suffix.lower()
    if suffix in {".jsonl", ".json"}:
        rows = iter_json_objects(manifest)  # bounded lines: a huge line fails fast with its number
    elif suffix == ".csv":
        rows = _csv_rows(manifest)
    else:
        raise AnnotationError(f"{manifest}: manifest must be .jsonl or .csv, got {suffix or 'no extension'!r}")
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        item = _item_from_row(manifest, line, row)
        if item.item_id in seen:
            raise AnnotationError(
                f"{manifest} line {line}: id {item.item_id!r} repeats line {seen[item.item_id]}; ids must be unique "
                f"(add an 'id' column to ask the same query twice)"
            )
        seen[item.item_id] = line
        items.append(item)
    if not items:
        raise AnnotationError(f"{manifest}: no items (expected lines with 'video' and 'query')")
    return items


def _csv_rows(manifest: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with open(manifest, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"video", "query"} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError(
                f"{manifest} line 1: header must name columns 'video' and 'query'; missing {sorted(missing)}, "
                f"found {reader.fieldnames}"
            )
        for row in reader:
            yield reader.line_num, dict(row)


def _item_from_row(manifest: Path, line: int, row: dict[str, Any]) -> BatchItem:
    values = {}
    for key in ("video", "query"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise AnnotationError(f"{manifest} line {line}: {key!r} must be a non-empty string, got {value!r}")
        values[key] = value
    video = values["video"]
    if not Path(video).is_absolute():
        video = str((manifest.parent / video).resolve())
    raw_id = row.get("id")
    item_id = str(raw_id) if raw_id not in (None, "") else f"{values['video']}{ID_SEPARATOR}{values['query']}"
    extra = {key: value for key, value in row.items() if key not in {"video", "query", "id"}}
    return BatchItem(item_id=item_id, video=video, query=values["query"], line=line, extra=extra)


def read_results(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], bool]:
    """Latest result per id, and whether a partial last line was found and truncated away.

    The partial line (no trailing newline: the writer was killed mid-line) is removed from the file so that new
    lines start on a line of their own.
    """
    results_path = Path(path)
    if not results_path.exists():
        return {}, False
    latest: dict[str, dict[str, Any]] = {}
    complete_end = 0  # byte offset just after the last complete line
    partial = False
    with open(results_path, "rb") as handle:  # streamed: a results file of any size is read in constant memory
        for line, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                partial = True  # only the last line can lack its newline
                break
            complete_end += len(raw)
            if raw.strip():
                record = _parse_result_line(results_path, line, raw)
                latest[str(record["id"])] = record
    if partial:
        with open(results_path, "r+b") as handle:
            handle.truncate(complete_end)
            handle.flush()
            os.fsync(handle.fileno())
    return latest, partial


def _parse_result_line(results_path: Path, line: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnnotationError(
            f"{results_path} line {line}: not valid JSON; only the last line of a results file can be partial, "
            f"so this file was edited or not written by a batch job. Fix or move it before resuming"
        ) from error
    if not isinstance(record, dict) or "id" not in record or record.get("status") not in {"ok", "error"}:
        raise AnnotationError(
            f"{results_path} line {line}: expected an object with 'id' and 'status' ('ok' or 'error'), "
            f"got {str(raw[:80], 'utf-8', 'replace')!r}"
        )
    return record


def append_result(handle: Any, record: dict[str, Any]) -> None:
    """Append one result line durably to ``handle`` (from ``open_append``), or nothing of it (a full disk)."""
    append_whole(handle, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def run_batch(
    items: list[BatchItem],
    ground_one: Callable[[BatchItem], dict[str, Any]],
    results_path: str | os.PathLike[str],
    *,
    progress: bool = True,
    catch: tuple[type[BaseException], ...] = (Exception,),
) -> BatchSummary:
    """Run ``ground_one`` on every item not already done, appending one result line per item.

    Args:
        items: from :func:`read_manifest`.
        ground_one: returns a JSON-serialisable dict (e.g. ``{"moments": [...], "saliency": [...]}``) for an item.
        results_path: the JSON-lines results file (created, or resumed).
        progress: show a tqdm bar.
        catch: exception types recorded as a failed item instead of stopping the run.

    Returns:
        Counts of skipped, succeeded and failed items, with each failure's message.
    """
    from tqdm.auto import tqdm

    path = Path(results_path)
    open_append(path).close()  # first: a folder that cannot be written is reported before any work
    done, partial = read_results(path)
    known_ids = {item.item_id for item in items}
    summary = BatchSummary(total=len(items), partial_line_redone=partial)
    summary.unknown_ids_in_results = sum(1 for item_id in done if item_id not in known_ids)
    todo = [item for item in items if done.get(item.item_id, {}).get("status") != "ok"]
    summary.skipped_done = len(items) - len(todo)
    todo = _grouped_by_video(todo)
    with open_append(path) as handle, tqdm(total=len(todo), disable=not progress) as bar:
        for item in todo:
            base = {"id": item.item_id, "video": item.video, "query": item.query}
            try:
                result = ground_one(item)
                record = {**base, "status": "ok"}
                record.update({key: value for key, value in result.items() if key not in record})
                json.dumps(record, ensure_ascii=False)  # fail here, not half-way through a write
            except catch as error:
                message = str(error) or type(error).__name__
                record = {**base, "status": "error", "error_type": type(error).__name__, "error": message}
                summary.failed += 1
                summary.failures.append((item.item_id, message))
            else:
                summary.succeeded += 1
            append_result(handle, record)
            bar.update(1)
    return summary


def _grouped_by_video(items: list[BatchItem]) -> list[BatchItem]:
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(item.video, index)
    return sorted(items, key=lambda item: first_seen[item.video])  # sorted is stable: manifest order within a video
