"""One grounding request of the web page: the model pass under a lock, then the timeline picture.

The Grounder (CLIP, the R² model, its feature and query caches) is not thread-safe, so requests take turns on one
lock; the server runs them in worker threads, so the page, the video stream and uploads stay responsive meanwhile.
The Grounder caches each video's features, so a second query on the same video runs only the text tower and the
small model (the answer says whether the features were reused).
"""

from __future__ import annotations

import base64
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtgkit.errors import ConfigError
from vtgkit.structures import Moment

MAX_TOP_K = 20


@dataclass(frozen=True)
class GroundingAnswer:
    moments: list[Moment]
    duration: float
    clip_len: float
    timeline: str | None  # data URI of the SVG plot, None when matplotlib is missing
    warnings: list[str]
    features_reused: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "moments": [{"rank": rank, "start": round(moment.start, 3), "end": round(moment.end, 3),
                         "score": round(moment.score, 4)} for rank, moment in enumerate(self.moments, start=1)],
            "duration": self.duration, "clip_len": self.clip_len, "timeline": self.timeline,
            "warnings": self.warnings, "features_reused": self.features_reused, "seconds": round(self.seconds, 3),
        }


class GroundingService:
    """Runs ``grounder.predict`` one request at a time and draws the timeline of each answer."""

    def __init__(self, grounder: Any) -> None:
        self.grounder = grounder
        self.model_lock = threading.Lock()
        self._plot_lock = threading.Lock()  # matplotlib's font and text caches are shared between figures

    @property
    def checkpoint(self) -> str:
        """The checkpoint's name, or its file name for a local file (the page need not show server paths)."""
        source = str(getattr(self.grounder, "checkpoint", "") or "")
        return Path(source).name if ("/" in source or "\\" in source) else source

    def ground(self, video: Any, query: str, top_k: int, ground_truth: Sequence[tuple[float, float]] = ()
               ) -> GroundingAnswer:
        """Moments of ``video`` (a path) for ``query``, best first; raises vtgkit errors on bad input."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        started = time.perf_counter()
        with self.model_lock:
            cache = self.grounder.cache
            hits_before = cache.hits
            # Inside the lock: catch_warnings swaps process-wide state, so only one request may hold it at a time.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = self.grounder.predict(video, query)
            reused = cache.hits > hits_before
        moments = result.moments[:top_k]
        highlights = result.highlights
        timeline, notes = self._timeline(highlights, moments, ground_truth)
        return GroundingAnswer(
            moments=moments, duration=float(highlights.duration), clip_len=float(highlights.clip_len),
            timeline=timeline, warnings=[str(item.message) for item in caught] + notes, features_reused=reused,
            seconds=time.perf_counter() - started,
        )

    def _timeline(self, highlights: Any, moments: list[Moment],
                  ground_truth: Sequence[tuple[float, float]]) -> tuple[str | None, list[str]]:
        from vtgkit.viz.timeline import figure_to_bytes, plot_timeline

        truth = [Moment(float(start), float(end)) for start, end in ground_truth]
        try:
            with self._plot_lock:
                # No title: the query is in the page's text box right above the picture.
                figure = plot_timeline(highlights.saliency, highlights.clip_len, moments, truth,
                                       duration=highlights.duration, top_k=max(len(moments), 1), size=(10.0, 2.8))
                svg = figure_to_bytes(figure, "svg")
        except ConfigError as error:  # matplotlib missing: the moments are still useful
            return None, [f"no timeline picture: {error}"]
        return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"), []
