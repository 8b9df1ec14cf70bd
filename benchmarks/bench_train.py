"""Training throughput and peak memory of both models at the official shapes, through vtgkit's training step.

Each configuration runs in its own process (so peak RSS is its own): random features in the official layout,
``Trainer.train_step`` (forward, losses, backward, non-finite guard, clipping, AdamW), warm-up steps, then the
median of the timed steps. Reference (notes/cpu-performance.md §6.1): the official R²-Tuning step at B=8, T=75,
L=20 takes ~5.2 s (1.55 samples/s, 3.6 GiB peak RSS) with glibc malloc, fp32.

    python benchmarks/bench_train.py                       # both models, fp32 and bf16, B=8
    python benchmarks/bench_train.py --model r2tuning --precision bf16 --batch-size 8 --steps 5
    python benchmarks/bench_train.py --allocator default      # vtgkit with glibc's default malloc too
    # R²-Tuning vs the official code (a checkout of yeliudev/R2-Tuning; a Python with nncore, see
    # bench_r2tuning_official.py), each in its own process for peak RSS, then interleaved in one process:
    /tmp/offvenv/bin/python benchmarks/bench_train.py --model r2tuning --precision fp32 --official-root /tmp/official_r2

``--impl reference`` times vtgkit's plain module path (``model.fused_training = False``: the token MLP as separate
autograd ops, keys projected for every token). vtgkit's processes set up their allocator as ``vtgkit train`` does
(``--allocator``, default tcmalloc when installed, and OMP_WAIT_POLICY=PASSIVE unless set: vtgkit.train.allocator);
the official step runs with the allocator it has by default (glibc malloc) unless ``--official-allocator
tcmalloc``, and with this script's environment (set OMP_WAIT_POLICY to give it the same policy). The interleaved
comparison runs both in one process with glibc's default malloc and this script's environment: a code-only
comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_r2tuning_official, run as a script

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def r2tuning_batch(batch_size: int, clips: int, tokens: int):  # noqa: ANN201 - vtgkit.structures.Batch
    import torch

    from vtgkit.structures import Batch

    generator = torch.Generator().manual_seed(0)
    video = torch.randn(batch_size, clips, 4, 50, 768, generator=generator).half()  # stored fp16 cache layout
    query = torch.randn(batch_size, tokens, 4, 512, generator=generator).half()
    saliency = torch.zeros(batch_size, clips)
    boundaries = torch.full((batch_size, 1, 2), float("inf"))
    for index in range(batch_size):
        start = int(torch.randint(0, clips - 10, (1,), generator=generator))
        boundaries[index, 0] = torch.tensor([2.0 * start, 2.0 * (start + 10)])
        saliency[index, start : start + 10] = 1.0
    return Batch(video=video, query=query, video_mask=torch.ones(batch_size, clips, dtype=torch.long),
                 query_mask=torch.ones(batch_size, tokens, dtype=torch.long), fps=torch.full((batch_size,), 0.5),
                 boundaries=boundaries, saliency=saliency, pos_clip=saliency.argmax(dim=1, keepdim=True))


def flashvtg_batch(batch_size: int, clips: int, tokens: int, video_dim: int, query_dim: int):  # noqa: ANN201
    import torch

    from vtgkit.structures import Batch

    generator = torch.Generator().manual_seed(0)
    saliency = torch.zeros(batch_size, clips)
    boundaries = torch.full((batch_size, 1, 2), float("inf"))
    positives, negatives = [], []
    for index in range(batch_size):
        start = int(torch.randint(0, clips - 10, (1,), generator=generator))
        boundaries[index, 0] = torch.tensor([2.0 * start, 2.0 * (start + 10)])
        saliency[index, start : start + 10] = torch.arange(1, 11).float()
        positives.append([start + 9, start + 5])
        negatives.append([(start + 12) % clips, (start + 15) % clips])
    return Batch(
        video=torch.randn(batch_size, clips, video_dim, generator=generator),
        query=torch.randn(batch_size, tokens, query_dim, generator=generator),
        video_mask=torch.ones(batch_size, clips), query_mask=torch.ones(batch_size, tokens),
        fps=torch.full((batch_size,), 0.5), boundaries=boundaries, saliency=saliency,
        extras={"vids": [f"v{i}_0.0_150.0" for i in range(batch_size)],
                "saliency_pos_labels": torch.tensor(positives), "saliency_neg_labels": torch.tensor(negatives)},
    )


def measure(args: argparse.Namespace) -> dict[str, float | str | int]:
    """One configuration in this process: returns timings and peak RSS."""
    from vtgkit.train.allocator import setup_allocator

    # vtgkit as `vtgkit train` sets itself up (may restart this process; before torch loads OpenMP)
    allocator = setup_allocator(args.allocator, may_reexec=True) if args.impl != "official" else None
    import torch

    from vtgkit.models import create_config, create_model
    from vtgkit.train.config import TrainConfig
    from vtgkit.train.loop import Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, "qvhighlights")
    if args.impl == "official":
        return measure_official(args, model)
    if args.impl == "reference":
        model.fused_training = False
    if args.model == "r2tuning":
        batch = r2tuning_batch(args.batch_size, args.clips, args.tokens)
        grad_clip, lr = 35.0, 5e-4
    else:
        config = create_config("flashvtg", "qvhighlights")
        batch = flashvtg_batch(args.batch_size, args.clips, args.tokens, config.video_dim, config.query_dim)
        grad_clip, lr = 0.1, 5e-4
    train_config = TrainConfig(recipe="bench", model=args.model, batch_size=args.batch_size, lr=lr,
                               grad_clip=grad_clip, warmup_iters=0, precision=args.precision)
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(model, train_config, [None], lambda items: batch, output, progress_bar=False)
        times, losses = [], []
        for step in range(args.warmup + args.steps):
            started = time.perf_counter()
            values = trainer.train_step([batch])
            if step >= args.warmup:
                times.append(time.perf_counter() - started)
                losses.append(values["total"])
    median = statistics.median(times)
    return {
        "impl": args.impl, "model": args.model, "precision": args.precision, "batch_size": args.batch_size,
        "threads": args.threads,
        "s_per_step": round(median, 3), "spread": round((max(times) - min(times)) / median, 3),
        "samples_per_s": round(args.batch_size / median, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "first_loss": round(losses[0], 5), "skipped": trainer.progress.skipped_steps, "allocator": allocator,
    }


def measure_official(args: argparse.Namespace, model) -> dict[str, float | str | int]:  # noqa: ANN001
    """The official R²-Tuning training iteration on the same batch, starting from the same weights."""
    import torch

    from bench_r2tuning_official import OfficialTrainStep, build_official_model

    if args.model != "r2tuning" or args.precision != "fp32":
        raise SystemExit("--impl official: only r2tuning fp32")
    step = OfficialTrainStep(build_official_model(args.official_root, weights_from=model))
    batch = r2tuning_batch(args.batch_size, args.clips, args.tokens)
    times, losses = [], []
    for index in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = step(batch)
        if index >= args.warmup:
            times.append(time.perf_counter() - started)
            losses.append(loss)
    median = statistics.median(times)
    return {
        "impl": "official", "model": args.model, "precision": args.precision, "batch_size": args.batch_size,
        "threads": args.threads, "s_per_step": round(median, 3), "spread": round((max(times) - min(times)) / median, 3),
        "samples_per_s": round(args.batch_size / median, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "first_loss": round(losses[0], 5), "torch_threads": torch.get_num_threads(),
        "allocator": ("LD_PRELOAD " + os.environ["LD_PRELOAD"] if os.environ.get("LD_PRELOAD") else "glibc malloc")
        + (f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}" if os.environ.get("OMP_WAIT_POLICY") else ""),
    }


def interleaved(args: argparse.Namespace) -> None:
    """vtgkit's step and the official step alternately in one process (same weights at the start, same batch), so
    that load from other processes hits both alike. Prints wall and process-CPU medians per implementation."""
    import torch

    from bench_r2tuning_official import OfficialTrainStep, build_official_model
    from vtgkit.models import create_model
    from vtgkit.train.config import TrainConfig
    from vtgkit.train.loop import Trainer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("r2tuning", "qvhighlights")
    official = OfficialTrainStep(build_official_model(args.official_root, weights_from=model))
    batch = r2tuning_batch(args.batch_size, args.clips, args.tokens)
    train_config = TrainConfig(recipe="bench", model="r2tuning", batch_size=args.batch_size, lr=5e-4,
                               grad_clip=35.0, warmup_iters=0, precision="fp32")
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(model, train_config, [None], lambda items: batch, output, progress_bar=False)
        runs = {"vtgkit": lambda: trainer.train_step([batch]), "official": lambda: official(batch)}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for index in range(args.warmup + args.steps):
            for name, run in runs.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                if index >= args.warmup:
                    samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    medians = {name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
               for name, v in samples.items()}
    for name, (wall, cpu) in medians.items():
        print(f"interleaved {name:<9} {wall:6.2f} s/step wall ({args.batch_size / wall:5.2f} samples/s), "
              f"{cpu:6.2f} s process CPU; steps {[round(w, 2) for w, _ in samples[name]]}")
    print(f"interleaved speed-up vtgkit / official: {medians['official'][0] / medians['vtgkit'][0]:.2f}x wall, "
          f"{medians['official'][1] / medians['vtgkit'][1]:.2f}x CPU (both on glibc's default malloc); "
          f"load {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["r2tuning", "flashvtg", "all"], default="all")
    parser.add_argument("--precision", choices=["fp32", "bf16", "all"], default="all")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--impl", choices=["vtgkit", "reference", "official"], default="vtgkit",
                        help="what --single measures (the parent runs vtgkit, plus official with --official-root)")
    parser.add_argument("--official-root", help="checkout of yeliudev/R2-Tuning: also time the official step")
    parser.add_argument("--allocator", choices=["tcmalloc", "glibc", "default"], default=None,
                        help="vtgkit's allocator, as `vtgkit train --allocator` (default: tcmalloc when installed)")
    parser.add_argument("--official-allocator", choices=["default", "tcmalloc"], default="default",
                        help="tcmalloc: LD_PRELOAD libtcmalloc_minimal in the official step's process")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interleaved", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args)))
        return
    if args.interleaved:
        interleaved(args)
        return
    models = ["r2tuning", "flashvtg"] if args.model == "all" else [args.model]
    precisions = ["fp32", "bf16"] if args.precision == "all" else [args.precision]
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    official_env = dict(env, LD_PRELOAD=TCMALLOC) if args.official_allocator == "tcmalloc" else env
    print(f"load before: {os.getloadavg()}")
    common = ["--batch-size", str(args.batch_size), "--clips", str(args.clips), "--tokens", str(args.tokens),
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if args.allocator:
        common += ["--allocator", args.allocator]
    if args.official_root:
        common += ["--official-root", args.official_root]
    jobs = [(model, precision, "vtgkit") for model in models for precision in precisions]
    if args.official_root and "r2tuning" in models and "fp32" in precisions:
        jobs.append(("r2tuning", "fp32", "official"))
    for model, precision, impl in jobs:
        command = [sys.executable, __file__, "--single", "--model", model, "--precision", precision, "--impl", impl,
                   *common]
        completed = subprocess.run(command, capture_output=True, text=True,
                                   env=official_env if impl == "official" else env)
        if completed.returncode:
            print(f"{model} {precision} {impl}: failed\n{completed.stderr[-2000:]}")
            continue
        print(completed.stdout.strip().splitlines()[-1], f"load {os.getloadavg()[0]:.1f}")
    if args.official_root and "r2tuning" in models and "fp32" in precisions:
        completed = subprocess.run([sys.executable, __file__, "--interleaved", *common], capture_output=True,
                                   text=True, env=env)
        print(completed.stdout.strip() if completed.returncode == 0 else completed.stderr[-2000:])


if __name__ == "__main__":
    main()
