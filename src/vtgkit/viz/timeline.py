"""Timeline plot of one (video, query) result: saliency curve, predicted moments with scores, ground truth.

Drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no global state, no display needed), so
it is safe in servers and threads. Layout, top to bottom: the per-clip saliency as a step curve with predicted
moments shaded behind it (darker = higher rank, label ``#rank score`` above each), then a thin band with the ground
truth windows when given.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vtgkit.errors import ConfigError
from vtgkit.structures import Moment

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_MOMENT_COLOR = "tab:orange"
_TRUTH_COLOR = "tab:green"
_CURVE_COLOR = "tab:blue"


def _new_figure(size: tuple[float, float]) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ConfigError("plots need matplotlib: pip install 'vtgkit[viz]'") from error
    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_timeline(
    saliency: Sequence[float] | np.ndarray | None,
    clip_len: float,
    moments: Sequence[Moment] = (),
    ground_truth: Sequence[Moment] = (),
    *,
    duration: float | None = None,
    query: str | None = None,
    top_k: int = 5,
    size: tuple[float, float] = (10.0, 3.2),
) -> Figure:
    """Draw the timeline; returns the figure (save it with :func:`save_timeline` or ``figure.savefig``).

    Args:
        saliency: (T,) per-clip scores, or None to draw moments only.
        clip_len: seconds per clip.
        moments: predicted moments, best first; the first ``top_k`` are drawn.
        ground_truth: annotated windows (score ignored).
        duration: video length in seconds; default ``T * clip_len`` (or the latest moment end).
        query: shown as the title.
        top_k: how many predicted moments to draw.
        size: figure size in inches.
    """
    scores = None if saliency is None else np.asarray(saliency, dtype=np.float64).reshape(-1)
    if not clip_len > 0:
        raise ValueError(f"clip_len must be > 0, got {clip_len}")
    shown = list(moments)[:top_k]
    end = _timeline_end(scores, clip_len, shown, ground_truth, duration)
    figure = _new_figure(size)
    if ground_truth:
        grid = figure.add_gridspec(2, 1, height_ratios=(5, 1), hspace=0.08)
        axes = figure.add_subplot(grid[0])
        truth_axes = figure.add_subplot(grid[1], sharex=axes)
    else:
        axes, truth_axes = figure.add_subplot(1, 1, 1), None
    _draw_moments(axes, shown)
    if scores is not None and scores.size:
        edges = np.minimum(np.arange(scores.size + 1) * clip_len, max(end, scores.size * clip_len))
        axes.stairs(scores, edges, color=_CURVE_COLOR, linewidth=1.5, label="saliency", baseline=None)
        axes.set_ylabel("saliency")
    else:
        axes.set_yticks([])
    axes.set_xlim(0.0, end)
    if query:
        axes.set_title(_shorten(" ".join(query.split()), 110), fontsize=10)
    if truth_axes is not None:
        _draw_truth(truth_axes, ground_truth)
        axes.tick_params(labelbottom=False)
        truth_axes.set_xlabel("time (s)")
    else:
        axes.set_xlabel("time (s)")
    figure.subplots_adjust(left=0.09, right=0.99, top=0.86 if query else 0.95, bottom=0.17)
    return figure


def _timeline_end(
    scores: np.ndarray | None,
    clip_len: float,
    moments: Sequence[Moment],
    ground_truth: Sequence[Moment],
    duration: float | None,
) -> float:
    if duration is not None:
        if not duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {duration}")
        return float(duration)
    candidates = [moment.end for moment in [*moments, *ground_truth]]
    if scores is not None:
        candidates.append(scores.size * clip_len)
    end = max(candidates, default=0.0)
    if not end > 0:
        raise ValueError("nothing to plot: give saliency, moments or a duration")
    return end


def _draw_moments(axes: Any, moments: Sequence[Moment]) -> None:
    count = len(moments)
    for rank, moment in enumerate(moments, start=1):
        alpha = 0.45 - 0.3 * (rank - 1) / max(count - 1, 1)  # rank 1 darkest
        axes.axvspan(moment.start, moment.end, color=_MOMENT_COLOR, alpha=alpha, linewidth=0)
        axes.text(
            (moment.start + moment.end) / 2, 1.0, f"#{rank} {moment.score:.2f}",
            transform=axes.get_xaxis_transform(), ha="center", va="bottom", fontsize=7, clip_on=False,
        )


def _draw_truth(axes: Any, ground_truth: Sequence[Moment]) -> None:
    for moment in ground_truth:
        axes.axvspan(moment.start, moment.end, color=_TRUTH_COLOR, alpha=0.6, linewidth=0)
    axes.set_yticks([0.5])
    axes.set_yticklabels(["truth"], fontsize=8)
    axes.set_ylim(0, 1)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def figure_to_bytes(figure: Figure, image_format: str = "png", dpi: int = 100) -> bytes:
    """Render to PNG or SVG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=image_format, dpi=dpi)
    return buffer.getvalue()


def save_timeline(path: str | os.PathLike[str], figure: Figure, dpi: int = 100) -> Path:
    """Write ``figure`` as PNG or SVG, chosen by the file suffix."""
    target = Path(path)
    image_format = target.suffix.lower().lstrip(".")
    if image_format not in {"png", "svg"}:
        raise ValueError(f"{target}: timeline plots are written as .png or .svg, got {target.suffix or 'no suffix'!r}")
    target.write_bytes(figure_to_bytes(figure, image_format, dpi))
    return target
