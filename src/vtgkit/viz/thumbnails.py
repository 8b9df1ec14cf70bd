"""Still frames at given times with PyAV, seeking to the keyframe before each time instead of decoding from 0.

For a time ``t`` the frame shown is the last one starting at or before ``t`` (what a player displays at ``t``);
times past the last frame give the last frame. All requested times are served from one open container, in time
order, and a seek is made only when the next time lies beyond the frames already decoded, so grabbing the middle
frames of ten moments of a two-hour video decodes about ten GOPs, not the video.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vtgkit.errors import ConfigError, VideoError

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image


def _import_av() -> Any:
    try:
        import av
    except ImportError as error:
        raise ConfigError("grabbing frames needs PyAV: pip install 'vtgkit[features]'") from error
    return av


def grab_frames(
    video: str | os.PathLike[str], times: Sequence[float], max_side: int | None = 320
) -> list[Image]:
    """One RGB PIL image per requested time (seconds), in the order of ``times``.

    Args:
        video: path of the video file.
        times: seconds from the start of the video; must be finite and >= 0.
        max_side: shrink so that the longer side is at most this many pixels (None keeps the size).

    Raises:
        VideoError: the file is missing, has no video stream or cannot be decoded.
    """
    path = Path(video)
    for value in times:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"frame time must be a finite number of seconds >= 0, got {value}")
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    av = _import_av()
    order = sorted(range(len(times)), key=lambda index: times[index])
    images: list[Any] = [None] * len(times)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            grabber = _FrameGrabber(container, stream)
            for index in order:
                images[index] = _shrink(grabber.frame_at(float(times[index]), path).to_image(), max_side)
    except av.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode video ({error})") from error
    return images


def grab_frame(video: str | os.PathLike[str], time: float, max_side: int | None = 320) -> Image:
    """The frame shown at ``time`` seconds (see :func:`grab_frames`)."""
    return grab_frames(video, [time], max_side)[0]


class _FrameGrabber:
    """Decodes forward from the nearest keyframe; keeps the decoder position between requests."""

    def __init__(self, container: Any, stream: Any) -> None:
        self.container = container
        self.stream = stream
        self.frames: Any = None  # the running decode generator
        self.previous: Any = None  # last decoded frame (starts at or before the last request)
        self.pending: Any = None  # first decoded frame after the last request

    def frame_at(self, time: float, path: Path) -> Any:
        if self.frames is None or self._needs_seek(time):
            self._seek(time)
        while self.pending is None or self._start(self.pending) <= time:
            if self.pending is not None:
                self.previous = self.pending
            self.pending = next(self.frames, None)
            if self.pending is None:  # end of stream: the last frame is shown after it
                break
        frame = self.previous if self.previous is not None else self.pending
        if frame is None:
            raise VideoError(f"{path}: no decodable video frames")
        return frame

    def _needs_seek(self, time: float) -> bool:
        # Seek when the request lies behind us, or more than a few seconds ahead (decoding that far costs more).
        if self.previous is not None and time < self._start(self.previous):
            return True
        ahead = self.pending if self.pending is not None else self.previous
        return ahead is not None and time - self._start(ahead) > 5.0

    def _seek(self, time: float) -> None:
        if self.stream.time_base is None:
            offset = 0
        else:
            offset = max(0, int(time / float(self.stream.time_base)))
        # backward=True lands on the keyframe at or before the offset; decoding forward from there is exact.
        self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        self.frames = iter(self.container.decode(self.stream))
        self.previous = None
        self.pending = next(self.frames, None)
        if self.pending is not None and self._start(self.pending) > time and offset > 0:
            # The demuxer landed after the request (odd index); restart from the beginning.
            self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
            self.frames = iter(self.container.decode(self.stream))
            self.pending = next(self.frames, None)

    @staticmethod
    def _start(frame: Any) -> float:
        return float(frame.time) if frame.time is not None else 0.0


def _shrink(image: Image, max_side: int | None) -> Image:
    if max_side is None or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def image_to_bytes(image: Image, image_format: str = "JPEG", quality: int = 85) -> bytes:
    """Encode a PIL image (JPEG or PNG) to bytes."""
    buffer = io.BytesIO()
    if image_format.upper() == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=image_format.upper())
    return buffer.getvalue()
