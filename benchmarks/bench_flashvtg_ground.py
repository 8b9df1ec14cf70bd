"""FlashVTG grounder on a generated video: first query (SlowFast + CLIP + model), second query (cached), peak RSS.

Weights are random with the real shapes (timing does not depend on their values): SlowFast R50 8×8, a ViT-B/32-shaped
CLIP and FlashVTG with the QVHighlights SlowFast+CLIP config, saved as an official-layout ``model_best.ckpt``. The
video is generated once and reused by later runs.

    python benchmarks/bench_flashvtg_ground.py                  # 5-minute 640x360 30-fps video
    python benchmarks/bench_flashvtg_ground.py --seconds 3600

Prints wall times, clips, windows, cached feature size, peak RSS (ru_maxrss of this process) and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def prepare_checkpoint(folder: Path) -> Path:
    import argparse as options_namespace

    import torch

    from vtgkit.models.flashvtg import PRESETS, FlashVTG

    path = folder / "flashvtg_qvhighlights_random" / "model_best.ckpt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config = PRESETS["qvhighlights"]
        torch.manual_seed(0)
        opt = options_namespace.Namespace(
            v_feat_dim=config.video_dim, use_tef=True, t_feat_dim=config.query_dim, hidden_dim=config.hidden_dim,
            nheads=config.num_heads, num_dummies=config.num_dummies, t2v_layers=config.num_t2v_layers,
            enc_layers=config.num_encoder_layers, dummy_layers=config.num_dummy_layers,
            dim_feedforward=config.feedforward_dim, kernel_size=config.kernel_size,
            num_conv_layers=config.num_conv_layers, num_mlp_layers=config.num_mlp_layers, clip_length=2,
            max_q_l=config.max_query_len, max_v_l=75, dset_name="hl",
            v_feat_dirs=["slowfast_features", "clip_features"],
            t_feat_dir="clip_text_features")
        torch.save({"model": FlashVTG(config).state_dict(), "opt": opt}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--source-fps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vtgkit_bench_flashvtg_ground"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    video = args.workdir / f"generated_{int(args.seconds)}s_{width}x{height}_{args.source_fps}fps.mp4"

    import torch

    from vtgkit.features.clip_model import CLIPConfig
    from vtgkit.features.slowfast import SlowFast, SlowFastConfig, SlowFastEncoder
    from vtgkit.features.synthetic_video import write_test_video
    from vtgkit.flashvtg_grounding import FlashVTGGrounder
    from vtgkit.models.flashvtg.convert import load_official_checkpoint
    from vtgkit.synth.tiny_clip import build_tiny_clip
    from vtgkit.windowing import plan_windows

    if not video.exists():
        write_test_video(video, args.seconds, fps=args.source_fps, width=width, height=height, gop=args.source_fps * 2)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    checkpoint = prepare_checkpoint(args.workdir)
    before = os.getloadavg()
    started = time.perf_counter()
    model = load_official_checkpoint(checkpoint).model
    grounder = FlashVTGGrounder(model, build_tiny_clip(0, CLIPConfig()), SlowFastEncoder(SlowFast(SlowFastConfig())),
                                checkpoint=str(checkpoint))
    loaded = time.perf_counter()
    moments = grounder.ground(video, "a white box moves across coloured stripes", top_k=5)
    first = time.perf_counter()
    grounder.ground(video, "someone walks into the room", top_k=5)
    second = time.perf_counter()
    features = grounder.encode_video(video)
    windows = len(plan_windows(features.num_clips, grounder.window_clips, grounder.overlap_clips))
    after = os.getloadavg()
    print(f"video: {video.name}, {features.duration:.0f} s, {features.num_clips} clips, {windows} windows of "
          f"{grounder.window_clips} clips; features {features.nbytes / 2**20:.1f} MiB float16")
    print(f"torch threads {args.threads}; build models: {loaded - started:.1f} s")
    print(f"first query (decode + SlowFast + CLIP + model): {first - loaded:.1f} s "
          f"({features.num_clips / (first - loaded):.2f} clips/s)")
    print(f"second query (cached features): {second - first:.2f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB; top moment {moments[0] if moments else None}")
    print(f"load average before {before[0]:.1f} / after {after[0]:.1f} (1 min), {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
