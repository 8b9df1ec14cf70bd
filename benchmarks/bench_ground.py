"""Grounder on a generated long video: first query (decode + CLIP + model), second query (cached), peak RSS.

Weights are random (timing does not depend on their values): a ViT-B/32-shaped CLIP and an R²-Tuning model with the
QVHighlights config, both written to the work folder in vtgkit's formats. The video is generated once (a separate
process, so its memory does not count) at low resolution and reused by later runs.

    python benchmarks/bench_ground.py                       # 1-hour 320x180 5-fps video, fp32
    python benchmarks/bench_ground.py --seconds 600 --precision bf16

Prints wall times, clips, windows, feature cache size, peak RSS (ru_maxrss of this process) and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def generate(path: Path, seconds: float, fps: int, width: int, height: int) -> None:
    from vtgkit.features.synthetic_video import write_test_video

    write_test_video(path, seconds, fps=fps, width=width, height=height, gop=10 * fps)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare_weights(folder: Path) -> tuple[Path, Path]:
    import torch
    from safetensors.torch import save_file

    from vtgkit.features.clip_model import CLIPConfig
    from vtgkit.models import create_model
    from vtgkit.models.r2tuning.convert import save_vtgkit
    from vtgkit.synth.tiny_clip import build_tiny_clip

    clip_path, checkpoint = folder / "clip_vit_b32_random.safetensors", folder / "r2tuning_random"
    if not clip_path.exists():
        clip = build_tiny_clip(0, CLIPConfig())  # CLIPConfig() defaults are ViT-B/32's dimensions
        save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(clip_path))
    if not (checkpoint / "model.safetensors").exists():
        torch.manual_seed(0)
        save_vtgkit(create_model("r2tuning", "qvhighlights"), checkpoint)
    return clip_path, checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--source-fps", type=int, default=5)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vtgkit_bench_ground"))
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    video = args.workdir / f"generated_{int(args.seconds)}s_{width}x{height}_{args.source_fps}fps.mp4"
    if args.generate_only:
        generate(video, args.seconds, args.source_fps, width, height)
        return
    if not video.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate-only", "--seconds", str(args.seconds), "--size",
                        args.size, "--source-fps", str(args.source_fps), "--workdir", str(args.workdir)], check=True)
        print(f"generated {video.name} in {time.perf_counter() - started:.1f} s (not counted)")

    import torch

    torch.set_num_threads(args.threads)
    clip_path, checkpoint = prepare_weights(args.workdir)
    from vtgkit.api import Grounder

    before = os.getloadavg()
    started = time.perf_counter()
    grounder = Grounder.from_pretrained(checkpoint, clip_weights=clip_path, precision=args.precision)
    loaded = time.perf_counter()
    moments = grounder.ground(video, "a white box moves across coloured stripes", top_k=5)
    first = time.perf_counter()
    rss_first = peak_rss_mib()
    grounder.ground(video, "someone walks into the room", top_k=5)
    second = time.perf_counter()
    features = grounder.encode_video(video)
    windows = len(__import__("vtgkit.windowing", fromlist=["plan_windows"]).plan_windows(
        features.num_clips, grounder.window_clips, grounder.overlap_clips))
    after = os.getloadavg()
    print(f"video: {video.name}, {features.duration:.0f} s, {features.num_clips} clips, {windows} windows of "
          f"{grounder.window_clips} clips; features {features.nbytes / 2**20:.0f} MiB float16")
    print(f"precision {args.precision}, torch threads {args.threads}")
    print(f"load checkpoint + CLIP: {loaded - started:.1f} s")
    print(f"first query (decode + CLIP + model): {first - loaded:.1f} s; peak RSS so far {rss_first:.0f} MiB")
    print(f"second query (cached features): {second - first:.2f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB; top moment {moments[0] if moments else None}")
    print(f"load average before {before[0]:.1f} / after {after[0]:.1f} (1 min), {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
