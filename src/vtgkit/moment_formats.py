"""Text renderings of found moments and per-clip saliency for the CLI: terminal table, JSON, CSV and SRT.

Moments are :class:`~vtgkit.structures.Moment` (seconds, best first); their rank is their position + 1. JSON and CSV
keep full float precision (times are seconds as floats); the table and SRT round for reading.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from vtgkit.structures import Moment


def format_timestamp(seconds: float, decimals: int = 1) -> str:
    """``H:MM:SS.s`` for reading (hours shown only when needed).

    >>> format_timestamp(75.25)
    '1:15.2'
    >>> format_timestamp(3725.0, decimals=0)
    '1:02:05'
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp must be a finite number of seconds >= 0, got {seconds}")
    scale = 10**decimals
    total = round(seconds * scale)
    hours, rest = divmod(total, 3600 * scale)
    minutes, rest = divmod(rest, 60 * scale)
    whole, fraction = divmod(rest, scale)
    text = f"{whole:02d}" + (f".{fraction:0{decimals}d}" if decimals else "")
    return f"{hours}:{minutes:02d}:{text}" if hours else f"{minutes}:{text}"


def moments_to_records(moments: Sequence[Moment]) -> list[dict[str, Any]]:
    """``[{"rank", "start", "end", "score"}, ...]`` in the given order."""
    return [
        {"rank": rank, "start": moment.start, "end": moment.end, "score": moment.score}
        for rank, moment in enumerate(moments, start=1)
    ]


def format_table(moments: Sequence[Moment], query: str | None = None) -> str:
    """An aligned plain-text table (rank, start, end, length, score) for the terminal."""
    rows = [("#", "start", "end", "length", "score")]
    for rank, moment in enumerate(moments, start=1):
        rows.append(
            (
                str(rank),
                format_timestamp(moment.start),
                format_timestamp(moment.end),
                f"{moment.duration:.1f}s",
                f"{moment.score:.4f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if not moments:
        lines.append("(no moments)")
    header = [f"query: {_one_line(query)}"] if query is not None else []
    return "\n".join(header + lines) + "\n"


def format_json(
    moments: Sequence[Moment],
    *,
    video: str | None = None,
    query: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """One JSON object: ``{"video", "query", "moments": [{"rank", "start", "end", "score"}], **extra}``."""
    record: dict[str, Any] = {}
    if video is not None:
        record["video"] = video
    if query is not None:
        record["query"] = query
    record["moments"] = moments_to_records(moments)
    record.update(extra or {})
    return json.dumps(record, ensure_ascii=False, indent=2) + "\n"


def format_csv(moments: Sequence[Moment], *, video: str | None = None, query: str | None = None) -> str:
    """CSV with a header row: rank,start,end,score (plus video,query columns when given)."""
    buffer = io.StringIO()
    optional = [name for name, value in (("video", video), ("query", query)) if value]
    columns = ["rank", "start", "end", "score", *optional]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in moments_to_records(moments):
        if video:
            record["video"] = video
        if query:
            record["query"] = query
        writer.writerow({key: repr(value) if isinstance(value, float) else value for key, value in record.items()})
    return buffer.getvalue()


def srt_timestamp(seconds: float) -> str:
    """SubRip time ``HH:MM:SS,mmm``.

    >>> srt_timestamp(3661.5)
    '01:01:01,500'
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"SRT time must be a finite number of seconds >= 0, got {seconds}")
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d},{millis:03d}"


def format_srt(moments: Sequence[Moment], query: str | None = None) -> str:
    """SubRip subtitles, one cue per moment in time order, text ``#rank query (score)``.

    Players show overlapping cues together, so overlapping moments stay visible. A cue needs end > start; a
    zero-length moment is shown for one millisecond.
    """
    ranked = sorted(enumerate(moments, start=1), key=lambda item: (item[1].start, item[0]))
    cues = []
    label = f" {_one_line(query)}" if query else ""
    for cue_index, (rank, moment) in enumerate(ranked, start=1):
        end = max(moment.end, moment.start + 0.001)
        # "-->" inside the text would be read as a timing line by some parsers.
        text = f"#{rank}{label} ({moment.score:.3f})".replace("-->", "->")
        cues.append(f"{cue_index}\n{srt_timestamp(moment.start)} --> {srt_timestamp(end)}\n{text}\n")
    return "\n".join(cues)


def saliency_to_records(saliency: Sequence[float], clip_len: float, duration: float | None = None) -> list[dict]:
    """``[{"clip", "start", "end", "saliency"}, ...]`` for per-clip highlight scores."""
    total = len(saliency) * clip_len if duration is None else duration
    return [
        {"clip": index, "start": index * clip_len, "end": min((index + 1) * clip_len, total), "saliency": float(score)}
        for index, score in enumerate(saliency)
    ]


def format_saliency_csv(saliency: Sequence[float], clip_len: float, duration: float | None = None) -> str:
    """CSV clip,start,end,saliency, one row per clip."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["clip", "start", "end", "saliency"], lineterminator="\n")
    writer.writeheader()
    for record in saliency_to_records(saliency, clip_len, duration):
        writer.writerow({key: repr(value) if isinstance(value, float) else value for key, value in record.items()})
    return buffer.getvalue()


def format_saliency_table(
    saliency: Sequence[float], clip_len: float, duration: float | None = None, top_k: int | None = None
) -> str:
    """Terminal table of clips, highest saliency first (``top_k`` rows when given), with a text bar."""
    records = sorted(saliency_to_records(saliency, clip_len, duration), key=lambda r: -r["saliency"])[:top_k]
    if not records:
        return "(no clips)\n"
    low = min(float(value) for value in saliency)
    high = max(float(value) for value in saliency)
    span = high - low or 1.0
    lines = []
    for record in records:
        bar = "#" * round(20 * (record["saliency"] - low) / span)
        lines.append(
            f"{format_timestamp(record['start']):>9} - {format_timestamp(record['end']):>9}  "
            f"{record['saliency']:+.4f}  {bar}"
        )
    return "\n".join(lines) + "\n"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())
