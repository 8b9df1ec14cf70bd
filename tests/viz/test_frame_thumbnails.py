from __future__ import annotations

from pathlib import Path

import pytest

from vtgkit.errors import VideoError
from vtgkit.viz.thumbnails import grab_frame, grab_frames, image_to_bytes


def _frame_index(image) -> int:  # noqa: ANN001 - PIL image
    # write_graylevel_video paints frame i uniformly at grey level 8 * i (10 fps).
    return round(image.getpixel((image.width // 2, image.height // 2))[0] / 8)


def test_frames_at_times_in_any_order(graylevel_video: Path) -> None:
    times = [1.55, 0.0, 2.95, 0.35, 2.0, 0.3, 99.0]
    images = grab_frames(graylevel_video, times)
    # The frame shown at t is the last one starting at or before t; past the end, the last frame.
    assert [_frame_index(image) for image in images] == [15, 0, 29, 3, 20, 3, 29]
    assert images[0].size == (64, 48) and images[0].mode == "RGB"


def test_shrinks_to_max_side(graylevel_video: Path) -> None:
    assert grab_frame(graylevel_video, 1.0, max_side=32).size == (32, 24)


def test_encodes_jpeg_and_png(graylevel_video: Path) -> None:
    image = grab_frame(graylevel_video, 1.0)
    assert image_to_bytes(image, "JPEG")[:3] == b"\xff\xd8\xff"
    assert image_to_bytes(image, "PNG")[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs(tmp_path: Path, graylevel_video: Path) -> None:
    with pytest.raises(VideoError, match="no such video file"):
        grab_frame(tmp_path / "missing.mp4", 0.0)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello", encoding="utf-8")
    with pytest.raises(VideoError, match="notes.mp4"):
        grab_frame(not_video, 0.0)
    with pytest.raises(ValueError, match="finite"):
        grab_frames(graylevel_video, [float("nan")])
