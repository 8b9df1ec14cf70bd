"""FlashVTG training items keep the official order of the annotated windows (spec flashvtg.md §5, §4.1).

The official dataset builds its span labels before the saliency labels, item by item, and shuffles the annotation's
window list in place (``random.shuffle``) when a query has more than ``max_windows`` = 5 windows; the losses never
read the span labels, but the target assignment receives that reordered list (the first of equally long windows
wins) and Charades-STA / TACoS take their saliency window from its head. ``official_construction`` below restates
the official order of random calls on plain records; vtgkit's items must reproduce it draw for draw.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from official_layouts import annotation_file, read_jsonl, write_jsonl

from vtgkit.data.flashvtg_batches import build_flashvtg_items, collate_flashvtg
from vtgkit.data.flashvtg_features import FlashVTGFeatureLayout
from vtgkit.data.qvhighlights import load_qvhighlights
from vtgkit.nn.points import PointGenerator
from vtgkit.nn.targets import assign_batch_targets
from vtgkit.structures import GroundingSample

CLIP_LEN = 2.0


class ConstantReader:
    """Feature reader stand-in: ⌈duration / 2⌉ clips per video, 3 query tokens."""

    layout = FlashVTGFeatureLayout()

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations

    def read_video(self, vid: str) -> np.ndarray:
        return np.ones((int(np.ceil(self.durations[vid] / CLIP_LEN)), 5), dtype=np.float32)

    def read_query(self, qid: Any) -> np.ndarray:
        return np.ones((3, 4), dtype=np.float32)


def official_construction(records: list[dict[str, Any]], seed: int, kind: str) -> list[dict[str, Any]]:
    """The official training set's random calls, in order: per record, span labels (shuffle of the window list
    when it has more than 5 windows), then the saliency draws (QVHighlights: easy positive, easy negative;
    Charades/TACoS: 2 clips inside the first window, 2 outside)."""
    rng = random.Random(seed)  # the official code calls random.seed(seed) before building the training set
    built = []
    for record in records:
        windows = [list(window) for window in record["relevant_windows"]]
        if len(windows) > 5:
            rng.shuffle(windows)
        clips = int(np.ceil(record["duration"] / CLIP_LEN))
        if kind == "qvhighlights":
            ids = record["relevant_clip_ids"]
            outside = list(set(range(clips)) - set(ids))
            draws = [rng.sample(ids, k=1), rng.sample(outside, k=1)] if outside else []
        else:
            unit = record["duration"] / clips
            start = int(windows[0][0] / unit)
            end = max(0, min(int(windows[0][1] / unit), clips) - 1)
            start = min(start, end)
            inside = rng.sample(range(start, end + 1), k=2) if start != end else [start, start]
            pool = list(range(0, start)) + list(range(end + 1, clips))
            draws = [inside, rng.sample(pool, k=2) if len(pool) >= 2 else inside]
        built.append({"windows": [tuple(window) for window in windows], "draws": draws})
    return built


def _qvhighlights_records(tmp_path: Path) -> tuple[list[dict[str, Any]], list[GroundingSample]]:
    """The first real training records up to and including the third one with more than 5 windows."""
    records, many = [], 0
    source = annotation_file("qvhighlights", "highlight_train_release.jsonl")
    for record in read_jsonl(source):
        records.append(record)
        many += len(record["relevant_windows"]) > 5
        if many == 3:
            break
    return records, load_qvhighlights(write_jsonl(tmp_path / "train.jsonl", records))


@pytest.mark.parametrize("seed", [2024, 7])
def test_qvhighlights_items_follow_the_official_window_shuffle(tmp_path: Path, seed: int) -> None:
    records, samples = _qvhighlights_records(tmp_path)
    reader = ConstantReader({record["vid"]: record["duration"] for record in records})
    items = build_flashvtg_items(samples, reader, "qvhighlights", seed=seed)  # type: ignore[arg-type]
    expected = official_construction(records, seed, "qvhighlights")
    reordered = 0
    for item, record, official in zip(items, records, expected, strict=True):
        assert item.windows == official["windows"], record["qid"]
        if official["draws"]:
            assert [item.pos_clips[1:], item.neg_clips[1:]] == official["draws"], record["qid"]
        annotated = [tuple(window) for window in record["relevant_windows"]]
        if len(annotated) <= 5:
            assert item.windows == annotated
        else:
            assert sorted(item.windows) == sorted(annotated)
            reordered += item.windows != annotated
        assert item.sample.windows == annotated  # the parsed annotation itself is left as read
    assert reordered >= 1

    # The batch gives the loss every window in the official order, padded with +inf rows.
    batch = collate_flashvtg(items)
    for index, item in enumerate(items):
        rows = batch.boundaries[index]
        assert rows[: len(item.windows)].tolist() == [list(window) for window in item.windows]
        assert torch.isinf(rows[len(item.windows):]).all()


def test_window_order_decides_ties_in_target_assignment() -> None:
    # Six equally long, overlapping windows: a point inside several is assigned the first of them in list order.
    windows = [(0.0, 12.0), (2.0, 14.0), (4.0, 16.0), (6.0, 18.0), (8.0, 20.0), (10.0, 22.0)]
    sample = GroundingSample(qid=1, vid="v", query="q", duration=30.0, windows=windows,
                             relevant_clip_ids=[3, 4, 5], saliency_scores=[[1, 1, 1], [2, 2, 2], [3, 3, 3]])
    reader = ConstantReader({"v": 30.0})
    points = PointGenerator((1, 2, 4, 8))([15, 7, 3, 1])
    targets = {}
    for seed in range(6):
        (item,) = build_flashvtg_items([sample], reader, "qvhighlights", seed=seed)  # type: ignore[arg-type]
        assert item.windows == official_construction(
            [{"relevant_windows": windows, "duration": 30.0, "relevant_clip_ids": [3, 4, 5]}], seed,
            "qvhighlights")[0]["windows"]
        batch = collate_flashvtg([item])
        _, regression = assign_batch_targets(points, batch.boundaries, batch.fps, 1.5)
        targets[tuple(item.windows)] = regression
    annotated = collate_flashvtg(build_flashvtg_items([sample], reader))  # type: ignore[arg-type]
    _, unshuffled = assign_batch_targets(points, annotated.boundaries, annotated.fps, 1.5)
    assert len(targets) > 1
    assert any(not torch.equal(regression, unshuffled) for regression in targets.values())


def test_windows_labels_take_the_first_window_after_the_shuffle() -> None:
    # Charades-STA / TACoS label kind: the saliency window is the head of the (shuffled) list.
    record = {"qid": "q", "vid": "v", "duration": 60.0,
              "relevant_windows": [[0.0, 4.0], [10.0, 14.0], [20.0, 24.0], [30.0, 34.0], [40.0, 44.0], [50.0, 54.0]]}
    sample = GroundingSample(qid="q", vid="v", query="q", duration=60.0,
                             windows=[tuple(window) for window in record["relevant_windows"]])
    reader = ConstantReader({"v": 60.0})
    heads = set()
    for seed in range(8):
        (item,) = build_flashvtg_items([sample], reader, "windows", seed=seed)  # type: ignore[arg-type]
        (official,) = official_construction([record], seed, "windows")
        assert item.windows == official["windows"]
        assert [item.pos_clips, item.neg_clips] == official["draws"]
        start, end = item.windows[0]
        assert item.saliency is not None
        assert torch.nonzero(item.saliency).flatten().tolist() == list(range(int(start / 2), int(end / 2)))
        heads.add(item.windows[0])
    assert len(heads) > 1


def test_five_windows_or_fewer_keep_their_order_and_draw_nothing_extra() -> None:
    windows = [(0.0, 4.0), (10.0, 14.0), (20.0, 24.0), (30.0, 34.0), (40.0, 44.0)]
    sample = GroundingSample(qid=1, vid="v", query="q", duration=60.0, windows=windows, relevant_clip_ids=[0, 5],
                             saliency_scores=[[1, 1, 1], [2, 2, 2]])
    (item,) = build_flashvtg_items([sample], ConstantReader({"v": 60.0}), "qvhighlights",  # type: ignore[arg-type]
                                   seed=3)
    rng = random.Random(3)
    assert item.windows == windows
    assert item.pos_clips[1:] == rng.sample([0, 5], k=1)  # the first draw of the stream: no shuffle before it
