"""SynthVTG: scenes, real video files, QVHighlights-format annotations, tiny-CLIP features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vtgkit.data import GroundingDataset, collate_grounding
from vtgkit.data.qvhighlights import load_qvhighlights
from vtgkit.features.decoding import iter_fps_filter_frames
from vtgkit.synth.dataset_writer import write_synthvtg
from vtgkit.synth.pipeline import SYNTHVTG_BENCHMARK, prepare_synthvtg, synthvtg_feature_reader
from vtgkit.synth.scenes import COLOURS, SceneConfig, generate_queries, generate_scene, render_clip

SMALL = SceneConfig(min_clips=6, max_clips=9, min_window=2)


def _colour_fraction(frame: np.ndarray, colour: str) -> float:
    """Share of pixels within 40 (per channel) of ``colour``; frame (3, S, S) or (S, S, 3) uint8."""
    pixels = frame.reshape(3, -1).T if frame.shape[0] == 3 else frame.reshape(-1, 3)
    close = np.abs(pixels.astype(int) - np.array(COLOURS[colour])).max(axis=1) <= 40
    return float(close.mean())


def test_scenes_are_deterministic_and_objects_visible_only_in_their_window() -> None:
    first = generate_scene(np.random.default_rng(5), SMALL)
    second = generate_scene(np.random.default_rng(5), SMALL)
    assert first.num_clips == second.num_clips and [o.colour for o in first.objects] == [
        o.colour for o in second.objects]
    assert len({o.colour for o in first.objects}) == len(first.objects)  # colours are unique within a video
    queries = generate_queries(np.random.default_rng(1), first, 2)
    assert len({q.object_index for q in queries}) == len(queries) == 2
    for obj in first.objects:
        for clip in range(first.num_clips):
            fraction = _colour_fraction(render_clip(first, clip, SMALL.frame_size), obj.colour)
            if obj.start_clip <= clip < obj.end_clip:
                assert fraction > 0.0  # drawn (possibly partly covered by a later object)
            else:
                assert fraction == 0.0


def test_written_videos_decode_to_one_frame_per_clip_with_the_annotated_object(tmp_path: Path) -> None:
    summary = write_synthvtg(tmp_path, seed=3, splits={"train": 2, "val": 1}, config=SMALL)
    assert summary["splits"] == {"train": {"videos": 2, "queries": 4}, "val": {"videos": 1, "queries": 2}}
    samples = load_qvhighlights(tmp_path / "synthvtg_train.jsonl")
    assert len(samples) == 4
    for sample in samples:
        (start, end), = sample.windows
        num_clips = round(sample.duration / SMALL.clip_len)
        frames = list(iter_fps_filter_frames(tmp_path / "videos" / f"{sample.vid}.mp4", 1 / SMALL.clip_len,
                                             size=SMALL.frame_size))
        assert len(frames) == num_clips
        colour = next(word for word in sample.query.split() if word in COLOURS)
        inside = set(range(round(start / SMALL.clip_len), round(end / SMALL.clip_len)))
        assert sample.relevant_clip_ids == sorted(inside)
        assert all(scores == [4, 4, 4] for scores in sample.saliency_scores)
        for clip, frame in enumerate(frames):
            fraction = _colour_fraction(frame, colour)
            assert (fraction > 0.005) if clip in inside else (fraction < 0.005), (sample.qid, clip, fraction)


@pytest.mark.slow
def test_prepared_dataset_loads_through_the_r2tuning_data_layer(tmp_path: Path) -> None:
    summary = prepare_synthvtg(tmp_path, seed=1, splits={"train": 3, "val": 1, "test": 1}, scene_config=SMALL)
    assert summary["features"]["videos"] == 5 and summary["features"]["queries"] == 10
    assert prepare_synthvtg(tmp_path, seed=1, splits={"train": 3, "val": 1, "test": 1},
                            scene_config=SMALL) == json.loads((tmp_path / "synthvtg.json").read_text())
    samples = SYNTHVTG_BENCHMARK.load(tmp_path / "synthvtg_train.jsonl")
    dataset = GroundingDataset(samples, synthvtg_feature_reader(tmp_path), SYNTHVTG_BENCHMARK)
    batch = collate_grounding([dataset[i] for i in range(len(dataset))])
    assert batch.video.shape[2:] == (4, 17, 64) and batch.query.shape[2:] == (4, 64)
    assert int(batch.video_mask.sum()) == sum(round(s.duration / 2) for s in samples)
    assert (tmp_path / "clip_features").is_dir() and (tmp_path / "tiny_clip.safetensors").is_file()
