"""Time frame grabbing (thumbnails), clip cutting and the HTML report on a generated video; prints figures.

    python benchmarks/bench_viz_clips.py [--seconds 600] [--fps 30]

Compares seeking to 10 moment middles (what the report does) with decoding the whole video, and cuts one 20-s moment
in both modes. Peak RSS is the process maximum (ru_maxrss) after each step. Note the machine load next to figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from vtgkit.features.synthetic_video import write_test_video
from vtgkit.structures import Moment
from vtgkit.video_cut import cut_moments
from vtgkit.viz.report import build_report
from vtgkit.viz.thumbnails import grab_frames


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: str, function, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    start = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"{label:<44} {time.perf_counter() - start:8.2f} s   peak RSS {_peak_mib():7.1f} MiB")
    return result


def _decode_all(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, video {args.seconds:.0f} s at {args.fps} fps 320x180, GOP 2 s")
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "bench.mp4"
        _timed("write synthetic video", write_test_video, video, args.seconds, fps=args.fps, gop=2 * args.fps)
        rng = np.random.default_rng(0)
        starts = np.sort(rng.uniform(0, args.seconds - 30, size=10))
        moments = [Moment(float(s), float(s) + 20.0, 1.0 - i / 10) for i, s in enumerate(starts)]
        middles = [(m.start + m.end) / 2 for m in moments]
        frames = _timed("decode whole video (baseline)", _decode_all, video)
        print(f"  ({frames} frames)")
        _timed("grab 10 thumbnails by seeking", grab_frames, video, middles)
        _timed("cut one 20-s moment, re-encode H.264", cut_moments, video, moments[:1], Path(folder) / "re")
        _timed("cut one 20-s moment, stream copy", cut_moments, video, moments[:1], Path(folder) / "copy", mode="copy")
        saliency = rng.random(int(args.seconds / 2))
        page = _timed(
            "HTML report (plot + 5 thumbnails)", build_report, video=video, query="benchmark", moments=moments,
            saliency=saliency, clip_len=2.0,
        )
        print(f"  (report {len(page) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
