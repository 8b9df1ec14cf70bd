"""Writes frames to a real H.264 MP4 file with PyAV (the ``features`` extra)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from vtgkit.errors import ConfigError


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 12) -> int:
    """Encode uint8 (H, W, 3) RGB frames as H.264 (yuv420p) at a constant ``fps``; returns the frame count.

    A low CRF keeps the saturated colours close to their RGB values after chroma subsampling. The file is written
    to a temporary name and renamed, so an interrupted run never leaves a truncated video under ``path``.
    """
    try:
        import av
    except ImportError as error:
        raise ConfigError("writing SynthVTG videos needs PyAV: pip install 'vtgkit[features]'") from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp.mp4")
    count = 0
    with av.open(str(temp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "stillimage"}
        stream.thread_type = "NONE"
        for frame in frames:
            if count == 0:
                stream.height, stream.width = frame.shape[:2]
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    if count == 0:
        temp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: no frames to write")
    temp.replace(path)
    return count
