"""TVSum (Song et al., CVPR 2015): 50 videos in 10 categories, 20 annotators score every 2-s clip from 1 to 5.

Two file formats are read:

* R²-Tuning / UMT ``tvsum_anno.json`` (shared copy: ``tvsum_train_sfc.json``): an object keyed by video id with
  ``anno`` (clips x 20 scores), ``title`` (the query text), ``domain``, ``fps``, ``frames``; the per-category
  train/val lists come from a splits table (``vtgkit.data.domain_splits``).
* FlashVTG / UniVTG ``tvsum_{train,val}.jsonl``: one line per video with ``qid`` = ``vid``, ``query`` = title,
  ``label`` (clips x 20), ``domain``; ``duration`` there is the number of clips, not seconds.

Benchmark quirks kept here: the saliency target is ``(sum of the 20 scores - 20) / 80`` computed in float32, the
feature length may differ from the annotation by fewer than 5 clips (both are cut to the shorter), and the positive
clip of the training losses is drawn from clips above the median (spec r2-tuning.md §8.2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtgkit.data.annotation_fields import (
    check_id,
    check_number_matrix,
    check_positive_number,
    check_string,
    check_unique_id,
    read_json_object,
    read_jsonl,
    require,
)
from vtgkit.errors import AnnotationError
from vtgkit.structures import GroundingSample

NUM_ANNOTATORS = 20
MAX_LENGTH_MISMATCH = 5  # official: abs(num_feature_clips - num_annotated_clips) < 5


def tvsum_saliency(scores: list[list[float]]) -> list[float]:
    """Per-clip target ``(sum of the 20 scores - 20) / 80``, in float32 as the official ``torch.Tensor`` math."""
    matrix = np.asarray(scores, dtype=np.float32)  # (T, 20)
    return ((matrix.sum(axis=1, dtype=np.float32) - np.float32(20)) / np.float32(80)).tolist()


def tvsum_positive_clips(saliency: np.ndarray) -> list[int]:
    """Clips above the median (``torch.median``: the lower middle value for an even count)."""
    median = np.sort(saliency)[(len(saliency) - 1) // 2]
    return np.nonzero(saliency > median)[0].tolist()


def align_tvsum_length(num_feature_clips: int, num_annotated_clips: int, where: str) -> int:
    """Number of clips kept when features and annotation disagree slightly (official: cut both to the shorter)."""
    if abs(num_feature_clips - num_annotated_clips) >= MAX_LENGTH_MISMATCH:
        raise AnnotationError(f"{where}: the video features have {num_feature_clips} clips but the annotation has "
                              f"{num_annotated_clips}; TVSum allows a difference below {MAX_LENGTH_MISMATCH}")
    return min(num_feature_clips, num_annotated_clips)


def load_tvsum(path: str | Path) -> list[GroundingSample]:
    """Parse ``tvsum_anno.json`` (an object keyed by video id) into one sample per video, in file order."""
    samples = []
    for vid, record in read_json_object(path).items():
        location = f"{path} video '{vid}'"
        if not isinstance(record, dict):
            raise AnnotationError(f"{location}: expected an object with 'anno' and 'title'; got {str(record)[:60]}")
        scores = check_number_matrix(require(record, "anno", location), location, "anno", columns=NUM_ANNOTATORS)
        title = check_string(record, "title", location, allow_empty=True)
        domain = check_string(record, "domain", location)
        duration = None
        if "frames" in record and "fps" in record:
            duration = (check_positive_number(record["frames"], location, "frames")
                        / check_positive_number(record["fps"], location, "fps"))
        samples.append(GroundingSample(qid=vid, vid=vid, query=title, duration=duration,
                                       clip_saliency=tvsum_saliency(scores), domain=domain, raw=record))
    return samples


def load_tvsum_jsonl(path: str | Path) -> list[GroundingSample]:
    """Parse FlashVTG's ``tvsum_{train,val}.jsonl`` (one video per line) into samples, in file order."""
    samples = []
    first_seen: dict[int | str, str] = {}
    for location, record in read_jsonl(path):
        qid = check_id(record, "qid", location)
        vid = check_string(record, "vid", location)
        query = check_string(record, "query", location, allow_empty=True)
        domain = check_string(record, "domain", location)
        scores = check_number_matrix(require(record, "label", location), location, "label", columns=NUM_ANNOTATORS)
        check_unique_id(qid, location, first_seen)
        samples.append(GroundingSample(qid=qid, vid=vid, query=query, duration=None,
                                       clip_saliency=tvsum_saliency(scores), domain=domain, raw=record))
    if not samples:
        raise AnnotationError(f"{path}: no records (the file is empty)")
    return samples
