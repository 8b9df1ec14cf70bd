"""Streaming video decoding with PyAV: frames come out one at a time, a whole video never sits in memory.

Two samplers, named after what they do, reproduce the two official R²-Tuning paths (spec r2-tuning.md §10.1, §14.1):

* :func:`iter_fps_filter_frames` — the frame-extraction tool (``tools/extract_frames.py``): ffmpeg's ``fps`` filter
  picks frames by timestamp, then ``scale`` (short side → size, bicubic) and ``crop`` (centre); RGB24 uint8. It runs
  the same libavfilter chain as the ffmpeg command line, which reproduces the official frames byte for byte
  (oracle/features/README.md: the yuv→rgb conversion must happen inside the explicit scale and the crop on RGB).
* :func:`iter_frame_stride_frames` — the single-video inference tool (``tools/inference.py``): frame *indices*
  ``min(round(i), n − 1)`` for ``i = 0, stride, 2·stride, … < n`` with ``stride = average fps / fps``; full-size RGB
  frames, to be cropped/resized by :mod:`vtgkit.features.frame_transforms`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vtgkit.errors import ConfigError, VideoError
from vtgkit.features.filter_graph import build_fps_filter_graph

_AV_TIME_BASE = Fraction(1, 1_000_000)


class DamagedVideoWarning(UserWarning):
    """Part of a video could not be read: corrupt packets were skipped, the file ends early, or the stream ends
    before the duration its header declares. The features come from the frames that could be decoded."""


def _is_image_format(format_name: str) -> bool:
    """ffmpeg's still-image demuxers (``png_pipe``, ``jpeg_pipe``, ``webp_pipe``, …, ``image2``): a picture renamed
    to ``.mp4`` opens as a one-frame "video" without a duration."""
    return any(name.endswith("_pipe") or name == "image2" for name in format_name.split(","))


def _import_av():  # noqa: ANN202 - module object
    try:
        import av
    except ImportError as error:
        raise ConfigError("video decoding needs PyAV: pip install 'vtgkit[features]'") from error
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the first video stream (before decoding)."""

    path: Path
    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    num_frames: int  # 0 when the container does not say
    duration: float | None  # seconds, None when unknown
    start_time: int  # container start time in microseconds (ffmpeg's AV_TIME_BASE), 0 when unset


def _open(path: Path):  # noqa: ANN202 - av container
    av = _import_av()
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, expected a video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: cannot open as a video container: {error}") from error


def _video_stream(container, path: Path):  # noqa: ANN001, ANN202
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VideoError(f"{path}: no video stream (streams found: {', '.join(kinds)})")
    if _is_image_format(container.format.name):
        raise VideoError(f"{path}: is a still image ({container.format.name}), not a video")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        raise VideoError(f"{path}: video stream has no frame size (corrupt header?)")
    return stream


def probe_video(path: str | Path) -> VideoInfo:
    """Read the container header of ``path``; raises ``VideoError`` for unreadable, empty or audio-only files."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return VideoInfo(
            path=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            time_base=stream.time_base or Fraction(1, 90000),
            average_rate=stream.average_rate,
            num_frames=int(stream.frames or 0),
            duration=duration,
            start_time=int(container.start_time or 0),
        )


def official_scaled_size(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """``extract_frames.py``'s geometry: short side → ``size`` (long side truncated), centre-crop offsets.

    Returns:
        (scaled_width, scaled_height, crop_x, crop_y).
    """
    # Same float arithmetic as the official tool (int() truncation of w * size / h).
    if width > height:
        scaled_w, scaled_h = int(width * size / height), size
    else:
        scaled_w, scaled_h = size, int(height * size / width)
    return scaled_w, scaled_h, int((scaled_w - size) / 2), int((scaled_h - size) / 2)


def _decode(container, stream, path: Path) -> Iterator:  # noqa: ANN001
    """Decoded frames of ``stream``, going on past damage as the ffmpeg command line (the official tools) does.

    A packet the decoder rejects is skipped (its frames are lost, not the video); a read error ends the input like an
    end of file. What was skipped is reported in one :class:`DamagedVideoWarning`; a ``VideoError`` naming the file
    is raised only when nothing could be decoded.
    """
    av = _import_av()
    packets = container.demux(stream)
    decoded = corrupt = 0
    first_error: Exception | None = None
    read_error: Exception | None = None
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as error:
            read_error = error
            packet = None  # flush the decoder: the frames it holds were decoded from good packets
        try:
            frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
        except av.FFmpegError as error:
            corrupt += 1
            first_error = first_error or error
            frames = []
        for frame in frames:
            decoded += 1
            yield frame
        if read_error is not None:
            break
    problems = []
    if corrupt:
        problems.append(f"{corrupt} corrupt packet(s) skipped (first error: {first_error})")
    if read_error is not None:
        problems.append(f"reading stopped early ({read_error})")
    if problems and not decoded:
        raise VideoError(f"{path}: decoding failed, no frame could be decoded: {'; '.join(problems)}")
    if problems:
        warnings.warn(DamagedVideoWarning(f"{path}: {'; '.join(problems)}; the {decoded} frames that could be "
                                          "decoded are used"), stacklevel=2)


def _warn_if_short(container, stream, end_pts: int | None, fps: float, path: Path) -> None:  # noqa: ANN001
    """Warn when the decoded frames end more than one sampling interval before the declared duration: a truncated
    file whose header still describes the whole video (ffmpeg stops at the cut without an error). The container's
    duration stands in for the stream's only when the video is the container's one stream (audio may be longer)."""
    if end_pts is None or stream.time_base is None:
        return
    if stream.duration is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None and len(container.streams) == 1:
        declared = container.duration / 1_000_000
    else:
        return
    ended = float((end_pts - (stream.start_time or 0)) * stream.time_base)
    if declared - ended > max(1 / fps, 1.0):  # at high rates, 1 s keeps edit-list rounding from warning
        warnings.warn(DamagedVideoWarning(
            f"{path}: the video stream ends at {ended:.2f} s but its header declares {declared:.2f} s (truncated "
            f"file?); features cover the first {ended:.2f} s"), stacklevel=3)


def format_fps(fps: float) -> str:
    """The fps as the official tools write it: Python's ``str(float)`` (0.5 → '0.5', 1 → '1.0')."""
    return str(float(fps))


def iter_fps_filter_frames(path: str | Path, fps: float, size: int = 224) -> Iterator[np.ndarray]:
    """Frames of the frame-extraction tool, one at a time: uint8 (3, size, size) RGB.

    The graph is ``buffer → [autorotate] → fps=F → scale=W:H → crop=size:size:X:Y → format=rgb24 → buffersink``
    with ffmpeg's defaults (``round=near``, ``eof_action=round``, bicubic swscale), fed with the decoder's frames
    (:mod:`vtgkit.features.filter_graph`). Timestamps are shifted by the container start time, as the ffmpeg
    command line does without ``-copyts``.

    Raises:
        VideoError: unreadable/corrupt input, no video stream, a frame-size change mid-stream, or no frame
            sampled (video shorter than what the fps filter needs for one output frame).
    """
    av = _import_av()
    path = Path(path)
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        codec = stream.codec_context
        width, height = codec.width, codec.height
        geometry = official_scaled_size(width, height, size)  # from the coded size, as ffprobe reports it
        time_base = stream.time_base or Fraction(1, 90000)
        offset = round(Fraction(container.start_time or 0) * _AV_TIME_BASE / time_base)
        graph = source = sink = None  # the graph must stay referenced while its filters are used
        count = 0
        last_pts: int | None = None
        end_pts: int | None = None  # end of the latest decoded frame, in stream time-base units

        def drain() -> Iterator[np.ndarray]:
            while True:
                try:
                    frame = sink.pull()
                except (av.BlockingIOError, av.EOFError):
                    return
                yield np.ascontiguousarray(frame.to_ndarray().transpose(2, 0, 1))  # (3, size, size)

        for frame in _decode(container, stream, path):
            if (frame.width, frame.height) != (width, height):
                raise VideoError(
                    f"{path}: frame size changed mid-stream from {width}x{height} to {frame.width}x{frame.height}"
                )
            pts = frame.pts if frame.pts is not None else (last_pts + 1 if last_pts is not None else 0)
            end_pts = max(end_pts or 0, pts + (frame.duration or 0))
            frame.pts = pts - offset
            last_pts = pts
            try:
                if source is None:  # built from the first frame: its display matrix decides autorotation
                    graph, source, sink = build_fps_filter_graph(av, stream, frame, format_fps(fps), geometry, size)
                source.push(frame)
            except av.FFmpegError as error:
                raise VideoError(f"{path}: the frame filter graph failed: {error}") from error
            for image in drain():
                count += 1
                yield image
        if source is not None:
            source.push(None)  # end of stream: the fps filter emits its last frames (eof_action=round)
            for image in drain():
                count += 1
                yield image
        _warn_if_short(container, stream, end_pts, fps, path)
    if count == 0:
        raise VideoError(f"{path}: no frame sampled at {fps} fps (no decodable frame, or the video is shorter "
                         "than the fps filter needs for one output frame)")


def count_video_frames(path: str | Path) -> int:
    """Frames of the first video stream: the container's count, else the number of video packets (as decord)."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        if stream.frames:
            return int(stream.frames)
        av = _import_av()
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.FFmpegError as error:
            raise VideoError(f"{path}: demuxing failed: {error}") from error


def frame_stride_indices(num_frames: int, average_fps: float, fps: float) -> list[int]:
    """Indices of ``tools/inference.py``: ``min(round(i), n − 1)`` for ``i`` in ``np.arange(0, n, avg_fps / fps)``.

    >>> frame_stride_indices(10, 30.0, 6.0)
    [0, 5]
    """
    stride = average_fps / fps
    # Python round (half to even) on numpy's float64 arange, as the official list comprehension does.
    return [min(round(i), num_frames - 1) for i in np.arange(0, num_frames, stride).tolist()]


def iter_frame_stride_frames(path: str | Path, fps: float) -> Iterator[np.ndarray]:
    """Frames of the single-video inference tool, one at a time: uint8 (H, W, 3) RGB at the stored size.

    Decodes sequentially and keeps the frames whose decode index is in :func:`frame_stride_indices` (an index
    listed twice is yielded twice). If the stream ends before an index (the container over-reported its
    frame count), the last decoded frame stands in, as the official ``min(…, n − 1)`` clamp does.
    """
    path = Path(path)
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    info = probe_video(path)
    if not info.average_rate:
        raise VideoError(f"{path}: the stream has no average frame rate; the frame-stride sampler needs one")
    num_frames = count_video_frames(path)
    if num_frames == 0:
        raise VideoError(f"{path}: the video stream has no frames")
    indices = frame_stride_indices(num_frames, float(info.average_rate), fps)
    position = decoded = 0
    last_decoded = None
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        for index, frame in enumerate(_decode(container, stream, path)):
            last_decoded, decoded = frame, index + 1
            if position >= len(indices):
                break
            if indices[position] != index:
                continue
            image = frame.to_ndarray(format="rgb24")  # (H, W, 3)
            while position < len(indices) and indices[position] == index:
                position += 1
                yield image
        if last_decoded is None:
            raise VideoError(f"{path}: no frame could be decoded")
        if position < len(indices):
            warnings.warn(DamagedVideoWarning(
                f"{path}: the stream ended after {decoded} of the {num_frames} frames its header declares "
                f"(truncated file?); the last frame stands in for the {len(indices) - position} samples after it"),
                stacklevel=2)
            image = last_decoded.to_ndarray(format="rgb24")
            for _ in range(position, len(indices)):
                yield image
