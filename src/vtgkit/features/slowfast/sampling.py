"""Clip cutting and pixel preprocessing of HERO_Video_Feature_Extractor's SlowFast path, streamed.

What ``slowfast/extract_feature`` (``video_loader.py``, ``preprocessing.py``, ``extract.py``) does, per video:

1. ffmpeg ``fps=30`` → ``scale`` (short side 224, long side truncated) → ``crop`` 224² centre → rgb24: the same filter
   chain as R²-Tuning's frame-extraction tool, so :func:`vtgkit.features.decoding.iter_fps_filter_frames` is reused.
2. The frames are padded to whole seconds by repeating the last frame, then to a whole number of *periods* by
   repeating the last one-second chunk (a period is ``numerator(clip_len)`` seconds: 2 s for ``--clip_len 2``,
   3 s for ``3/2``), and cut into clips of ``clip_len·30`` frames.
3. When ffprobe reports the stream's ``nb_frames`` and ``duration``, only the first ``ceil(duration / clip_len)``
   clips are kept (``duration`` as ffprobe prints it, 6 decimals); otherwise every clip.
4. Each clip gives 32 frames: ``clamp(linspace(0, 64·fps/30 − 1, 32), 0, clip_frames − 1).long()`` where ``fps`` is
   ``floor(avg_frame_rate)`` of the *source* stream (``DATA.NUM_FRAMES`` 32 × ``SAMPLING_RATE`` 2, rescaled from the
   source rate to the 30 fps the frames were decoded at). For a 30 fps source that is every other frame of the first
   64, clamped to the 60 of a 2-s clip.
5. ``x/255`` then ``(x − 0.45) / (0.225 + 1e-8)`` in float32; the slow pathway takes frames
   ``linspace(0, 31, 8).long()`` = 0, 4, 8, 13, 17, 22, 26, 31 of the fast one.

Memory stays bounded: one period of frames (60 for 2-s clips) is buffered, whatever the video length.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vtgkit.errors import ConfigError, VideoError
from vtgkit.features.decoding import VideoInfo, iter_fps_filter_frames, probe_video

DECODE_FPS = 30  # HERO's --target_framerate default
NUM_FRAMES = 32  # DATA.NUM_FRAMES of SLOWFAST_8x8_R50
SAMPLING_RATE = 2  # DATA.SAMPLING_RATE
ALPHA = 4  # SLOWFAST.ALPHA
CROP_SIZE = 224
MEAN = (0.45, 0.45, 0.45)  # PySlowFast DATA.MEAN / STD, as HERO's Preprocessing("3d") hard-codes them
STD = (0.225, 0.225, 0.225)


def parse_clip_len(value: str | float | Fraction) -> Fraction:
    """``2``, ``"3/2"``, ``1.5`` → an exact Fraction; the clip must hold a whole number of 30-fps frames."""
    try:
        clip_len = Fraction(value).limit_denominator(1000) if isinstance(value, float) else Fraction(value)
    except (ValueError, ZeroDivisionError) as error:
        raise ConfigError(f"clip length {value!r}: expected seconds such as 2, 1 or 3/2") from error
    if clip_len <= 0 or (clip_len * DECODE_FPS).denominator != 1:
        raise ConfigError(f"clip length {value!r}: must be positive and hold a whole number of frames at "
                          f"{DECODE_FPS} fps")
    return clip_len


def source_fps(info: VideoInfo) -> int:
    """``floor(avg_frame_rate)`` of the source stream (HERO's ``info['fps']``)."""
    if not info.average_rate:
        raise VideoError(f"{info.path}: the stream reports no average frame rate (ffprobe avg_frame_rate 0/0); the "
                         "SlowFast sampler rescales its 32×2 frame window by it")
    return math.floor(info.average_rate)


def kept_clip_count(info: VideoInfo, clip_len: Fraction) -> int | None:
    """``ceil(duration / clip_len)`` when the stream reports frames and duration, else None (keep every clip)."""
    if not info.num_frames or info.duration is None or info.duration <= 0:
        return None
    duration = float(f"{info.duration:f}")  # ffprobe prints the stream duration with 6 decimals
    return int(math.ceil(duration / float(clip_len)))


def clip_frame_indices(fps: int, clip_frames: int) -> torch.Tensor:
    """Indices of the 32 frames taken from a clip of ``clip_frames`` 30-fps frames of a ``fps`` source: (32,) int64."""
    # Same arithmetic and dtypes as HERO: python float window, float32 linspace, clamp, truncation. The window starts
    # at 0.0: get_start_end_idx with clip_idx 0 of 1 gives ``delta · 0 / 1``.
    window = NUM_FRAMES * SAMPLING_RATE * fps / DECODE_FPS
    index = torch.linspace(0.0, 0.0 + window - 1, NUM_FRAMES)
    return torch.clamp(index, 0, clip_frames - 1).long()


def slow_pathway_indices(num_frames: int = NUM_FRAMES, alpha: int = ALPHA) -> torch.Tensor:
    """``linspace(0, T − 1, T // α).long()`` (HERO's ``pack_pathway_output``)."""
    return torch.linspace(0, num_frames - 1, num_frames // alpha).long()


def iter_clips(frames: Iterable[np.ndarray], clip_len: Fraction, indices: torch.Tensor,
               max_clips: int | None = None) -> Iterator[np.ndarray]:
    """Cut 30-fps frames (3, S, S) into clips and yield each clip's sampled frames (32, 3, S, S) uint8.

    Padding (step 2 of the module docstring) is applied to the last, incomplete period only; at most ``max_clips``
    clips are yielded.
    """
    clip_frames = int(clip_len * DECODE_FPS)
    period = clip_len.numerator * DECODE_FPS  # a whole number of clips and of seconds
    chosen = indices.tolist()
    buffer: list[np.ndarray] = []
    emitted = 0

    def emit(chunk: list[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal emitted
        for start in range(0, len(chunk), clip_frames):
            if max_clips is not None and emitted >= max_clips:
                return
            clip = chunk[start : start + clip_frames]
            emitted += 1
            yield np.stack([clip[i] for i in chosen])

    for frame in frames:
        buffer.append(frame)
        if len(buffer) == period:
            yield from emit(buffer)
            buffer = []
        if max_clips is not None and emitted >= max_clips:
            return
    if buffer:
        # HERO's _pad_frames: repeat the last frame up to a whole second; _pad_clips: repeat the last second.
        buffer += [buffer[-1]] * (-len(buffer) % DECODE_FPS)
        last_second = buffer[-DECODE_FPS:]
        while len(buffer) < period:
            buffer += last_second
        yield from emit(buffer)


def iter_video_clips(path: str | Path, clip_len: Fraction, size: int = CROP_SIZE) -> Iterator[np.ndarray]:
    """Every clip's 32 sampled frames of one video, uint8 (32, 3, size, size), decoded as HERO's extractor does."""
    info = probe_video(path)
    indices = clip_frame_indices(source_fps(info), int(clip_len * DECODE_FPS))
    count = 0
    for clip in iter_clips(iter_fps_filter_frames(path, DECODE_FPS, size), clip_len, indices,
                           kept_clip_count(info, clip_len)):
        count += 1
        yield clip
    if count == 0:
        raise VideoError(f"{path}: no SlowFast clip (the stream reports a duration of {info.duration} s)")


def hero_clip_rate(info: VideoInfo, fps: float) -> float:
    """The CLIP sampling rate HERO's ``clip/video_loader.py`` uses for one video.

    Videos whose stream duration (with ``nb_frames`` also reported) is under one interval + 0.1 s are sampled at
    ``2 / max(int(duration), 1)`` fps instead of ``fps``, so that they still give frames; others at ``fps``.
    """
    if not info.num_frames or info.duration is None:
        return fps
    duration = float(f"{info.duration:f}")
    if 0 < duration < 1 / fps + 0.1:
        return 2 / max(int(duration), 1)
    return fps


def slowfast_inputs(clips: torch.Tensor, alpha: int = ALPHA) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 clips (B, T, 3, S, S) → normalised float32 (slow (B, 3, T/α, S, S), fast (B, 3, T, S, S))."""
    fast = clips.permute(0, 2, 1, 3, 4).float() / 255.0  # (B, 3, T, S, S)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1, 1)
    fast = (fast - mean) / (std + 1e-8)  # HERO's Normalize adds 1e-8 (in float32 it moves 0.225 by one ulp)
    slow = torch.index_select(fast, 2, slow_pathway_indices(fast.shape[2], alpha))
    return slow, fast
