"""SlowFast extraction benchmark: clips/s of decoding alone, the model alone and the whole pipeline; memory; disk.

    python benchmarks/bench_extract_slowfast.py [--seconds 20] [--clip-len 2] [--batch-size 4] [--threads 2]

Generates a test video (default 20 s, 30 fps, 640×360 H.264) unless --video is given, builds SlowFast R50 8×8
with random weights (the real architecture: timing does not depend on weight values) and runs, each in a fresh
process so that peak RSS belongs to one phase:
  decode    HERO's sampler alone: fps=30 → scale → crop 224 → 2-s clips → 32 chosen frames (clips/s),
  model     the SlowFast forward alone on pre-decoded clips (clips/s),
  pipeline  SlowFastEncoder.encode_video: decoding thread + model, float16 rows, written with np.savez like HERO.
Disk: bytes of the .npz per clip and per hour of video. Prints the machine load (uptime) beside the figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _encoder(batch_size: int):  # noqa: ANN202
    import torch

    from vtgkit.features.slowfast.encoder import SlowFastEncoder
    from vtgkit.features.slowfast.model import SlowFast

    torch.manual_seed(0)
    model = SlowFast()
    for name, buffer in model.named_buffers():  # random weights in place; BN variances kept positive
        if name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
        elif buffer.dim() > 1:
            buffer.normal_(0, (1.0 / buffer[0].numel()) ** 0.5)
    return SlowFastEncoder(model, batch_size)


def _phase(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from vtgkit.features.slowfast.sampling import iter_video_clips

    torch.set_num_threads(args.threads)
    clip_len = Fraction(args.clip_len)
    video = Path(args.video)
    result: dict = {"phase": args.phase, "threads": torch.get_num_threads()}
    start = time.perf_counter()
    if args.phase == "decode":
        result["clips"] = sum(1 for _ in iter_video_clips(video, clip_len))
    elif args.phase == "model":
        encoder = _encoder(args.batch_size)
        clips = np.random.default_rng(0).integers(0, 256, (args.batch_size, 32, 3, 224, 224), dtype=np.uint8)
        encoder.encode_clips(clips[:1])  # warm-up (oneDNN primitive creation)
        start = time.perf_counter()
        rounds = max(1, args.model_clips // args.batch_size)
        for _ in range(rounds):
            encoder.encode_clips(clips)
        result["clips"] = rounds * args.batch_size
    else:
        encoder = _encoder(args.batch_size)
        start = time.perf_counter()
        rows = encoder.encode_video(video, clip_len)
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "video.npz"
            np.savez(target, features=rows)
            result["npz_bytes"] = target.stat().st_size
        result["clips"] = len(rows)
    result["seconds"] = time.perf_counter() - start
    result["clips_per_s"] = result["clips"] / result["seconds"]
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def _run_phase(phase: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--video", str(args.video), "--clip-len", args.clip_len,
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--model-clips",
               str(args.model_clips)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clip-len", default="2")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-clips", type=int, default=8, help="clips timed in the model-only phase")
    parser.add_argument("--video", help="use this video instead of generating one")
    parser.add_argument("--phase", choices=("decode", "model", "pipeline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args)))
        return
    from vtgkit.features.synthetic_video import write_test_video

    with tempfile.TemporaryDirectory() as folder:
        if args.video is None:
            args.video = write_test_video(Path(folder) / "bench.mp4", args.seconds, fps=30, width=640, height=360)
        results = {phase: _run_phase(phase, args) for phase in ("decode", "model", "pipeline")}
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    clip_len = float(Fraction(args.clip_len))
    for phase, result in results.items():
        print(f"{phase:9s} {result['clips']:5d} clips in {result['seconds']:7.1f} s = {result['clips_per_s']:6.2f} "
              f"clips/s ({result['clips_per_s'] * clip_len:6.2f} s of video per s), peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB, {result['threads']} threads")
    pipeline = results["pipeline"]
    per_clip = pipeline["npz_bytes"] / pipeline["clips"]
    clips_per_hour = 3600 / clip_len
    print(f"pipeline / model-only throughput: {pipeline['clips_per_s'] / results['model']['clips_per_s']:.0%}")
    print(f"one hour of video: {clips_per_hour:.0f} clips, {clips_per_hour / pipeline['clips_per_s'] / 60:.0f} min "
          f"of extraction here, {per_clip * clips_per_hour / 2**20:.1f} MiB on disk ({per_clip:.0f} B per clip, "
          f"float16 .npz as HERO writes)")
    print(f"load: {load}")


if __name__ == "__main__":
    main()
