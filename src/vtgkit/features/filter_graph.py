"""The libavfilter graph of R²-Tuning's frame-extraction tool, as the ffmpeg 5.1 command line builds it.

``ffmpeg -i V -filter_complex 'fps=F,scale=W:H,crop=S:S:X:Y' -pix_fmt rgb24 -f rawvideo`` becomes
``buffer → [autorotate] → fps → scale → crop → format=rgb24 → buffersink``. The ffmpeg command line inserts the
autorotate filters itself (``-autorotate`` is on by default) from the stream's display matrix, *before* the
user's filters, while ``extract_frames.py`` computes W×H from ffprobe's coded (unrotated) width and height: a
rotated phone video is therefore turned upright and then scaled to the unrotated geometry. That is the official
behaviour and is reproduced (not checked against an ffmpeg binary: none is available here).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def autorotate_filters(display_matrix: np.ndarray | None) -> list[tuple[str, str | None]]:
    """ffmpeg 5.1's autorotate filters for a 3×3 display matrix (9 int32, row-major), as (filter, args) pairs.

    theta = −(counter-clockwise rotation) in [0, 360): 90 → ``transpose=clock`` (``cclock_flip`` when mirrored),
    180 → ``hflip`` and/or ``vflip`` from the matrix signs, 270 → ``transpose=cclock`` (``clock_flip``), other
    angles → ``rotate``, 0 → ``vflip`` when the matrix flips vertically.

    >>> autorotate_filters(np.array([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30]))  # 90° counter-clockwise
    [('transpose', 'cclock')]
    """
    if display_matrix is None:
        return []
    m = [int(v) for v in display_matrix]
    # av_display_rotation_get: counter-clockwise degrees, −atan2 of the normalised first row
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return []
    rotation = -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))
    theta = -round(rotation)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1.0:
        return [("transpose", "cclock_flip" if m[3] > 0 else "clock")]
    if abs(theta - 180) < 1.0:
        return ([("hflip", None)] if m[0] < 0 else []) + ([("vflip", None)] if m[4] < 0 else [])
    if abs(theta - 270) < 1.0:
        return [("transpose", "clock_flip" if m[3] < 0 else "cclock")]
    if abs(theta) > 1.0:
        return [("rotate", f"{theta:f}*PI/180")]
    return [("vflip", None)] if m[4] < 0 else []


def frame_display_matrix(frame) -> np.ndarray | None:  # noqa: ANN001 - av.VideoFrame
    """The DISPLAYMATRIX side data of a decoded frame (FFmpeg attaches the stream's), or None."""
    for side_data in frame.side_data:
        if side_data.type.name == "DISPLAYMATRIX":
            return np.frombuffer(bytes(side_data), dtype="<i4")[:9]
    return None


def build_fps_filter_graph(av, stream, first_frame, fps: str, geometry: tuple[int, int, int, int],  # noqa: ANN001
                           size: int):  # noqa: ANN202 - (graph, buffer source, buffersink)
    """Configure the official chain for frames like ``first_frame``; returns (graph, source, sink).

    The caller must keep ``graph`` referenced while it uses the filter contexts (freeing it frees them).

    Args:
        fps: the rate exactly as the official tool passes it (``str(float)``).
        geometry: (scaled_w, scaled_h, crop_x, crop_y) from the coded frame size.
    """
    scaled_w, scaled_h, crop_x, crop_y = geometry
    codec = stream.codec_context
    graph = av.filter.Graph()
    source = graph.add(
        "buffer",
        video_size=f"{first_frame.width}x{first_frame.height}",
        pix_fmt=str(int(av.VideoFormat(first_frame.format.name))),
        time_base=str(stream.time_base or Fraction(1, 90000)),
        pixel_aspect=str(stream.sample_aspect_ratio or codec.sample_aspect_ratio or Fraction(0, 1)),
        frame_rate=str(stream.guessed_rate or Fraction(25, 1)),
    )
    chain = [source]
    for name, args in autorotate_filters(frame_display_matrix(first_frame)):
        chain.append(graph.add(name, args))
    chain += [
        graph.add("fps", fps),
        graph.add("scale", f"{scaled_w}:{scaled_h}"),
        graph.add("crop", f"{size}:{size}:{crop_x}:{crop_y}"),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    graph.link_nodes(*chain)
    graph.configure()
    return graph, source, chain[-1]
