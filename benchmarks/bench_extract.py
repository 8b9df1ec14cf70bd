"""Extraction benchmark: whole pipeline vs decoding alone vs the CLIP forward alone, peak memory, cost per hour.

    python benchmarks/bench_extract.py [--seconds 600] [--fps 0.5] [--precision fp32] [--video PATH]

Generates a test video (default 10 min, 30 fps, 640×360 H.264) unless --video is given, builds a ViT-B/32 CLIP with
random weights (the real architecture; timing does not depend on weight values) and runs, each in a fresh process
so that peak RSS belongs to one phase:
  decode    the fps-filter sampler alone (frames/s of sampled frames),
  clip      the CLIP forward alone on the same (pre-decoded) frames, batches of --batch-size,
  pipeline  FeatureExtraction.extract_video: decoding thread + CLIP + streaming fp16 writes to disk.
Peak memory independence from video length: the pipeline also runs on the first fifth of the video.
Prints machine load (uptime) beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(precision: str):  # noqa: ANN202
    import torch

    from vtgkit.features.clip_model import CLIP, CLIPConfig
    from vtgkit.features.encoding import ClipEncoder

    torch.manual_seed(0)
    model = CLIP(CLIPConfig()).eval()  # ViT-B/32, random weights initialised in place (one copy in memory)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02)
    model.requires_grad_(False)
    return ClipEncoder(model, "r2tuning", 4, precision)


def _phase(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from vtgkit.features.decoding import iter_fps_filter_frames
    from vtgkit.features.frame_transforms import clip_input_from_uint8

    video = Path(args.video)
    result: dict = {"phase": args.phase, "threads": torch.get_num_threads()}
    rss_before = _rss_mib()
    if args.phase == "decode":
        start = time.perf_counter()
        count = sum(1 for _ in iter_fps_filter_frames(video, args.fps))
        result.update(frames=count, seconds=time.perf_counter() - start)
    elif args.phase == "clip":
        frames = np.stack(list(iter_fps_filter_frames(video, args.fps)))
        encoder = _model(args.precision)
        encoder.encode_frames(clip_input_from_uint8(frames[: args.batch_size]))  # warm-up
        rss_before = _rss_mib()
        start = time.perf_counter()
        for begin in range(0, len(frames), args.batch_size):
            encoder.encode_frames(clip_input_from_uint8(frames[begin : begin + args.batch_size]))
        result.update(frames=len(frames), seconds=time.perf_counter() - start)
    else:
        from vtgkit.features.extraction import FeatureExtraction
        from vtgkit.features.presets import get_preset

        encoder = _model(args.precision)
        encoder.encode_frames(torch.zeros(args.batch_size, 3, 224, 224))  # same warm-up as the clip phase
        rss_before = _rss_mib()
        with tempfile.TemporaryDirectory() as folder:
            extraction = FeatureExtraction(encoder, get_preset("r2tuning-qvhighlights"), Path(folder), args.fps,
                                           {"bench": True}, batch_size=args.batch_size, progress=False)
            start = time.perf_counter()
            count = extraction.extract_video(video, video.stem, args.fps)
            seconds = time.perf_counter() - start
            feature_file = next(Path(folder).glob("clip_*/*.npy"))
            result.update(frames=count, seconds=seconds, feature_bytes=feature_file.stat().st_size)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["rss_before_mib"] = rss_before
    return result


def _run_phase(phase: str, video: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--video", str(video), "--fps", str(args.fps),
               "--precision", args.precision, "--batch-size", str(args.batch_size)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _video_seconds(video: Path) -> float:
    from vtgkit.features.decoding import probe_video

    return probe_video(video).duration or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--fps", type=float, default=0.5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--video", help="use this video instead of generating one")
    parser.add_argument("--phase", choices=("decode", "clip", "pipeline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args)))
        return

    from vtgkit.features.synthetic_video import write_test_video

    folder = Path(tempfile.mkdtemp(prefix="vtgkit-bench-"))
    if args.video:
        video = Path(args.video)
    else:
        start = time.perf_counter()
        video = write_test_video(folder / "bench.mp4", args.seconds, fps=30, width=640, height=360, gop=250)
        print(f"generated {video} ({args.seconds:g} s, 30 fps, 640x360) in {time.perf_counter() - start:.0f} s")
    short = write_test_video(folder / "short.mp4", max(_video_seconds(video) / 5, 10), fps=30, width=640,
                             height=360, gop=250)
    print("load before:", os.popen("uptime").read().strip())
    results = {phase: _run_phase(phase, video, args) for phase in ("decode", "clip", "pipeline")}
    results["pipeline_short"] = _run_phase("pipeline", short, args)
    print("load after: ", os.popen("uptime").read().strip())
    duration = _video_seconds(video)
    for name, r in results.items():
        rate = r["frames"] / r["seconds"]
        print(f"{name:15s} {r['frames']:5d} frames in {r['seconds']:7.2f} s = {rate:6.2f} frames/s, "
              f"peak RSS {r['peak_rss_mib']:7.1f} MiB (RSS {r['rss_before_mib']:.0f} MiB before the timed part), "
              f"torch threads {r['threads']}")
    pipeline, clip_only = results["pipeline"], results["clip"]
    ratio = (pipeline["frames"] / pipeline["seconds"]) / (clip_only["frames"] / clip_only["seconds"])
    serial = results["decode"]["seconds"] + clip_only["seconds"]
    print(f"pipeline / CLIP-only throughput: {ratio:.1%} (decode + CLIP run one after the other would take "
          f"{serial:.1f} s vs {pipeline['seconds']:.1f} s pipelined)")
    per_hour = pipeline["seconds"] / duration * 3600
    print(f"cost per hour of video ({args.fps:g} fps, {args.precision}): {per_hour / 60:.1f} min of this machine")
    clips_per_hour = args.fps * 3600
    per_clip = pipeline["feature_bytes"] / pipeline["frames"]
    print(f"disk: {per_clip / 1024:.1f} KiB per clip, {per_clip * clips_per_hour / 2**20:.0f} MiB per hour of video")
    print(f"peak RSS: {pipeline['peak_rss_mib']:.0f} MiB for {duration:.0f} s of video vs "
          f"{results['pipeline_short']['peak_rss_mib']:.0f} MiB for {_video_seconds(short):.0f} s")


if __name__ == "__main__":
    main()
