"""Frame sampling of both official paths and the errors of bad inputs."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from vtgkit.errors import VideoError
from vtgkit.features.decoding import (
    frame_stride_indices,
    iter_fps_filter_frames,
    iter_frame_stride_frames,
    official_scaled_size,
    probe_video,
)
from vtgkit.features.filter_graph import autorotate_filters
from vtgkit.features.frame_transforms import INFERENCE_TOOL_MEAN, INFERENCE_TOOL_STD, inference_tool_input
from vtgkit.features.synthetic_video import write_audio_only


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(640, 360, (398, 224, 87, 0)), (360, 640, (224, 398, 0, 87)), (224, 224, (224, 224, 0, 0)),
     (1920, 1080, (398, 224, 87, 0)), (100, 50, (448, 224, 112, 0)), (481, 480, (224, 224, 0, 0))],
)
def test_official_geometry(width: int, height: int, expected: tuple[int, int, int, int]) -> None:
    assert official_scaled_size(width, height, 224) == expected


def test_frame_stride_indices_follow_the_inference_tool() -> None:
    assert frame_stride_indices(100, 30.0, 0.5) == [0, 60]
    assert frame_stride_indices(121, 30.0, 0.5) == [0, 60, 120]
    # half-to-even rounding of 2.5 and 7.5, then the clamp to n − 1
    assert frame_stride_indices(9, 25.0, 10.0) == [0, 2, 5, 8]
    assert frame_stride_indices(10, 4.0, 1.6) == [0, 2, 5, 8]
    assert frame_stride_indices(4, 10.0, 20.0) == [0, 0, 1, 2, 2, 2, 3, 3]


@pytest.mark.parametrize(("seconds", "fps", "expected"), [(4, 1.0, 4), (4, 0.5, 2), (3, 0.5, 2), (2.9, 0.5, 1)])
def test_fps_filter_frame_counts(make_video: Callable[..., Path], seconds: float, fps: float, expected: int) -> None:
    # fps filter round=near, eof_action=round: N = round(duration · fps) for a stream starting at 0
    video = make_video("count.mp4", seconds)
    frames = list(iter_fps_filter_frames(video, fps))
    assert len(frames) == expected
    assert all(frame.shape == (3, 224, 224) and frame.dtype == np.uint8 for frame in frames)


def test_portrait_and_variable_rate_videos(make_video: Callable[..., Path]) -> None:
    portrait = make_video("portrait.mp4", 2, width=96, height=160)
    assert len(list(iter_fps_filter_frames(portrait, 1.0))) == 2
    vfr = make_video("vfr.mp4", 4, variable_rate=True)
    info = probe_video(vfr)
    assert info.num_frames < 4 * 10  # fewer frames than a constant 10 fps stream of the same length
    assert len(list(iter_fps_filter_frames(vfr, 1.0))) == 4  # timestamps, not frame counts, decide


def test_fps_filter_picks_frames_by_timestamp(make_video: Callable[..., Path]) -> None:
    """ffmpeg's fps filter (round=near) keeps, for output slot k, the last input frame i with round(i·F/r) ≤ k.

    From 10 fps at F = 1 that is input frame 4 for slot 0 (frame 5 rounds to slot 1), then 14, 24.
    """
    video = make_video("pick.mp4", 3)
    one = np.stack(list(iter_fps_filter_frames(video, 1.0)))
    every = np.stack(list(iter_fps_filter_frames(video, 10.0)))  # the source rate: every frame once
    assert len(every) == 30
    assert np.array_equal(one, every[[4, 14, 24]])


def test_frame_stride_sampler_and_transform(make_video: Callable[..., Path]) -> None:
    video = make_video("stride.mp4", 3)
    frames = list(iter_frame_stride_frames(video, 2.0))
    assert len(frames) == len(frame_stride_indices(30, 10.0, 2.0)) == 6
    assert frames[0].shape == (96, 160, 3)
    image = inference_tool_input(frames[0], 224)
    assert image.shape == (3, 224, 224)
    white = inference_tool_input(np.full((96, 160, 3), 255, np.uint8), 224)
    expected = (1 - torch.tensor(INFERENCE_TOOL_MEAN)) / torch.tensor(INFERENCE_TOOL_STD)
    assert torch.allclose(white[:, 0, 0], expected)


def test_bad_inputs_give_clear_errors(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "corrupt.mp4"
    text.write_bytes(b"this is not a video " * 200)
    good = make_video("good.mp4", 3)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    audio = write_audio_only(tmp_path / "audio.m4a")
    short = make_video("short.mp4", 0.4)
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a directory",
        empty: "empty file",
        text: "cannot open",
        truncated: "cannot open|decoding failed|no frame",
        audio: "no video stream",
        short: "no frame sampled at 0.5 fps",
    }
    for path, message in cases.items():
        with pytest.raises(VideoError, match=message) as error:
            list(iter_fps_filter_frames(path, 0.5))
        assert str(path) in str(error.value)


def _bar_video(path: Path, rotation: int) -> Path:
    """1 s, 10 fps, 64×32 coded frames with a white bar on the left, display matrix rotated ``rotation``° (ccw)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        image = np.zeros((32, 64, 3), np.uint8)
        image[:, :8] = 255
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(("rotation", "bright_edge"), [(90, "bottom"), (-90, "top"), (0, "none")])
def test_display_rotation_is_applied_before_the_official_geometry(tmp_path: Path, rotation: int,
                                                                  bright_edge: str) -> None:
    """ffmpeg's autorotate turns the frame upright before fps/scale/crop; W×H still come from the coded size."""
    (frame,) = iter_fps_filter_frames(_bar_video(tmp_path / "bar.mp4", rotation), 1.0)
    luma = frame.mean(axis=0)  # (224, 224)
    edges = {"top": luma[:16].mean(), "bottom": luma[-16:].mean()}
    if bright_edge == "none":  # unrotated: 448×224 then the centre crop drops the bar on the left
        assert luma.max() < 40
    else:
        assert edges[bright_edge] > 200 and min(edges.values()) < 40


def test_autorotate_filters_follow_ffmpeg() -> None:
    one = 65536
    assert autorotate_filters(None) == []
    assert autorotate_filters(np.array([one, 0, 0, 0, one, 0, 0, 0, 1 << 30])) == []
    assert autorotate_filters(np.array([0, one, 0, -one, 0, 0, 0, 0, 1 << 30])) == [("transpose", "clock")]
    assert autorotate_filters(np.array([0, -one, 0, one, 0, 0, 0, 0, 1 << 30])) == [("transpose", "cclock")]
    assert autorotate_filters(np.array([-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30])) == [("hflip", None), ("vflip", None)]
    assert autorotate_filters(np.array([one, 0, 0, 0, -one, 0, 0, 0, 1 << 30])) == [("vflip", None)]
