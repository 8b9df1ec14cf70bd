"""YouTube Highlights (Sun et al., ECCV 2014): six domains, each annotated segment labelled highlight (1),
not (-1) or uncertain (0).

Two file formats are read:

* R²-Tuning / UMT ``youtube_anno.json``: an object keyed by video id with ``match`` (per segment), ``info``
  (``info[5]`` is the title, R²-Tuning's query text), ``domain``, ``frames`` (a string) and ``fps``; per-domain
  train/val lists come from a splits table (``vtgkit.data.domain_splits``).
* FlashVTG / UniVTG ``youtube_{train,valid}.jsonl``: ``qid`` = ``vid``, ``query`` = the domain name, ``match``
  copied from the anno file, ``duration`` = frames / fps in seconds.

Benchmark quirks kept here: R²-Tuning extracts one frame per segment, i.e. at ``len(match) / (frames / fps)``
frames per second (spec r2-tuning.md §10.1), so the feature rate differs per video; the target is
``(match + 1) / 2`` and the feature length must equal the number of segments; positives are segments above 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtgkit.data.annotation_fields import (
    check_id,
    check_number_list,
    check_positive_number,
    check_string,
    check_unique_id,
    read_json_object,
    read_jsonl,
    require,
)
from vtgkit.errors import AnnotationError
from vtgkit.structures import GroundingSample

TITLE_INDEX = 5  # info[5] is the video title (spec r2-tuning.md §8.1)


def youtube_saliency(match: list[float]) -> list[float]:
    """Per-segment target ``(match + 1) / 2`` in float32 (0 = not a highlight, 0.5 uncertain, 1 highlight)."""
    return ((np.asarray(match, dtype=np.float32) + np.float32(1)) / np.float32(2)).tolist()


def youtube_positive_clips(saliency: np.ndarray) -> list[int]:
    return np.nonzero(saliency > 0.5)[0].tolist()


def check_youtube_length(num_feature_clips: int, num_segments: int, where: str) -> int:
    if num_feature_clips != num_segments:
        raise AnnotationError(f"{where}: the video features have {num_feature_clips} clips but the annotation has "
                              f"{num_segments} segments; YouTube Highlights features hold one clip per segment")
    return num_segments


def youtube_feature_fps(sample: GroundingSample) -> float:
    """Clips per second of a video's features: one per annotated segment over the video's length."""
    if sample.duration is None or sample.clip_saliency is None:
        raise AnnotationError(f"YouTube Highlights video {sample.vid!r}: needs its duration (frames / fps) and "
                              "segments to know the feature rate")
    return len(sample.clip_saliency) / sample.duration


def load_youtube_highlights(path: str | Path) -> list[GroundingSample]:
    """Parse ``youtube_anno.json`` (an object keyed by video id) into one sample per video, in file order."""
    samples = []
    for vid, record in read_json_object(path).items():
        location = f"{path} video '{vid}'"
        if not isinstance(record, dict):
            raise AnnotationError(f"{location}: expected an object with 'match', 'info', 'frames', 'fps'; "
                                  f"got {str(record)[:60]}")
        match = check_number_list(require(record, "match", location), location, "match")
        info = require(record, "info", location)
        if not isinstance(info, list) or len(info) <= TITLE_INDEX or not isinstance(info[TITLE_INDEX], str):
            raise AnnotationError(f"{location}: 'info' must be a list whose element {TITLE_INDEX} is the title "
                                  f"(a string); got {str(info)[:80]}")
        samples.append(_youtube_sample(record, location, vid, vid, info[TITLE_INDEX], match))
    return samples


def load_youtube_highlights_jsonl(path: str | Path) -> list[GroundingSample]:
    """Parse FlashVTG's ``youtube_{train,valid}.jsonl`` (one video per line) into samples, in file order."""
    samples = []
    first_seen: dict[int | str, str] = {}
    for location, record in read_jsonl(path):
        qid = check_id(record, "qid", location)
        vid = check_string(record, "vid", location)
        query = check_string(record, "query", location, allow_empty=True)
        match = check_number_list(require(record, "match", location), location, "match")
        sample = _youtube_sample(record, location, qid, vid, query, match)
        check_unique_id(qid, location, first_seen)
        samples.append(sample)
    if not samples:
        raise AnnotationError(f"{path}: no records (the file is empty)")
    return samples


def _youtube_sample(record: dict, location: str, qid: int | str, vid: str, query: str,
                    match: list[float]) -> GroundingSample:
    domain = check_string(record, "domain", location)
    frames = check_positive_number(require(record, "frames", location), location, "frames")
    fps = check_positive_number(require(record, "fps", location), location, "fps")
    return GroundingSample(qid=qid, vid=vid, query=query, duration=frames / fps,
                           clip_saliency=youtube_saliency(match), domain=domain, raw=record)
