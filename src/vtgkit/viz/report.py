"""One self-contained HTML page for a (video, query) result: timeline plot, query, table of top moments, thumbnails.

Everything is inline (the plot as a base64 PNG, each thumbnail as a base64 JPEG, CSS in a ``<style>`` block): the
file can be mailed or archived and opens without network or the video. All text from users or files (query, video
name, title) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.moment_formats import format_timestamp
from vtgkit.structures import Moment
from vtgkit.viz.thumbnails import grab_frames, image_to_bytes
from vtgkit.viz.timeline import figure_to_bytes, plot_timeline

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.3em; } .query { font-size: 1.15em; background: #f4f4f4; padding: .6em .8em; border-radius: 4px; }
table { border-collapse: collapse; margin-top: 1em; } td, th { padding: .35em .8em; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.plot { width: 100%; } img.thumb { height: 90px; border-radius: 3px; } .meta { color: #666; font-size: .85em; }
"""


def data_uri(payload: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for inlining an image."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def build_report(
    *,
    video: str | os.PathLike[str],
    query: str,
    moments: Sequence[Moment],
    saliency: Sequence[float] | np.ndarray | None,
    clip_len: float,
    ground_truth: Sequence[Moment] = (),
    duration: float | None = None,
    top_k: int = 5,
    thumbnails: bool = True,
    title: str | None = None,
    details: dict[str, str] | None = None,
) -> str:
    """The report as an HTML string.

    Args:
        video: the video file (thumbnails are grabbed from it; only its name is shown).
        query: the text query.
        moments: predicted moments, best first; the first ``top_k`` are listed.
        saliency: (T,) per-clip scores for the plot, or None.
        clip_len: seconds per clip.
        ground_truth: annotated windows to draw, if any.
        duration: video length in seconds, for the plot's time axis.
        top_k: moments listed and drawn.
        thumbnails: grab each listed moment's middle frame (needs PyAV); False leaves the column out.
        title: page heading; default ``vtgkit: <video name>``.
        details: extra key/value lines shown under the heading (model, checkpoint, ...).
    """
    listed = list(moments)[:top_k]
    figure = plot_timeline(
        saliency, clip_len, listed, ground_truth, duration=duration, query=query, top_k=top_k, size=(11.0, 3.4)
    )
    plot = data_uri(figure_to_bytes(figure, "png", dpi=100), "image/png")
    images: list[str] = []
    if thumbnails and listed:
        frames = grab_frames(video, [(moment.start + moment.end) / 2 for moment in listed], max_side=240)
        images = [data_uri(image_to_bytes(frame, "JPEG"), "image/jpeg") for frame in frames]
    name = Path(video).name
    heading = title if title is not None else f"vtgkit: {name}"
    meta = {"video": name, "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **(details or {})}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
        '<p class="meta">' + " · ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in meta.items()) + "</p>",
        f'<p class="query">{html.escape(query)}</p>',
        f'<img class="plot" alt="timeline: saliency and predicted moments" src="{plot}">',
        _moments_table(listed, images),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _moments_table(moments: Sequence[Moment], images: Sequence[str]) -> str:
    if not moments:
        return "<p>No moments found.</p>"
    header = "<tr><th>#</th>" + ("<th>frame</th>" if images else "") + (
        "<th>start</th><th>end</th><th>length</th><th>score</th></tr>"
    )
    rows = []
    for rank, moment in enumerate(moments, start=1):
        thumb = ""
        if images:
            middle = format_timestamp((moment.start + moment.end) / 2)
            thumb = f'<td><img class="thumb" alt="frame at {middle}" src="{images[rank - 1]}"></td>'
        rows.append(
            f'<tr><td class="num">{rank}</td>{thumb}<td class="num">{format_timestamp(moment.start)}</td>'
            f'<td class="num">{format_timestamp(moment.end)}</td><td class="num">{moment.duration:.1f} s</td>'
            f'<td class="num">{moment.score:.4f}</td></tr>'
        )
    return "<table>" + header + "".join(rows) + "</table>"


def write_report(path: str | os.PathLike[str], **report: Any) -> Path:
    """Build the report (keyword arguments of :func:`build_report`) and write it as UTF-8."""
    target = Path(path)
    target.write_text(build_report(**report), encoding="utf-8")
    return target
