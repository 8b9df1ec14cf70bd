"""FlashVTG inference speed on CPU: queries per second on a 150-s video (75 clips of 2 s), batch 1 and batched.

Times the model forward (input projections → ACA → encoder → pyramid → ASR heads → top-50 moments) on
pre-extracted features in the official QVHighlights SlowFast+CLIP configuration (random weights: the timing does not
depend on the values), plus the official post-processing + NMS per query. Prints the median of ``--repeats`` runs
after a warm-up, and the machine load.

    python benchmarks/bench_flashvtg_inference.py [--threads 2] [--batch-sizes 1 8 32] [--query-tokens 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from vtgkit.evaluation.postprocess import postprocess_boundaries, postprocess_config
from vtgkit.models import create_model
from vtgkit.structures import Batch


def make_batch(batch_size: int, num_clips: int, num_tokens: int, video_dim: int, query_dim: int) -> Batch:
    return Batch(
        video=torch.randn(batch_size, num_clips, video_dim),
        query=torch.randn(batch_size, num_tokens, query_dim),
        video_mask=torch.ones(batch_size, num_clips),
        query_mask=torch.ones(batch_size, num_tokens),
        fps=torch.full((batch_size,), 0.5),
    )


def time_forward(model, batch: Batch, repeats: int, precision: str, postprocess) -> list[float]:
    times = []
    for _ in range(repeats + 1):  # first run is the warm-up
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            output = model(batch)
        if postprocess is not None:
            for row in output.boundaries.float():
                postprocess_boundaries(row, 150.0, postprocess)
        times.append(time.perf_counter() - start)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--clips", type=int, default=75, help="clips of 2 s (75 = a 150-s video)")
    parser.add_argument("--query-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("flashvtg", "qvhighlights").eval()
    config = model.config
    postprocess = postprocess_config("flashvtg", "qvhighlights", with_nms=True)
    print(f"FlashVTG QVHighlights SF+CLIP, {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"video {args.clips} clips x {config.video_dim}, query {args.query_tokens} tokens x {config.query_dim}; "
          f"torch {torch.__version__}, {args.threads} threads")
    print(f"load average before: {os.getloadavg()}")
    print(f"{'precision':>9} {'batch':>5} {'median ms/batch':>16} {'queries/s':>10} {'spread':>7}  "
          f"{'+postproc+NMS q/s':>17}")
    for precision in args.precisions:
        for batch_size in args.batch_sizes:
            batch = make_batch(batch_size, args.clips, args.query_tokens, config.video_dim, config.query_dim)
            forward = time_forward(model, batch, args.repeats, precision, None)
            full = time_forward(model, batch, max(3, args.repeats // 3), precision, postprocess)
            median = statistics.median(forward)
            spread = (max(forward) - min(forward)) / median
            print(f"{precision:>9} {batch_size:>5} {median * 1e3:>16.1f} {batch_size / median:>10.1f} "
                  f"{spread:>6.0%}  {batch_size / statistics.median(full):>17.1f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
