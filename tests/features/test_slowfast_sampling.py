"""HERO's SlowFast clip cutting, frame choice and normalisation, worked out by hand."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from vtgkit.errors import ConfigError, VideoError
from vtgkit.features.decoding import VideoInfo
from vtgkit.features.slowfast.sampling import (
    clip_frame_indices,
    hero_clip_rate,
    iter_clips,
    kept_clip_count,
    parse_clip_len,
    slow_pathway_indices,
    slowfast_inputs,
    source_fps,
)


def _info(duration: float | None, frames: int = 100, rate: Fraction | None = Fraction(30000, 1001)) -> VideoInfo:
    return VideoInfo(path=Path("v.mp4"), width=320, height=180, time_base=Fraction(1, 15360), average_rate=rate,
                     num_frames=frames, duration=duration, start_time=0)


def _frames(count: int) -> list[np.ndarray]:
    """Frame i is filled with the value i (mod 256) so that a clip shows which frames it holds."""
    return [np.full((3, 2, 2), i % 256, dtype=np.uint8) for i in range(count)]


def _ids(clip: np.ndarray) -> list[int]:
    return [int(frame[0, 0, 0]) for frame in clip]


def test_frame_indices_for_a_30_fps_source_and_2_s_clips() -> None:
    # window 32·2·30/30 = 64 frames from 0: linspace(0, 63, 32) truncated = 0, 2, ..., 58 (step 63/31), then the
    # last two (60.97, 63) are clamped to the clip's last frame 59.
    expected = [int(i * 63 / 31) for i in range(30)] + [59, 59]
    assert clip_frame_indices(30, 60).tolist() == expected
    assert expected[:4] == [0, 2, 4, 6] and expected[29] == 58


def test_frame_indices_follow_the_source_rate() -> None:
    # 25 fps source: the 64-frame window shrinks to 64·25/30 = 53.33 frames of the 30-fps decode, step 52.33/31.
    assert clip_frame_indices(25, 60).tolist() == [0, 1, 3, 5, 6, 8, 10, 11, 13, 15, 16, 18, 20, 21, 23, 25, 27, 28,
                                                   30, 32, 33, 35, 37, 38, 40, 42, 43, 45, 47, 48, 50, 52]
    one_second = clip_frame_indices(30, 30).tolist()  # 1-s clips (Charades): samples past frame 29 clamp
    assert one_second[14] == 28 and one_second[15:] == [29] * 17


def test_slow_pathway_takes_8_of_32_frames() -> None:
    assert slow_pathway_indices().tolist() == [0, 4, 8, 13, 17, 22, 26, 31]


def test_padding_repeats_the_last_frame_then_the_last_second() -> None:
    # 70 frames, 2-s clips: clip 0 = frames 0..59; frames 60..69 + 20 × frame 69 make the third second, and the
    # missing fourth second repeats that whole third second.
    everything = torch.arange(60)
    clips = list(iter_clips(_frames(70), Fraction(2), everything))
    assert len(clips) == 2
    assert _ids(clips[0]) == list(range(60))
    third_second = list(range(60, 70)) + [69] * 20
    assert _ids(clips[1]) == third_second + third_second


def test_fractional_clip_length_pads_to_its_numerator_in_seconds() -> None:
    # clip_len 3/2: periods of 3 s (90 frames) hold two 45-frame clips; 100 frames → 120 (last frame) → 180.
    clips = list(iter_clips(_frames(100), Fraction(3, 2), torch.arange(45)))
    assert len(clips) == 4
    assert _ids(clips[2]) == list(range(90, 100)) + [99] * 20 + list(range(90, 100)) + [99] * 5
    assert _ids(clips[3])[:15] == [99] * 15


def test_clip_count_is_cut_to_the_duration() -> None:
    clips = list(iter_clips(_frames(200), Fraction(2), torch.arange(60), max_clips=3))
    assert len(clips) == 3
    assert kept_clip_count(_info(150.016667), Fraction(2)) == 76
    assert kept_clip_count(_info(150.0), Fraction(2)) == 75
    assert kept_clip_count(_info(149.9999999), Fraction(2)) == 75  # ffprobe prints 6 decimals: 150.000000
    assert kept_clip_count(_info(150.0, frames=0), Fraction(2)) is None  # no nb_frames (e.g. webm): keep all clips
    assert kept_clip_count(_info(None), Fraction(2)) is None


def test_sampled_frames_of_each_clip() -> None:
    indices = clip_frame_indices(30, 60)
    clips = list(iter_clips(_frames(120), Fraction(2), indices))
    assert [_ids(clip) for clip in clips] == [indices.tolist(), (indices + 60).tolist()]


def test_normalisation_and_pathways() -> None:
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (2, 32, 3, 4, 4), dtype=torch.uint8, generator=generator)
    slow, fast = slowfast_inputs(clips)
    assert fast.shape == (2, 3, 32, 4, 4) and slow.shape == (2, 3, 8, 4, 4) and fast.dtype == torch.float32
    expected = (clips.permute(0, 2, 1, 3, 4).double() / 255 - 0.45) / 0.225
    assert torch.allclose(fast.double(), expected, atol=1e-6)
    assert torch.equal(slow, fast[:, :, [0, 4, 8, 13, 17, 22, 26, 31]])


def test_source_rate_and_clip_length_checks() -> None:
    assert source_fps(_info(10.0)) == 29  # floor(29.97)
    with pytest.raises(VideoError, match="average frame rate"):
        source_fps(_info(10.0, rate=None))
    assert parse_clip_len("3/2") == Fraction(3, 2) and parse_clip_len(2) == 2 and parse_clip_len(1.0) == 1
    for bad in ("0", "x", "1/7"):
        with pytest.raises(ConfigError, match="clip length"):
            parse_clip_len(bad)


def test_hero_clip_rate_for_short_videos() -> None:
    assert hero_clip_rate(_info(150.0), 0.5) == 0.5
    assert hero_clip_rate(_info(2.05), 0.5) == 1.0  # under 1/0.5 + 0.1 s: 2 / int(2.05)
    assert hero_clip_rate(_info(1.5), 0.5) == 2.0  # 2 / max(int(1.5), 1)
    assert hero_clip_rate(_info(1.05), 1.0) == 2.0
    assert hero_clip_rate(_info(1.5, frames=0), 0.5) == 0.5  # ffprobe without nb_frames: duration unknown
