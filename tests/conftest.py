"""Shared fixtures: seeded RNG, tiny dimensions, and the locations of the shared reference folders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VTGKIT_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(env_var: str, default: Path) -> Path:
    """A reference folder: from ``env_var`` when set, else its default under ../shared."""
    value = os.environ.get(env_var)
    return Path(value) if value else default


def require_path(path: Path, what: str) -> Path:
    """Skip the calling test with a reason naming the missing file when ``path`` does not exist."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set the environment variable or place ../shared beside the repo)")
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use tiny tensors, which gain nothing from threads; OpenMP spin-waiting makes two threads tens of times
    slower when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def annotations_dir() -> Path:
    return require_path(SHARED / "data" / "annotations", "shared benchmark annotations")


def write_graylevel_video(
    path: Path, seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (64, 48), audio: bool = True
) -> Path:
    """A small H.264 (+ AAC) video whose frame i is uniform grey at level 8 * i, so a frame's time can be read back.

    Needs PyAV (the ``features`` extra); callers skip when it is missing.
    """
    import av

    width, height = size
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": str(fps)}  # a keyframe every second, so seeking has something to skip
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index in range(round(seconds * fps)):
            pixels = np.full((height, width, 3), min(8 * index, 255), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            samples = round(seconds * 16000)
            wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)[None, :]
            chunk = 1024
            for offset in range(0, samples, chunk):
                frame = av.AudioFrame.from_ndarray(wave[:, offset : offset + chunk], format="fltp", layout="mono")
                frame.sample_rate = 16000
                frame.pts = offset
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


@pytest.fixture
def graylevel_video(tmp_path: Path) -> Path:
    """A 3-s 10-fps 64x48 video with audio in tmp_path (see :func:`write_graylevel_video`)."""
    pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to write the test video")
    return write_graylevel_video(tmp_path / "test video.mp4")
