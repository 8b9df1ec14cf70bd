from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from vtgkit import video_cut
from vtgkit.errors import VideoError
from vtgkit.structures import Moment
from vtgkit.video_cut import cut_moments, moment_file_name

av = pytest.importorskip("av", reason="cutting clips needs PyAV (vtgkit[features])")


def _frames(path: Path) -> list[tuple[float, int]]:
    """(time on the clip, source frame index) of every decoded frame; the test video paints frame i at 8 * i."""
    with av.open(str(path)) as container:
        return [
            (float(frame.time), round(float(frame.to_ndarray(format="rgb24")[0, 0, 0]) / 8))
            for frame in container.decode(video=0)
        ]


def _audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.codec_context.sample_rate


def test_doctests() -> None:
    assert doctest.testmod(video_cut).failed == 0


def test_file_names_are_safe() -> None:
    name = moment_file_name('a/b\\c:*?"<>| d', 3, Moment(1.25, 2.0))
    assert name == "a_b_c_d_03_1.2-2.0s.mp4"
    assert moment_file_name("...", 1, Moment(0, 1)).startswith("video_01_")


def test_reencode_is_frame_accurate_with_audio(graylevel_video: Path, tmp_path: Path) -> None:
    moments = [Moment(0.55, 1.75, 0.9), Moment(2.0, 3.0, 0.5)]
    clips = cut_moments(graylevel_video, moments, tmp_path / "clips")
    assert [clip.path.name for clip in clips] == ["test_video_01_0.6-1.8s.mp4", "test_video_02_2.0-3.0s.mp4"]
    first = _frames(clips[0].path)
    # Frames whose start lies in [0.55, 1.75): source frames 6..17, timed relative to the moment start.
    assert [index for _, index in first] == list(range(6, 18))
    assert first[0][0] == pytest.approx(0.05, abs=1e-3)
    assert clips[0].start == pytest.approx(0.6) and clips[0].end == pytest.approx(1.75)
    assert [index for _, index in _frames(clips[1].path)] == list(range(20, 30))
    # AAC adds up to two frames (1024 samples each) of encoder priming/padding.
    assert 1.2 <= _audio_seconds(clips[0].path) <= 1.2 + 2 * 1024 / 16000
    assert not list((tmp_path / "clips").glob(".*part*"))


def test_reencode_without_audio(graylevel_video: Path, tmp_path: Path) -> None:
    clip = cut_moments(graylevel_video, [Moment(0.0, 0.3)], tmp_path, audio=False)[0]
    assert [index for _, index in _frames(clip.path)] == [0, 1, 2]
    assert _audio_seconds(clip.path) == 0.0


def test_copy_cuts_on_keyframes(graylevel_video: Path, tmp_path: Path) -> None:
    # The test video has a keyframe every second.
    clips = cut_moments(graylevel_video, [Moment(0.55, 1.75), Moment(2.2, 2.4)], tmp_path, mode="copy")
    assert (clips[0].start, clips[0].end) == (pytest.approx(0.0), pytest.approx(2.0))
    assert [index for _, index in _frames(clips[0].path)] == list(range(0, 20))
    assert (clips[1].start, clips[1].end) == (pytest.approx(2.0), pytest.approx(3.0))
    frames = _frames(clips[1].path)
    assert [index for _, index in frames] == list(range(20, 30)) and frames[0][0] == pytest.approx(0.0)
    assert _audio_seconds(clips[1].path) > 0.5


def test_existing_files_are_kept_unless_overwrite(graylevel_video: Path, tmp_path: Path) -> None:
    moment = Moment(0.0, 0.5)
    cut_moments(graylevel_video, [moment], tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        cut_moments(graylevel_video, [moment], tmp_path)
    assert len(cut_moments(graylevel_video, [moment], tmp_path, overwrite=True)) == 1


def test_bad_inputs(graylevel_video: Path, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such video file"):
        cut_moments(tmp_path / "missing.mp4", [Moment(0, 1)], tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video", encoding="utf-8")
    with pytest.raises(VideoError, match="notes.mp4"):
        cut_moments(text, [Moment(0, 1)], tmp_path / "out")
    with pytest.raises(ValueError, match="start < end"):
        cut_moments(graylevel_video, [Moment(2.0, 1.0)], tmp_path)
    with pytest.raises(ValueError, match="mode"):
        cut_moments(graylevel_video, [Moment(0, 1)], tmp_path, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(VideoError, match="no video frames between"):
        cut_moments(graylevel_video, [Moment(10.0, 12.0)], tmp_path / "late")
    assert not list((tmp_path / "late").iterdir())
