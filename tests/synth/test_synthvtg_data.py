"""SynthVTG: scenes, real video files, QVHighlights-format annotations, tiny-CLIP features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vtgkit.data import GroundingDataset, collate_grounding
from vtgkit.data.qvhighlights import load_qvhighlights
from vtgkit.features.decoding import iter_fps_filter_frames
from vtgkit.synth.dataset_writer import write_synthvtg
from vtgkit.synth.feature_extraction import FLASHVTG_PATCH_DIR, FLASHVTG_TEXT_DIR, patch_statistics
from vtgkit.synth.pipeline import (
    SYNTHVTG_BENCHMARK,
    prepare_synthvtg,
    synthvtg_feature_reader,
    synthvtg_flashvtg_reader,
)
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


def test_patch_statistics_are_per_layer_max_then_mean_over_patch_tokens() -> None:
    layers = torch.zeros(1, 2, 3, 2)  # (N, K, P, D): CLS + 2 patches, 2 layers
    layers[0, 0] = torch.tensor([[100.0, 100.0], [1.0, -4.0], [3.0, 2.0]])  # the CLS row must be ignored
    layers[0, 1] = torch.tensor([[-100.0, 0.0], [-1.0, 5.0], [-3.0, 1.0]])
    expected = torch.tensor([[3.0, 2.0, 2.0, -1.0, -1.0, 5.0, -2.0, 3.0]])
    assert torch.equal(patch_statistics(layers), expected)


@pytest.mark.slow
def test_flashvtg_streams_match_the_recipe_and_stale_features_are_extracted_again(tmp_path: Path) -> None:
    from vtgkit.train.recipes import get_recipe

    splits = {"train": 2, "val": 1, "test": 1}
    prepare_synthvtg(tmp_path, seed=1, splits=splits, scene_config=SMALL)
    sample = SYNTHVTG_BENCHMARK.load(tmp_path / "synthvtg_train.jsonl")[0]
    video = synthvtg_flashvtg_reader(tmp_path).read_video(sample.vid)
    assert video.shape == (round(sample.duration / 2), get_recipe("synthvtg-flashvtg").model_overrides["video_dim"])
    # The patch stream is the statistics of the hidden states the R2-Tuning cache holds (float16 there).
    cached = torch.from_numpy(np.load(tmp_path / "clip_tiny16_vid_k4" / f"{sample.vid}.npy").astype(np.float32))
    with np.load(tmp_path / FLASHVTG_PATCH_DIR / f"{sample.vid}.npz") as archive:
        written = torch.from_numpy(archive["features"])
    torch.testing.assert_close(written, patch_statistics(cached), atol=2e-2, rtol=1e-2)
    # Text rows: the projected token (64) then the R2-Tuning text cache's 4 layers of the same token.
    text = synthvtg_flashvtg_reader(tmp_path).read_query(sample.qid)
    assert text.shape[1] == get_recipe("synthvtg-flashvtg").model_overrides["query_dim"]
    text_cache = np.load(tmp_path / "clip_tiny16_txt_k4" / f"{sample.qid}.npy")  # (L, 4, 64) float16
    with np.load(tmp_path / FLASHVTG_TEXT_DIR / f"qid{sample.qid}.npz") as archive:
        rows = archive["last_hidden_state"]
    assert rows.shape == (len(text_cache), 64 + 4 * 64) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:, 64:], text_cache.astype(np.float32).reshape(len(text_cache), -1))

    # A dataset built before the patch stream: same videos, features extracted again, nothing regenerated.
    summary = json.loads((tmp_path / "synthvtg.json").read_text())
    del summary["features"]["flashvtg_video_dirs"]
    (tmp_path / "synthvtg.json").write_text(json.dumps(summary))
    with np.load(tmp_path / FLASHVTG_TEXT_DIR / f"qid{sample.qid}.npz") as archive:
        narrow = archive["last_hidden_state"][:, :64]
    np.savez(tmp_path / FLASHVTG_TEXT_DIR / f"qid{sample.qid}.npz", last_hidden_state=narrow)  # 64-d text rows
    for path in (tmp_path / FLASHVTG_PATCH_DIR).iterdir():
        path.unlink()
    mtime = (tmp_path / "videos" / f"{sample.vid}.mp4").stat().st_mtime_ns
    rebuilt = prepare_synthvtg(tmp_path, seed=1, splits=splits, scene_config=SMALL)
    assert rebuilt["timing"]["generate_s"] == 0.0
    assert (tmp_path / "videos" / f"{sample.vid}.mp4").stat().st_mtime_ns == mtime
    assert (tmp_path / FLASHVTG_PATCH_DIR / f"{sample.vid}.npz").is_file()
    assert synthvtg_flashvtg_reader(tmp_path).read_query(sample.qid).shape[1] == 320
    # Older text rows alone (video streams current) are extracted again too.
    summary = json.loads((tmp_path / "synthvtg.json").read_text())
    del summary["features"]["flashvtg_text"]
    (tmp_path / "synthvtg.json").write_text(json.dumps(summary))
    assert prepare_synthvtg(tmp_path, seed=1, splits=splits, scene_config=SMALL)["timing"]["generate_s"] == 0.0
    assert json.loads((tmp_path / "synthvtg.json").read_text())["features"]["flashvtg_text"] == "projected+layers"
