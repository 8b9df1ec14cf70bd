"""Grounder on a generated video with a tiny random CLIP and R²-Tuning model (tests/tiny_grounder.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from tiny_grounder import TINY_CLIP, write_tiny_checkpoint, write_tiny_clip, write_video

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to decode test videos")

from vtgkit.api import Grounder, QueryScriptWarning, QueryTruncatedWarning  # noqa: E402
from vtgkit.errors import CheckpointError, ConfigError, QueryError, VideoError  # noqa: E402
from vtgkit.windowing import plan_windows  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api")
    return {"checkpoint": write_tiny_checkpoint(root / "checkpoint"),
            "clip": write_tiny_clip(root / "clip.safetensors"), "video": write_video(root / "video.mp4")}


def make_grounder(assets: dict[str, Path], **options: object) -> Grounder:
    return Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"], **options)


def count_calls(grounder: Grounder) -> list[int]:
    """Wrap the CLIP frame encoder; the returned list holds the batch size of each call."""
    calls: list[int] = []
    encode = grounder.encoder.encode_frames

    def counted(images):  # noqa: ANN001, ANN202
        calls.append(int(images.shape[0]))
        return encode(images)

    grounder.encoder.encode_frames = counted  # type: ignore[method-assign]
    return calls


@pytest.fixture(scope="module")
def grounder(assets: dict[str, Path]) -> Grounder:
    return make_grounder(assets)


def test_ground_returns_sorted_moments_inside_the_video(grounder: Grounder, assets: dict[str, Path]) -> None:
    moments = grounder.ground(assets["video"], "a white box moves across the screen", top_k=4)
    duration = grounder.encode_video(assets["video"]).duration
    assert math.isclose(duration, 21.0, abs_tol=0.2)
    assert 1 <= len(moments) <= 4
    for moment in moments:
        assert 0 <= moment.start < moment.end <= duration + 1e-6
        assert math.isfinite(moment.score)
    scores = [moment.score for moment in moments]
    assert scores == sorted(scores, reverse=True)


def test_highlights_give_one_finite_score_per_clip(grounder: Grounder, assets: dict[str, Path]) -> None:
    highlights = grounder.highlights(assets["video"], "coloured stripes")
    features = grounder.encode_video(assets["video"])
    assert features.tokens.dtype == np.float16
    assert features.tokens.shape[1:] == (2, TINY_CLIP.tokens_per_image, TINY_CLIP.vision_width)
    assert highlights.saliency.shape == (features.num_clips,)
    assert features.num_clips == math.ceil(features.duration / grounder.clip_len)
    assert np.all(np.isfinite(highlights.saliency))
    clips = highlights.clips()
    assert clips[-1].end == pytest.approx(features.duration)
    best = highlights.top(3)
    assert [m.score for m in best] == sorted(highlights.saliency.tolist(), reverse=True)[:3]


@pytest.mark.parametrize(("budget", "fraction", "limit"),
                         [(6.0, 0.15, 6.0), (None, 0.3, 0.3 * 21.0), ("40%", 0.15, 0.4 * 21.0)])
def test_summarize_stays_within_budget(grounder: Grounder, assets: dict[str, Path], budget: float | str | None,
                                       fraction: float, limit: float) -> None:
    segments = grounder.summarize(assets["video"], budget, fraction=fraction)
    assert segments
    assert sum(segment.duration for segment in segments) <= limit + 1e-6
    starts = [segment.start for segment in segments]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False))


def test_summarize_budget_below_one_clip_is_a_clear_error(grounder: Grounder, assets: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="shorter than one clip"):
        grounder.summarize(assets["video"], 1.0)


def test_second_query_reuses_cached_features(assets: dict[str, Path]) -> None:
    grounder = make_grounder(assets)
    calls = count_calls(grounder)
    grounder.ground(assets["video"], "first query")
    first = sum(calls)
    assert first == grounder.encode_video(assets["video"]).num_clips
    grounder.ground(assets["video"], "a different second query")
    grounder.highlights(assets["video"], "and a third one")
    assert sum(calls) == first  # the CLIP image tower ran for the first query only
    assert grounder.cache.hits >= 2


def test_disk_cache_is_keyed_by_file_and_settings(assets: dict[str, Path], tmp_path: Path) -> None:
    video = write_video(tmp_path / "copy.mp4", seconds=9.0)
    first = make_grounder(assets, feature_cache_dir=tmp_path / "features")
    reference = first.highlights(video, "query").saliency
    fresh = make_grounder(assets, feature_cache_dir=tmp_path / "features")
    calls = count_calls(fresh)
    np.testing.assert_allclose(fresh.highlights(video, "query").saliency, reference, rtol=1e-6)
    assert calls == []  # read back from disk
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))  # "edited" file
    fresh.highlights(video, "query")
    assert sum(calls) > 0
    other_rate = make_grounder(assets, feature_cache_dir=tmp_path / "features", benchmark="charades_sta")
    calls = count_calls(other_rate)
    other_rate.highlights(video, "query")
    assert sum(calls) == other_rate.encode_video(video).num_clips  # 1 fps: different settings, new entry


def test_long_video_runs_in_training_length_windows(assets: dict[str, Path]) -> None:
    grounder = make_grounder(assets, window_seconds=8.0)  # 4 clips per window
    features = grounder.encode_video(assets["video"])
    lengths: list[int] = []
    forward = grounder.model.forward

    def spy(batch, **kwargs):  # noqa: ANN001, ANN202, ANN003
        lengths.append(int(batch.video.shape[1]))
        return forward(batch, **kwargs)

    grounder.model.forward = spy  # type: ignore[method-assign]
    result = grounder.predict(assets["video"], "a white box")
    windows = plan_windows(features.num_clips, 4)
    assert len(windows) > 1
    assert lengths == [window.num_clips for window in windows] == [4] * len(windows)
    assert result.highlights.saliency.shape == (features.num_clips,)
    assert all(0 <= m.start < m.end <= features.duration + 1e-6 for m in result.moments)
    # moments found by two overlapping windows are merged: no two kept moments overlap with IoU >= 0.7
    for index, a in enumerate(result.moments):
        for b in result.moments[index + 1 :]:
            inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
            assert inter / (a.duration + b.duration - inter) < 0.7


def test_inference_tool_pipeline_reads_all_77_query_positions(assets: dict[str, Path]) -> None:
    grounder = make_grounder(assets, pipeline="inference-tool")
    tokens, mask = grounder.encode_query("a white box")
    assert tokens.shape == (77, 2, 64)
    assert int(mask.sum()) == 5  # start, 3 words, end
    moments = grounder.ground(assets["video"], "a white box", top_k=3)
    assert moments and all(0 <= m.start < m.end for m in moments)


def test_query_checks(grounder: Grounder) -> None:
    with pytest.raises(QueryError, match="empty"):
        grounder.encode_query("   ")
    with pytest.warns(QueryTruncatedWarning, match="only the first 77"):
        tokens, _ = grounder.encode_query("goal " * 10_000)
    assert tokens.shape[0] == 77
    with pytest.warns(QueryScriptWarning, match="no Latin letters"):
        grounder.encode_query("кошка прыгает")


def test_bad_videos_raise_video_errors(grounder: Grounder, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        grounder.ground(tmp_path / "missing.mp4", "query")
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video")
    with pytest.raises(VideoError, match="cannot open"):
        grounder.ground(text_file, "query")
    short = write_video(tmp_path / "short.mp4", seconds=1.0)
    with pytest.raises(VideoError, match="shorter than one clip"):
        grounder.ground(short, "query")


def test_flashvtg_names_go_to_the_flashvtg_grounder(assets: dict[str, Path], tmp_path: Path) -> None:
    # tests/test_api_flashvtg.py covers FlashVTG itself; here: the name is not taken for an R2-Tuning file, and
    # SlowFast weights are refused for R2-Tuning checkpoints.
    with pytest.raises(CheckpointError, match="flashvtg-qvhighlights cannot be downloaded automatically"):
        Grounder.from_pretrained("flashvtg-qvhighlights", clip_weights=assets["clip"], cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="SlowFast weights apply to FlashVTG"):
        make_grounder(assets, slowfast_weights=tmp_path / "SLOWFAST_8x8_R50.pkl")


def test_offline_download_names_the_file_and_where_to_put_it(assets: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import vtgkit.pretrained

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("network is unreachable")

    monkeypatch.setattr(vtgkit.pretrained, "urlopen", offline)
    with pytest.raises(CheckpointError) as error:
        Grounder.from_pretrained("r2tuning-qvhighlights", clip_weights=assets["clip"], cache_dir=tmp_path,
                                 progress=False)
    message = str(error.value)
    assert "r2_tuning_qvhighlights-ed516355.pth" in message
    assert str(tmp_path / "checkpoints" / "r2tuning-qvhighlights") in message


def test_clip_that_does_not_fit_the_checkpoint(assets: dict[str, Path], tmp_path: Path) -> None:
    from dataclasses import replace

    wide = write_tiny_clip(tmp_path / "wide.safetensors", replace(TINY_CLIP, vision_width=128))
    with pytest.raises(CheckpointError, match="tokens per frame"):
        Grounder.from_pretrained(assets["checkpoint"], clip_weights=wide)
    with pytest.raises(CheckpointError, match="no such file"):
        Grounder.from_pretrained(assets["checkpoint"], clip_weights=tmp_path / "missing.pt")


def test_long_video_features_go_to_a_temporary_map_not_memory(assets: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Every video counts as "long" here: its rows are streamed to a temporary .npy that is memory-mapped, so resident
    # memory does not grow with the video; the results equal the in-memory path and a second query reuses the map.
    query = "a white box moves across the screen"
    in_memory = make_grounder(assets)
    expected = in_memory.predict(assets["video"], query)
    monkeypatch.setattr("vtgkit.api.IN_MEMORY_FEATURE_BYTES", 0)
    spilled = make_grounder(assets)
    calls = count_calls(spilled)
    result = spilled.predict(assets["video"], query)
    features = spilled.encode_video(assets["video"])
    assert isinstance(features.tokens, np.memmap)
    np.testing.assert_array_equal(np.asarray(features.tokens), in_memory.encode_video(assets["video"]).tokens)
    np.testing.assert_allclose(result.highlights.saliency, expected.highlights.saliency, atol=1e-6)
    assert [(m.start, m.end) for m in result.moments] == [(m.start, m.end) for m in expected.moments]
    encoded = sum(calls)
    spilled.ground(assets["video"], "coloured stripes")
    assert sum(calls) == encoded  # second query: no decoding, no CLIP
    if os.name == "posix":  # the file is unlinked once mapped: nothing left on disk
        assert list(Path(spilled._spill_dir.name).iterdir()) == []
