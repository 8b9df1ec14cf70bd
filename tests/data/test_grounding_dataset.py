"""GroundingDataset items and collation on tiny caches in the official layout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from test_features_r2tuning import make_cache, random_query, random_video

from vtgkit.data import (
    GroundingDataset,
    R2TuningFeatureReader,
    collate_grounding,
    filter_min_duration,
    get_benchmark,
    to_official_layout,
)
from vtgkit.errors import AnnotationError, FeatureError
from vtgkit.structures import GroundingSample


def qv_sample(qid: int, vid: str, duration: float, windows, clip_ids=None, scores=None) -> GroundingSample:
    return GroundingSample(qid=qid, vid=vid, query="q", duration=duration, windows=windows,
                           relevant_clip_ids=clip_ids, saliency_scores=scores)


@pytest.fixture
def cache(tmp_path: Path) -> R2TuningFeatureReader:
    videos = {"long": random_video(9), "short": random_video(5), "s30-d52-cam-002": random_video(6)}
    queries = {"1": random_query(4), "2": random_query(7), "s30-d52_0": random_query(3),
               "long": random_query(5), "short": random_query(3)}  # TVSum / YouTube: query files named by video
    make_cache(tmp_path, videos, queries)
    return R2TuningFeatureReader(tmp_path, num_layers=2)


def test_qvhighlights_item_and_batch(cache: R2TuningFeatureReader) -> None:
    samples = [qv_sample(1, "long", 18.0, [(16, 17), (30, 36)], [2, 8], [[3, 3, 3], [0, 0, 1]]),
               qv_sample(2, "short", 10.6, [(0, 10.6)], [0, 4], [[4, 4, 4], [1, 2, 3]])]
    dataset = GroundingDataset(samples, cache, get_benchmark("qvhighlights"))
    items = [dataset[0], dataset[1]]
    assert items[0].boundaries.tolist() == [[15.5, 17.5], [16, 18]]
    assert items[1].boundaries.tolist() == [[0, 10]]  # clamped to T / fps = 10, not the 10.6-s duration
    assert items[0].pos_clip in (2, 8) and items[1].pos_clip in (0, 4)
    batch = collate_grounding(items)
    assert batch.video.shape == (2, 9, 2, 3, 8) and batch.video.dtype == torch.float16
    assert batch.query.shape == (2, 7, 2, 6)
    assert batch.video_mask.tolist() == [[1] * 9, [1] * 5 + [0] * 4]
    assert batch.query_mask.sum(1).tolist() == [4, 7]
    assert torch.all(batch.video[1, 5:] == 0) and torch.all(batch.query[0, 4:] == 0)
    assert batch.boundaries.shape == (2, 2, 2) and torch.isinf(batch.boundaries[1, 1]).all()
    assert batch.saliency.tolist()[1] == [1.0, 0, 0, 0, 0.5, 0, 0, 0, 0]
    assert batch.pos_clip.shape == (2, 1) and batch.pos_clip.dtype == torch.long
    assert batch.fps.tolist() == [0.5, 0.5] and [s.qid for s in batch.samples] == [1, 2]
    video, query = to_official_layout(batch)
    assert video.shape == (2, 9, 2 * 3 * 8) and query.shape == (2, 7, 2 * 6)
    assert torch.isinf(video[1, 5:]).all() and torch.isfinite(video[1, :5]).all()
    assert torch.equal(video[0].view(9, 2, 3, 8), batch.video[0])


def test_without_targets_and_test_split(cache: R2TuningFeatureReader) -> None:
    samples = [qv_sample(1, "long", 18.0, [(0, 4)], [0], [[0, 0, 0]]), qv_sample(2, "short", 10.0, [])]
    items = [GroundingDataset(samples, cache, get_benchmark("qvhighlights"), with_targets=False)[0],
             GroundingDataset(samples, cache, get_benchmark("qvhighlights"))[1]]
    assert all(i.boundaries is None and i.saliency is None and i.pos_clip is None for i in items)
    batch = collate_grounding(items)
    assert batch.boundaries is None and batch.saliency is None and batch.pos_clip is None
    # all-zero scores leave no positive clip: the official code cannot draw one either
    with pytest.raises(AnnotationError, match=r"qid 1 .*no clip qualifies"):
        GroundingDataset(samples, cache, get_benchmark("qvhighlights"))[0]


def test_tacos_suffix_and_window_saliency(cache: R2TuningFeatureReader) -> None:
    sample = GroundingSample(qid="s30-d52_0", vid="s30-d52", query="", duration=12.0, windows=[(3.0, 7.1)])
    item = GroundingDataset([sample], cache, get_benchmark("tacos"))[0]
    assert item.num_clips == 6 and item.sample.vid == "s30-d52"
    assert item.saliency.tolist() == [0, 0, 1, 1, 0, 0]  # ceil(1.5)=2 .. ceil(3.55)-1=3
    assert item.pos_clip in (2, 3)


def test_tvsum_cuts_to_shorter_and_draws_above_median(cache: R2TuningFeatureReader) -> None:
    scores = [0.1, 0.9, 0.5, 0.5, 0.8, 0.2, 0.7, 0.3]  # 8 labels vs 9 feature clips
    sample = GroundingSample(qid="tv", vid="long", query="", duration=None, clip_saliency=scores, domain="BK")
    seen = set()
    for _ in range(30):
        item = GroundingDataset([sample], cache, get_benchmark("tvsum"))[0]
        seen.add(item.pos_clip)
    assert item.video.shape[0] == 8 and item.saliency.shape == (8,)
    assert seen <= {1, 4, 6}  # above the lower median 0.5
    bad = GroundingSample(qid="tv", vid="short", query="", duration=None, clip_saliency=[0.5] * 10)
    with pytest.raises(AnnotationError, match="features have 5 clips but the annotation has 10"):
        GroundingDataset([bad], cache, get_benchmark("tvsum"))[0]


def test_youtube_needs_equal_lengths_and_per_video_fps(cache: R2TuningFeatureReader) -> None:
    sample = GroundingSample(qid="x", vid="short", query="", duration=10.0, clip_saliency=[0, 0.5, 1, 1, 0],
                             domain="dog")
    item = GroundingDataset([sample], cache, get_benchmark("youtube_highlights"))[0]
    assert item.fps == pytest.approx(0.5) and item.pos_clip in (2, 3)
    sample.clip_saliency = [0, 1, 1]
    with pytest.raises(AnnotationError, match="one clip per segment"):
        GroundingDataset([sample], cache, get_benchmark("youtube_highlights"))[0]


def test_min_duration_filter_counts_reasons() -> None:
    samples = [qv_sample(i, "v", d, [(0, 1)]) for i, d in enumerate([4.9, 5.0, 150, 2])]
    kept, skipped = filter_min_duration(samples, 5)
    assert [s.qid for s in kept] == [1, 2]
    assert skipped == Counter({"duration < 5 s (training filter min_video_len)": 2})
    assert filter_min_duration(samples, None) == (samples, Counter())


def test_collate_rejects_mixed_layouts(tmp_path: Path) -> None:
    make_cache(tmp_path, {"a": random_video(3, p=3), "b": random_video(3, p=4)}, {"1": random_query(2)})
    reader = R2TuningFeatureReader(tmp_path, num_layers=2)
    samples = [qv_sample(1, "a", 6.0, []), qv_sample(1, "b", 6.0, [])]
    dataset = GroundingDataset(samples, reader, get_benchmark("qvhighlights"), with_targets=False)
    with pytest.raises(FeatureError, match=r"cannot batch qid 1 \(vid 'b'\) .* per-step shape \(2, 4, 8\)"):
        collate_grounding([dataset[0], dataset[1]])


def test_qvhighlights_file_round_trip(tmp_path: Path, cache: R2TuningFeatureReader) -> None:
    line = {"qid": 1, "query": "q", "duration": 18, "vid": "long", "relevant_windows": [[12, 6]],
            "relevant_clip_ids": [3], "saliency_scores": [[1, 2, 3]]}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(line), encoding="utf-8")
    item = GroundingDataset(get_benchmark("qvhighlights").load(path), cache, get_benchmark("qvhighlights"))[0]
    assert item.boundaries.tolist() == [[6, 12]] and item.pos_clip == 3
    assert np.isclose(item.saliency[3].item(), 0.5)
