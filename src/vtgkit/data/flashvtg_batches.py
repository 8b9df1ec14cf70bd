"""FlashVTG items, training labels (spec flashvtg.md §5) and collation into the FlashVTG ``Batch`` layout (§1.4).

Batch layout: ``video`` (B, T, Dv+2) float32 zero-padded, ``query`` (B, L, Dq), float32 1/0 masks, ``fps`` = 1 /
clip_len, ``boundaries`` (B, W, 2) seconds with +inf padding rows (all annotated windows), ``saliency`` (B, T) =
``saliency_all_labels``, and in ``extras``: ``saliency_pos_labels`` / ``saliency_neg_labels`` (B, P) long, ``vids``,
``qids``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vtgkit.data.flashvtg_features import FlashVTGFeatureReader
from vtgkit.errors import AnnotationError, ConfigError
from vtgkit.structures import Batch, GroundingSample

LABEL_KINDS = ("qvhighlights", "windows", "tvsum", "youtube")
# Label kinds whose datasets build span labels from relevant_windows (all but TVSum / YouTube-HL, spec §5).
_SPAN_LABEL_KINDS = ("qvhighlights", "windows")
MAX_WINDOWS = 5  # `--max_windows` of every official script (spec flashvtg.md §7)


@dataclass
class FlashVTGItem:
    """One preprocessed (video, query) pair; labels are None for prediction."""

    sample: GroundingSample
    video: torch.Tensor  # (T, Dv + 2)
    query: torch.Tensor  # (L, Dq)
    clip_len: float  # seconds per clip of the features
    saliency: torch.Tensor | None = None  # (T,) saliency_all_labels
    pos_clips: list[int] = field(default_factory=list)
    neg_clips: list[int] = field(default_factory=list)
    # Training: the annotated windows in the order the official dataset leaves them (shuffled when there are more
    # than max_windows, see span_label_windows); None: ``sample.windows`` as annotated.
    windows: list[tuple[float, float]] | None = None

    @property
    def num_clips(self) -> int:
        return int(self.video.shape[0])


def qvhighlights_saliency_labels(
    clip_ids: Sequence[int], scores: Sequence[Sequence[float]], num_clips: int, rng: random.Random
) -> tuple[list[int], list[int], np.ndarray]:
    """QVHighlights labels: summed rater scores, hard + easy positive/negative clips (spec §5)."""
    summed = np.sum(np.array(scores), 1)
    order = np.argsort(summed)  # increasing
    labels = np.zeros(num_clips)
    for clip, value in zip(clip_ids, summed, strict=True):
        if clip >= num_clips:  # official quirk: the array grows by one slot per out-of-range id
            labels = np.concatenate([labels, np.zeros(1)])
        labels[clip] = value
    hard_pos = [min(clip_ids[order[-1]], num_clips - 1)]
    hard_neg = [min(clip_ids[order[0]], num_clips - 1)]
    easy_pool = list(set(range(num_clips)) - set(clip_ids))
    if easy_pool:
        easy_pos, easy_neg = rng.sample(list(clip_ids), k=1), rng.sample(easy_pool, k=1)
    else:  # no clip outside the relevant set: repeat the hard ones
        easy_pos, easy_neg = hard_pos, hard_neg
    return hard_pos + easy_pos, hard_neg + easy_neg, labels


def window_saliency_labels(
    window: tuple[float, float], duration: float, num_clips: int, rng: random.Random
) -> tuple[list[int], list[int], np.ndarray]:
    """Charades-STA / TACoS labels from the first window: 1 inside, 2 random clips in and out (spec §5)."""
    clip_len = duration / num_clips
    start = int(window[0] / clip_len)
    end = max(0, min(int(window[1] / clip_len), num_clips) - 1)
    start = min(start, end)
    pos = rng.sample(range(start, end + 1), k=2) if start != end else [start, start]
    neg_pool = list(range(0, start)) + list(range(end + 1, num_clips))
    neg = rng.sample(neg_pool, k=2) if len(neg_pool) >= 2 else pos
    labels = np.zeros(num_clips)
    labels[start : end + 1] = 1
    return pos, neg, labels


def highlight_saliency_labels(values: np.ndarray, num_clips: int) -> tuple[list[int], list[int], np.ndarray]:
    """TVSum / YouTube labels: per-clip scores; positive = argmax, negative = argmin (spec §5)."""
    order = np.argsort(values)
    return [min(int(order[-1]), num_clips - 1)], [min(int(order[0]), num_clips - 1)], values


def span_label_windows(windows: Sequence[tuple[float, float]], max_windows: int, rng: random.Random
                       ) -> list[tuple[float, float]]:
    """The annotation's window list as the official dataset leaves it after building its span labels (spec §5).

    With more than ``max_windows`` windows the official ``get_span_labels`` shuffles the annotation's list in place
    (``random.shuffle``) before keeping the first ``max_windows`` as span labels. FlashVTG's losses never read the
    span labels, but the shuffled list is what the loss's target assignment receives (all windows, spec §4.1; the
    first of equally long windows wins a tie) and what Charades-STA / TACoS take the saliency labels' window from.
    The shuffle is drawn before the item's saliency labels, from the same generator.
    """
    order = list(windows)
    if len(order) > max_windows:
        rng.shuffle(order)
    return order


def _labels(sample: GroundingSample, kind: str, num_clips: int, rng: random.Random,
            windows: list[tuple[float, float]]):
    where = f"qid {sample.qid!r} (vid {sample.vid!r})"
    if kind == "qvhighlights":
        if sample.relevant_clip_ids is None or sample.saliency_scores is None:
            raise AnnotationError(f"{where}: training labels need relevant_clip_ids and saliency_scores")
        return qvhighlights_saliency_labels(sample.relevant_clip_ids, sample.saliency_scores, num_clips, rng)
    if kind == "windows":
        if not windows or sample.duration is None:
            raise AnnotationError(f"{where}: training labels need relevant_windows and duration")
        return window_saliency_labels(windows[0], sample.duration, num_clips, rng)
    raw = sample.raw.get("label")
    if raw is None:
        raise AnnotationError(f"{where}: {kind} training labels need the 'label' field")
    label = np.asarray(raw, dtype=np.float64)
    if kind == "tvsum":  # Σ over users of (score − 1), rescaled to 0–12
        return highlight_saliency_labels((np.sum(label - 1, axis=-1)[:num_clips]) / 80 * 12, num_clips)
    return highlight_saliency_labels(label[:, 0] * 1, num_clips)


def build_flashvtg_items(
    samples: Sequence[GroundingSample], reader: FlashVTGFeatureReader, label_kind: str | None = None,
    seed: int | None = None, max_windows: int = MAX_WINDOWS,
) -> list[FlashVTGItem]:
    """Preprocess every sample; with ``label_kind`` also draw its training labels once (spec §5).

    The random draws follow the official dataset's construction: item by item in file order, first the window
    shuffle of the span labels (QVHighlights, Charades-STA, TACoS; only for more than ``max_windows`` windows),
    then the saliency labels' ``random.sample`` calls, all from one Python ``random`` generator seeded once (the
    official code seeds ``random`` with the run's seed before building the training set).

    Args:
        label_kind: None (prediction), "qvhighlights", "windows" (Charades-STA, TACoS), "tvsum" or "youtube".
        seed: seed of the Python ``random`` generator used for the window shuffle and the easy positive/negative
            draws.
        max_windows: span labels kept per item (the official ``--max_windows``, 5 in every script).
    """
    if label_kind is not None and label_kind not in LABEL_KINDS:
        raise ConfigError(f"unknown FlashVTG label kind {label_kind!r}; known: {LABEL_KINDS}")
    rng = random.Random(seed)
    items = []
    # Queries of one video share its (read-only) feature tensor: TACoS has ~120 queries per video, Charades-STA ~2.
    videos: dict[str, torch.Tensor] = {}
    for sample in samples:
        if sample.vid not in videos:
            videos[sample.vid] = torch.from_numpy(reader.read_video(sample.vid))
        video = videos[sample.vid]
        item = FlashVTGItem(sample=sample, video=video, query=torch.from_numpy(reader.read_query(sample.qid)),
                            clip_len=reader.layout.clip_len)
        if label_kind is not None:
            windows = list(sample.windows)
            if label_kind in _SPAN_LABEL_KINDS and windows:
                windows = span_label_windows(windows, max_windows, rng)
                item.windows = windows
            pos, neg, labels = _labels(sample, label_kind, len(video), rng, windows)
            if label_kind == "tvsum" and len(labels) < len(video):
                item.video = video[: len(labels)]  # spec §1.2 step 4: video cut to the label length (TEF kept)
            item.saliency = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
            item.pos_clips, item.neg_clips = list(pos), list(neg)
        items.append(item)
    return items


def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(int(r.shape[0]) for r in rows)
    padded = rows[0].new_zeros((len(rows), length, *rows[0].shape[1:]))
    mask = torch.zeros(len(rows), length, dtype=torch.float32)
    for index, row in enumerate(rows):
        padded[index, : row.shape[0]] = row
        mask[index, : row.shape[0]] = 1
    return padded, mask


def collate_flashvtg(items: Sequence[FlashVTGItem]) -> Batch:
    """Zero-pad items to the longest video/query of the batch with float 1/0 masks (spec §1.4)."""
    if not items:
        raise ValueError("cannot collate an empty list of FlashVTG items")
    clip_len = items[0].clip_len
    if any(item.clip_len != clip_len for item in items):
        raise ValueError(f"cannot batch FlashVTG items of different clip lengths {sorted({i.clip_len for i in items})}")
    video, video_mask = _pad([item.video.float() for item in items])
    query, query_mask = _pad([item.query.float() for item in items])
    samples = [item.sample for item in items]
    extras: dict = {"vids": [s.vid for s in samples], "qids": [s.qid for s in samples]}
    batch = Batch(video=video, query=query, video_mask=video_mask, query_mask=query_mask,
                  fps=torch.full((len(items),), 1.0 / clip_len), samples=samples, extras=extras)
    if all(item.saliency is not None for item in items):
        batch.saliency, _ = _pad([item.saliency for item in items])
        extras["saliency_pos_labels"] = torch.tensor([item.pos_clips for item in items], dtype=torch.long)
        extras["saliency_neg_labels"] = torch.tensor([item.neg_clips for item in items], dtype=torch.long)
    windows = [item.windows if item.windows is not None else item.sample.windows for item in items]
    if all(windows):
        # spec §4.1: every annotated window (not capped by max_windows), in the order the dataset left them,
        # padded with (inf, inf) rows.
        width = max(len(rows) for rows in windows)
        boundaries = torch.full((len(items), width, 2), float("inf"))
        for index, rows in enumerate(windows):
            boundaries[index, : len(rows)] = torch.tensor(rows, dtype=torch.float32)
        batch.boundaries = boundaries
    return batch
