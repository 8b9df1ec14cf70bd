"""Generated test videos (moving bars and a box, with noise) written with PyAV, for tests and benchmarks."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from vtgkit.features.decoding import _import_av


def _picture(index: int, width: int, height: int, noise: list[np.ndarray]) -> np.ndarray:
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (x * 255 // max(width - 1, 1) + index * 3) % 256
    image[..., 1] = (y * 255 // max(height - 1, 1) + index * 5) % 256
    image[..., 2] = ((x // 16 + y // 16 + index // 4) % 2) * 200
    size = max(min(width, height) // 6, 2)
    left = (index * 7) % max(width - size, 1)
    top = (index * 3) % max(height - size, 1)
    image[top : top + size, left : left + size] = (255, 255, 255)
    # cycling through a few fixed noise fields keeps generation fast and the encoder busy like real footage
    return np.clip(image.astype(np.int16) + noise[index % len(noise)], 0, 255).astype(np.uint8)


def write_test_video(path: str | Path, seconds: float, fps: int = 30, width: int = 320, height: int = 180,
                     codec: str = "libx264", variable_rate: bool = False, gop: int = 60, seed: int = 0) -> Path:
    """Write an H.264 (yuv420p) video of ``seconds`` at ``fps``.

    With ``variable_rate`` the frame intervals alternate between 1/fps and 2/fps (a variable-frame-rate stream in a
    time base of 1/(fps·100)); the stream then lasts ``seconds`` with fewer frames.
    """
    av = _import_av()
    path = Path(path)
    rng = np.random.default_rng(seed)
    noise = [rng.integers(-6, 7, size=(height, width, 3)).astype(np.int16) for _ in range(7)]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        time_base = Fraction(1, fps * 100)
        stream.codec_context.time_base = time_base
        pts, index = 0, 0
        while pts * time_base < seconds:
            frame = av.VideoFrame.from_ndarray(_picture(index, width, height, noise), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            step = 100 * (1 + index % 2) if variable_rate else 100
            pts += step
            index += 1
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_audio_only(path: str | Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An audio-only file (AAC tone; the container follows the suffix, e.g. ``.m4a``)."""
    av = _import_av()
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = int(seconds * rate)
        tone = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)[None]
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, samples, frame_size):
            chunk = tone[:, start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
