"""Write found moments as separate video files with PyAV.

Two modes:

* ``"reencode"`` (default): decode from the keyframe before the start, keep the video frames whose presentation
  time lies in ``[start, end)`` and the audio samples in the same range (cut inside audio frames, so audio is exact
  to the sample), and encode them as H.264 (libx264, yuv420p) + AAC in an ``.mp4``. Frame-accurate, slower.
* ``"copy"``: copy the compressed packets without decoding: fast and lossless, but a stream can only be cut at
  keyframes, so the clip starts at the keyframe at or before ``start`` and ends at the first keyframe at or after
  ``end`` (up to one GOP longer on each side). The times actually written are returned.

Output names are ``<video stem>_<rank>_<start>-<end>s.mp4`` with the stem reduced to letters, digits, ``-`` and
``_`` (:func:`moment_file_name`), so they are safe on every file system and in shell commands. Each file is written
to a temporary name and renamed when complete; existing files are not overwritten unless asked.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vtgkit.atomic_files import atomic_path
from vtgkit.errors import ConfigError, VideoError
from vtgkit.structures import Moment

CutMode = Literal["reencode", "copy"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class CutClip:
    """A written clip: the requested moment and the span actually written (seconds of the source video)."""

    path: Path
    moment: Moment
    start: float
    end: float


def _import_av() -> Any:
    try:
        import av
    except ImportError as error:
        raise ConfigError("cutting clips needs PyAV: pip install 'vtgkit[features]'") from error
    return av


def moment_file_name(video_stem: str, rank: int, moment: Moment, suffix: str = ".mp4") -> str:
    """A file-system-safe name for a moment's clip.

    >>> moment_file_name("my video (final)", 1, Moment(12.5, 30.0, 0.9))
    'my_video_final_01_12.5-30.0s.mp4'
    >>> moment_file_name("../../etc", 2, Moment(0.0, 1.0))
    'etc_02_0.0-1.0s.mp4'
    """
    stem = _UNSAFE.sub("_", video_stem).strip("_-")[:60] or "video"
    return f"{stem}_{rank:02d}_{moment.start:.1f}-{moment.end:.1f}s{suffix}"


def cut_moments(
    video: str | os.PathLike[str],
    moments: Sequence[Moment],
    out_dir: str | os.PathLike[str],
    *,
    mode: CutMode = "reencode",
    audio: bool = True,
    overwrite: bool = False,
    crf: int = 20,
) -> list[CutClip]:
    """Write each moment (ranked in the given order) as a clip in ``out_dir``; returns what was written.

    Args:
        video: source video file.
        moments: spans in seconds; each must have 0 <= start < end.
        out_dir: created if missing.
        mode: ``"reencode"`` (frame-accurate H.264/AAC) or ``"copy"`` (keyframe-aligned, no re-encoding).
        audio: include the first audio stream when there is one.
        overwrite: replace existing files of the same name instead of raising FileExistsError.
        crf: libx264 quality for ``"reencode"`` (lower is better; 18-23 is visually near-lossless to good).
    """
    source = Path(video)
    if not source.is_file():
        raise VideoError(f"{source}: no such video file")
    if mode not in ("reencode", "copy"):
        raise ValueError(f"cut mode must be 'reencode' or 'copy', got {mode!r}")
    for moment in moments:
        if not (math.isfinite(moment.start) and math.isfinite(moment.end) and 0 <= moment.start < moment.end):
            raise ValueError(f"cannot cut moment {moment}: need 0 <= start < end in seconds")
    target_dir = Path(out_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    targets = [target_dir / moment_file_name(source.stem, rank, m) for rank, m in enumerate(moments, start=1)]
    if not overwrite:
        existing = [str(path) for path in targets if path.exists()]
        if existing:
            raise FileExistsError(f"clip files exist already (pass overwrite=True / --overwrite): {existing}")
    clips = []
    for moment, target in zip(moments, targets, strict=True):
        # PyAV writes to a path and picks the container from its ending: hence the ".mp4" temporary name
        with atomic_path(target, suffix=".mp4") as partial:
            if mode == "reencode":
                start, end = _reencode(source, moment, partial, audio, crf)
            else:
                start, end = _copy(source, moment, partial, audio)
        clips.append(CutClip(path=target, moment=moment, start=start, end=end))
    return clips


def _open_input(av: Any, source: Path) -> Any:
    try:
        container = av.open(str(source))
    except av.FFmpegError as error:
        raise VideoError(f"{source}: cannot open as a video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoError(f"{source}: no video stream")
    return container


def _seek_before(container: Any, stream: Any, seconds: float) -> None:
    offset = int(seconds / float(stream.time_base)) if stream.time_base else 0
    container.seek(max(offset, 0), stream=stream, backward=True, any_frame=False)


def _reencode(source: Path, moment: Moment, target: Path, audio: bool, crf: int) -> tuple[float, float]:
    av = _import_av()
    with _open_input(av, source) as inp, av.open(str(target), mode="w") as out:
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if audio and inp.streams.audio else None
        rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
        video_out = out.add_stream("libx264", rate=rate)
        video_out.width = video_in.codec_context.width
        video_out.height = video_in.codec_context.height
        video_out.pix_fmt = "yuv420p"
        video_out.options = {"crf": str(crf), "preset": "veryfast"}
        # Keep the source's time base: frame times survive exactly (1/fps would round them and shift A/V sync).
        video_out.codec_context.time_base = video_in.time_base
        audio_out = None
        if audio_in is not None:
            audio_out = out.add_stream("aac", rate=audio_in.codec_context.sample_rate)
            audio_out.layout = audio_in.codec_context.layout.name
        _seek_before(inp, video_in, moment.start)
        streams = [video_in] + ([audio_in] if audio_in is not None else [])
        first = last = None
        video_done = False
        try:
            for packet in inp.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is video_in:
                        if frame.time is None or frame.time < moment.start or frame.time >= moment.end:
                            video_done = video_done or (frame.time is not None and frame.time >= moment.end)
                            continue
                        first = frame.time if first is None else first
                        last = frame.time
                        frame.pts = round((frame.time - moment.start) / float(video_in.time_base))
                        frame.time_base = video_in.time_base
                        out.mux(video_out.encode(frame))
                    elif audio_out is not None:
                        trimmed = _trim_audio(av, frame, moment)
                        if trimmed is not None:
                            out.mux(audio_out.encode(trimmed))
                if video_done and _past_end(packet, moment, audio_in):
                    break
        except av.FFmpegError as error:
            raise VideoError(f"{source}: decoding failed while cutting {moment} ({error})") from error
        if first is None:
            raise VideoError(f"{source}: no video frames between {moment.start:.3f} s and {moment.end:.3f} s")
        out.mux(video_out.encode())
        if audio_out is not None:
            out.mux(audio_out.encode())
    frame_length = 1.0 / float(rate)
    return float(first), min(float(last) + frame_length, moment.end)


def _past_end(packet: Any, moment: Moment, audio_in: Any) -> bool:
    """Stop demuxing once video is done and (when cutting audio) the audio has reached the end too.

    Streams are interleaved by time in any sane file, so a packet of either stream more than 5 s past the end also
    stops the loop (an audio track that ended early must not make us decode the rest of a long video).
    """
    if audio_in is None or packet.pts is None:
        return audio_in is None
    time = float(packet.pts * packet.time_base)
    return time >= moment.end + 5.0 or (packet.stream is audio_in and time >= moment.end)


def _trim_audio(av: Any, frame: Any, moment: Moment) -> Any:
    """The part of an audio frame inside [start, end), re-timed to the clip; None when nothing is inside."""
    if frame.time is None or frame.samples == 0:
        return None
    rate = frame.sample_rate
    begin = max(0, round((moment.start - frame.time) * rate))
    stop = min(frame.samples, round((moment.end - frame.time) * rate))
    if stop <= begin:
        return None
    samples = frame.to_ndarray()  # planar: (channels, samples); packed: (1, samples * channels)
    width = 1 if frame.format.is_planar else len(frame.layout.channels)
    kept = np.ascontiguousarray(samples[:, begin * width : stop * width])
    trimmed = av.AudioFrame.from_ndarray(kept, format=frame.format.name, layout=frame.layout.name)
    trimmed.sample_rate = rate
    trimmed.time_base = Fraction(1, rate)
    # First kept sample on the clip's timeline (0 when the frame started before the clip).
    trimmed.pts = max(0, round((frame.time - moment.start) * rate) + begin)
    return trimmed


def _copy(source: Path, moment: Moment, target: Path, audio: bool) -> tuple[float, float]:
    av = _import_av()
    with _open_input(av, source) as inp, av.open(str(target), mode="w") as out:
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if audio and inp.streams.audio else None
        outputs = {video_in.index: out.add_stream_from_template(video_in)}
        if audio_in is not None:
            outputs[audio_in.index] = out.add_stream_from_template(audio_in)
        _seek_before(inp, video_in, moment.start)
        start = end = None
        offsets: dict[int, int] = {}
        pending_audio: list[Any] = []
        for packet in inp.demux(*[inp.streams[index] for index in outputs]):
            if packet.dts is None or packet.pts is None:
                continue  # flush packets
            time = float(packet.pts * packet.time_base)
            if packet.stream is video_in:
                if start is None:
                    if not packet.is_keyframe:
                        continue
                    start = time
                elif packet.is_keyframe and time >= moment.end:
                    end = time  # next GOP starts at or after the end: stop on a keyframe boundary
                    break
            elif start is None:
                pending_audio.append(packet)  # audio may come before the first video keyframe in the file
                continue
            _mux_shifted(out, outputs, offsets, packet, start)
            for held in pending_audio:
                if float(held.pts * held.time_base) >= start:
                    _mux_shifted(out, outputs, offsets, held, start)
            pending_audio.clear()
        if start is None:
            raise VideoError(f"{source}: no keyframe found at or before {moment.start:.3f} s")
    if end is None:
        end = _stream_end(source)
    return start, end


def _mux_shifted(out: Any, outputs: dict[int, Any], offsets: dict[int, int], packet: Any, start: float) -> None:
    stream_out = outputs[packet.stream.index]
    if packet.stream.type == "audio" and float(packet.pts * packet.time_base) < start:
        return
    # Shift every stream so that the clip's first video frame is at 0; the offset uses the stream's own time base.
    offset = offsets.setdefault(packet.stream.index, round(start / float(packet.time_base)))
    packet.pts -= offset
    packet.dts -= offset
    packet.stream = stream_out
    out.mux(packet)


def _stream_end(source: Path) -> float:
    av = _import_av()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base)
        return float(container.duration or 0) / 1_000_000
