"""R²-Tuning inference throughput on a synthetic 150-s QVHighlights video (cached features → moments + saliency).

Shapes are the official checkpoint's (QVHighlights preset, ViT-B/32: T=75 clips at 0.5 fps, K=4 layers, P=50 tokens,
Dv=768; a 20-token query); weights are random (timing does not depend on their values). Prints queries/s for:

* official-style: the reference path with the spatial pooling in the official operation order (queries repeated per
  clip before q_map, keys projected for every token): the closest stand-in for the official code's cost here;
* reference: vtgkit's straightforward path (``model.fast_inference = False``), the parity reference;
* fast: the inference path (R2Block._forward_fast): each distinct video mapped once per batch, video_map GEMMs
  through oneDNN with fused ReLU in row chunks that stay in cache (vtgkit.nn.token_mlp_inference: fp16→fp32 copy
  with the tef, LayerNorm, GEMM, LayerNorm); the v_map key projection and, when it means fewer rows, video_map's
  last Linear folded around the spatial pooling (applied to the T·L pooled rows instead of the T·P tokens); with
  ≥ 2 threads, the per-layer, per-clip-range pieces run on two threads with one intra-op thread each while the
  caller runs the recurrent decoder steps (vtgkit.nn.core_split); pyramid and heads as GEMMs
  (vtgkit.nn.conv_inference);
* bf16 (``--bf16``): the fast path under CPU bf16 autocast;

at batch 1, batched on one video (several queries) and batched on distinct videos, with the max deviation of each
against the reference fp32 outputs. The official code measured ~138 ms per pair at batch 1 fp32 (~7.2 q/s) on an
unloaded AVX-512 machine (notes/cpu-performance.md).

* official (``--official-root``): the official code itself, given vtgkit's weights (run with a Python that has
  nncore, see bench_r2tuning_official.py); batch 1 only, so batched rows loop over the samples;

Usage: python benchmarks/bench_r2tuning_inference.py [--threads 2] [--batch 8] [--repeats 7] [--bf16]
       /tmp/offvenv/bin/python benchmarks/bench_r2tuning_inference.py --official-root /tmp/official_r2
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import types
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


def official_style_pooling(self, v: torch.Tensor, q: torch.Tensor, step: int, query_mask: torch.Tensor | None):
    """The official operation order of the spatial pooling (spec §3.1 step 3): queries repeated for every clip
    (B·T copies) before q_map, keys projected for all B·T·P tokens. Same math as R2Block.pool_tokens."""
    batch, num_clips, num_tokens, dims = v.shape
    flat = v.reshape(batch * num_clips, num_tokens, dims)
    repeated = q.repeat_interleave(num_clips, dim=0)  # (B·T, L, D)
    att = torch.bmm(self.q_map(repeated), self.v_map(flat).transpose(1, 2)) / math.sqrt(dims)
    pooled = torch.bmm(att.softmax(dim=-1), flat) + repeated
    if query_mask is not None:
        pooled = pooled.masked_fill(query_mask.repeat_interleave(num_clips, dim=0)[..., None] == 0, float("-inf"))
    return v[:, :, 0] + self.scale[step].tanh() * pooled.amax(dim=1).view(batch, num_clips, dims)


def official_outputs(official: torch.nn.Module, batch: Batch) -> list[dict]:
    """The official code supports batch 1 at inference: its rows run the samples one by one."""
    from bench_r2tuning_official import official_infer

    return [official_infer(official, Batch(video=batch.video[i: i + 1], query=batch.query[i: i + 1],
                                           video_mask=batch.video_mask[i: i + 1], query_mask=batch.query_mask[i: i + 1],
                                           fps=batch.fps[i: i + 1])) for i in range(batch.batch_size)]


def deviations(out, reference) -> tuple[float, float, float]:  # noqa: ANN001 - GroundingOutput or official dicts
    """Max |Δ| of boundaries (start/end), scores and saliency against the reference fp32 outputs."""
    if isinstance(out, list):  # official: per-sample dicts with 'boundary' (N, 3) and 'saliency' (T,)
        bounds = torch.stack([o["boundary"] for o in out]).float()
        saliency = torch.stack([o["saliency"] for o in out]).float()
    else:
        bounds, saliency = out.boundaries.float(), out.saliency.float()
    expected = reference.boundaries[:, : bounds.size(1)]
    return ((bounds[..., :2] - expected[..., :2]).abs().max().item(),
            (bounds[..., 2] - expected[..., 2]).abs().max().item(), (saliency - reference.saliency).abs().max().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="batch size of the batched rows")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (slow without AVX512-BF16)")
    parser.add_argument("--official-root", help="checkout of yeliudev/R2-Tuning: also time the official code "
                        "(needs nncore: see bench_r2tuning_official.py)")
    parser.add_argument("--paths", default="official-style,reference,fast",
                        help="comma-separated vtgkit paths to time (official-style, reference, fast)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("r2tuning", "qvhighlights").eval()
    official = None
    if args.official_root:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_r2tuning_official import build_official_model

        official = build_official_model(args.official_root, weights_from=model)  # same weights as vtgkit's
    reference_pooling = model.adapter.pool_tokens
    generator = torch.Generator().manual_seed(0)
    distinct = make_batch(args.batch, args.clips, args.tokens, generator)
    # One 150-s video asked `batch` different queries (the common "many queries on my video" case).
    shared = Batch(video=distinct.video[:1].expand_as(distinct.video).clone(), query=distinct.query,
                   video_mask=distinct.video_mask, query_mask=distinct.query_mask, fps=distinct.fps)
    single = Batch(video=distinct.video[:1], query=distinct.query[:1], video_mask=distinct.video_mask[:1],
                   query_mask=distinct.query_mask[:1], fps=distinct.fps[:1])

    def forward(batch: Batch, path: str, bf16: bool):
        if path == "official":
            return official_outputs(official, batch)
        model.fast_inference = path == "fast"
        model.adapter.pool_tokens = (types.MethodType(official_style_pooling, model.adapter)
                                     if path == "official-style" else reference_pooling)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(batch)

    references = {id(b): forward(b, "reference", False) for b in (single, shared, distinct)}
    flags = " ".join(sorted(set(open("/proc/cpuinfo").read().split()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}))
    print(f"load average before: {os.getloadavg()}; torch {torch.__version__}, threads {args.threads}, CPU flags: "
          f"{flags}; allocator {os.environ.get('LD_PRELOAD', 'glibc malloc')}")
    print(f"T={args.clips} P=50 K=4 Dv=768 L={args.tokens}; paths timed interleaved (one call of each in turn, "
          f"{args.repeats} rounds after a warm-up round); the official code runs batched rows one sample at a time")
    header = (f"{'path':<15}{'prec':<6}{'batch':<16}{'ms/batch':>10}{'spread':>8}{'cpu ms':>9}{'q/s':>8}{'vs base':>9}"
              f"{'|Δ| start/end':>15}{'|Δ| score':>11}{'|Δ| saliency':>14}")
    print(header)
    rows = [(path, False) for path in args.paths.split(",")]
    if args.bf16:
        rows.append(("fast", True))
    if official is not None:
        rows.insert(0, ("official", False))
    base_name = "official" if official is not None else "official-style"
    summary: dict[tuple[str, str], float] = {}
    for label, batch in (("1", single), (f"{args.batch} same video", shared), (f"{args.batch} distinct", distinct)):
        for path, bf16 in rows:  # warm-up round (allocations, oneDNN primitive cache)
            forward(batch, path, bf16)
        samples: dict[tuple[str, bool], list[tuple[float, float]]] = {row: [] for row in rows}
        for _ in range(args.repeats):
            for path, bf16 in rows:
                wall, cpu = time.perf_counter(), time.process_time()
                forward(batch, path, bf16)
                samples[(path, bf16)].append((time.perf_counter() - wall, time.process_time() - cpu))
        for path, bf16 in rows:
            walls = [w for w, _ in samples[(path, bf16)]]
            seconds = statistics.median(walls)
            cpu = statistics.median(c for _, c in samples[(path, bf16)])
            spread = (max(walls) - min(walls)) / seconds
            dev_bounds, dev_score, dev_saliency = deviations(forward(batch, path, bf16), references[id(batch)])
            qps = batch.batch_size / seconds
            summary[(path + ("-bf16" if bf16 else ""), label)] = qps
            base = summary.get((base_name, label), qps)
            print(f"{path:<15}{'bf16' if bf16 else 'fp32':<6}{label:<16}{seconds * 1000:>10.1f}{spread:>8.0%}"
                  f"{cpu * 1000:>9.0f}{qps:>8.2f}{qps / base:>8.2f}x{dev_bounds:>15.2e}{dev_score:>11.2e}"
                  f"{dev_saliency:>14.2e}")
    print(f"'vs base' = q/s relative to the {base_name} path at the same batch; |Δ| against vtgkit's reference fp32 "
          "outputs (the official code gets vtgkit's weights)")
    if ("fast", "1") in summary:
        fast_1 = summary[("fast", "1")]
        same, distinct_qps = summary[("fast", f"{args.batch} same video")], summary[("fast", f"{args.batch} distinct")]
        print(f"fast q/s: batch 1 {fast_1:.2f}; {args.batch} same video {same:.2f}; {args.batch} distinct "
              f"{distinct_qps:.2f}"
              + (f"; official batch 1 {summary[('official', '1')]:.2f} → batch-1 speed-up "
                 f"{fast_1 / summary[('official', '1')]:.2f}x" if official is not None else ""))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
