"""Hostile and unusual video files for tests/robustness/test_videos.py, all generated (PyAV, a few KB to 1 MB).

Each writer takes the target path and returns it. Contents are the moving-bars pictures of
:mod:`vtgkit.features.synthetic_video` unless a case needs something else (a still, a flip test, a long stream).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from vtgkit.features.synthetic_video import write_audio_only, write_test_video

SIZE = (96, 64)  # width, height of the small cases


def _encode(path: Path, images: list[np.ndarray], rate: Fraction | int, *, pix_fmt: str = "yuv420p",
            options: dict[str, str] | None = None, rotation: int | None = None,
            container_options: dict[str, str] | None = None) -> Path:
    """H.264 of ``images`` (RGB uint8) at ``rate`` frames per second, one frame per image."""
    import av

    height, width = images[0].shape[:2]
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"preset": "ultrafast", **(options or {})}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1) / Fraction(rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def bars(count: int, width: int = SIZE[0], height: int = SIZE[1]) -> list[np.ndarray]:
    """Gradients, a checkerboard and a moving box: every frame different, nothing symmetric."""
    x, y = np.arange(width)[None, :], np.arange(height)[:, None]
    images = []
    for index in range(count):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = x * 255 // (width - 1)
        image[..., 1] = y * 255 // (height - 1)
        image[..., 2] = ((x // 16 + y // 16 + index) % 2) * 200
        side = max(min(width, height) // 6, 2)
        left, top = (index * 7) % (width - side), (index * 3) % (height - side)
        image[top : top + side, left : left + side] = 255
        images.append(image)
    return images


def write_good(path: Path, seconds: float = 6.0, **options: object) -> Path:
    """A clean 10-fps H.264 video (``options`` go to :func:`write_test_video`, e.g. ``variable_rate=True``)."""
    return write_test_video(path, seconds, fps=10, width=SIZE[0], height=SIZE[1], gop=20, **options)


def write_truncated(path: Path, *, index_first: bool) -> Path:
    """The first half of a 6-s video. ``index_first``: MKV, whose header comes first and describes all 6 s, so the
    half still opens; otherwise MP4 with the index (``moov``) at the end, which the cut removes."""
    source = write_good(path.with_name(f"whole-{path.stem}{'.mkv' if index_first else '.mp4'}"))
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source.unlink()
    return path


def write_corrupt_mid_stream(path: Path) -> Path:
    """A 6-s MP4 with 2 KB of zeros written over the middle of its media data: the container opens and indexes
    every packet, and the decoder rejects the packets in the damaged range."""
    data = bytearray(write_good(path).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    return path


def write_zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_rotated(path: Path, rotation: int | None, *, flipped_pixels: bool = False) -> Path:
    """Lossless (qp 0, 4:4:4) 3-s, 2-fps bars. ``rotation``: display-matrix rotation (ccw degrees) in the stream's
    side data, as phones write; ``flipped_pixels``: the pictures themselves turned by 180° instead."""
    images = bars(6)
    if flipped_pixels:
        images = [np.ascontiguousarray(image[::-1, ::-1]) for image in images]
    return _encode(path, images, 2, pix_fmt="yuv444p", options={"qp": "0"}, rotation=rotation)


def write_bit_depth(path: Path, bits: int, chroma: str = "444") -> Path:
    """6-s, 2-fps bars in lossless (qp 0) H.264 at ``bits`` (8 or 10) and chroma ``"444"`` or ``"420"``: the
    4:4:4 pair differs only by the bit depth (no chroma subsampling filters in between)."""
    pix_fmt = f"yuv{chroma}p" + ("10le" if bits == 10 else "")
    return _encode(path, bars(12), 2, pix_fmt=pix_fmt, options={"qp": "0"})


def write_4k(path: Path) -> Path:
    """4 s of 3840×2160 bars at 1 fps (4 frames, ~1 MB)."""
    return _encode(path, bars(4, 3840, 2160), 1)


def write_one_frame(path: Path, frame_seconds: float) -> Path:
    """A video of a single frame shown for ``frame_seconds`` (the stream's rate is its inverse)."""
    return _encode(path, bars(1), Fraction(1) / Fraction(frame_seconds).limit_denominator(1000))


def write_png_named_mp4(path: Path) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(bars(1)[0]).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def write_html_named_mp4(path: Path) -> Path:
    """What a failed download often saves under the video's name."""
    path.write_text("<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n")
    return path


def write_zip_named_mp4(path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("video.txt", "not a video " * 100)
    path.write_bytes(buffer.getvalue())
    return path


def write_subtitles_named_mp4(path: Path) -> Path:
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n\n2\n00:00:03,000 --> 00:00:04,000\nworld\n")
    return path


def write_audio_named_mp4(path: Path) -> Path:
    return write_audio_only(path, seconds=3.0)


def write_long_y4m(path: Path, seconds: int, frame_seconds: int = 10, size: int = 16) -> Path:
    """A raw YUV4MPEG2 stream of ``seconds`` (e.g. 36,000 = 10 hours), one ``size``² frame every ``frame_seconds``.

    Written frame by frame from a generator (nothing but one frame in memory): 10 hours at the defaults are
    3,600 frames, 1.4 MB. Each frame has its own grey level and a brighter top-left quarter.
    """
    luma = np.zeros((size, size), np.uint8)
    chroma = np.full(2 * (size // 2) ** 2, 128, np.uint8)
    with path.open("wb") as handle:
        handle.write(f"YUV4MPEG2 W{size} H{size} F1:{frame_seconds} Ip A1:1 C420jpeg\n".encode("ascii"))
        for index in range(seconds // frame_seconds):
            luma[:] = (index * 7) % 256
            luma[: size // 2, : size // 2] = (index * 13) % 256
            handle.write(b"FRAME\n")
            handle.write(luma.tobytes())
            handle.write(chroma.tobytes())
    return path


def write_extraction_clip(path: Path) -> Path:
    """A random CLIP that ``vtgkit extract``'s ViT-B/32 presets accept (224-px frames, patch 32), one block per
    tower, widths of tests/tiny_grounder.py: use ``--layers 2``."""
    from tiny_grounder import TINY_CLIP, write_tiny_clip

    config = dataclasses.replace(TINY_CLIP, image_resolution=224, vision_patch_size=32, vision_layers=1,
                                 transformer_layers=1)
    return write_tiny_clip(path, config)


# --------------------------------------------------------------------------------------------- peak memory (Linux)
def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (VmHWM) to its current size; False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """VmHWM of /proc/self/status in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
