"""R²-Tuning inference throughput on a synthetic 150-s QVHighlights video (cached features → moments + saliency).

Shapes are the official checkpoint's (QVHighlights preset, ViT-B/32: T=75 clips at 0.5 fps, K=4 layers, P=50 tokens,
Dv=768; a 20-token query); weights are random (timing does not depend on their values). Prints queries/s for:

* reference: the straightforward path (``model.fast_inference = False``; every op as the official code orders it);
* fast: the inference path (video_map GEMMs through oneDNN with fused ReLU, the v_map key projection folded into the
  queries, q_map once per sample, one fp16→fp32 copy per layer into a buffer that already holds the tef);
* bf16: the fast path under CPU bf16 autocast;

at batch 1 and batched, plus the max deviation of each against the reference fp32 outputs. The official code
measured ~138 ms per pair at batch 1 fp32 on this machine kind (notes/cpu-performance.md), i.e. ~7.2 q/s.

Usage: python benchmarks/bench_r2tuning_inference.py [--threads 2] [--batch 8] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from vtgkit.models import create_model
from vtgkit.structures import Batch

OFFICIAL_MS_PER_QUERY = 138.0


def make_batch(batch_size: int, num_clips: int, num_tokens: int, generator: torch.Generator) -> Batch:
    video = (torch.randn(batch_size, num_clips, 4, 50, 768, generator=generator) * 2).half()
    query = torch.randn(batch_size, num_tokens, 4, 512, generator=generator).half()
    return Batch(video=video, query=query,
                 video_mask=torch.ones(batch_size, num_clips, dtype=torch.long),
                 query_mask=torch.ones(batch_size, num_tokens, dtype=torch.long),
                 fps=torch.full((batch_size,), 0.5))


def median_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    run()  # warm-up (allocations, oneDNN primitive cache)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="batch size of the batched rows")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("r2tuning", "qvhighlights").eval()
    generator = torch.Generator().manual_seed(0)
    batched = make_batch(args.batch, args.clips, args.tokens, generator)
    single = Batch(video=batched.video[:1], query=batched.query[:1], video_mask=batched.video_mask[:1],
                   query_mask=batched.query_mask[:1], fps=batched.fps[:1])

    def forward(batch: Batch, path: str, bf16: bool):
        model.fast_inference = path == "fast"
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(batch)

    reference = forward(batched, "reference", False)
    print(f"machine load (uptime): {os.getloadavg()}; torch {torch.__version__}, threads {args.threads}")
    print(f"T={args.clips} P=50 K=4 Dv=768 L={args.tokens}; official ≈ {OFFICIAL_MS_PER_QUERY:.0f} ms/query "
          f"({1000 / OFFICIAL_MS_PER_QUERY:.1f} q/s) at batch 1 fp32")
    print(f"{'path':<10}{'precision':<11}{'batch':>6}{'ms/batch':>11}{'spread':>8}{'q/s':>8}{'× official':>11}"
          f"{'max |Δ| boundary':>18}{'max |Δ| score':>15}{'max |Δ| saliency':>18}")
    for path, bf16 in (("reference", False), ("fast", False), ("reference", True), ("fast", True)):
        for batch in (single, batched):
            seconds, spread = median_seconds(lambda b=batch, p=path, f=bf16: forward(b, p, f), args.repeats)
            out = forward(batch, path, bf16)
            size = batch.batch_size
            ref_rows = reference.boundaries[:size]
            deviation_boundary = (out.boundaries[..., :2].float() - ref_rows[..., :2]).abs().max().item()
            deviation_score = (out.boundaries[..., 2].float() - ref_rows[..., 2]).abs().max().item()
            deviation_saliency = (out.saliency.float() - reference.saliency[:size]).abs().max().item()
            qps = size / seconds
            print(f"{path:<10}{'bf16' if bf16 else 'fp32':<11}{size:>6}{seconds * 1000:>11.1f}{spread:>8.0%}"
                  f"{qps:>8.1f}{qps * OFFICIAL_MS_PER_QUERY / 1000:>11.2f}{deviation_boundary:>18.2e}"
                  f"{deviation_score:>15.2e}{deviation_saliency:>18.2e}")
    print(f"machine load after: {os.getloadavg()}")
    print("Note: rows are compared position by position after sorting; a near-tie in scores can swap two rows, which "
          "shows up as a large boundary deviation with a tiny score deviation.")


if __name__ == "__main__":
    main()
