"""Per-chunk cost of the token MLP's 770-wide input pass: the torch sequence vs vtgkit.nn.fused_rows (numba).

One chunk as vtgkit.nn.token_mlp cuts it at the official shapes: 75 clips × 50 tokens = 3750 rows, 768 fp16 token
values + 2 tef values per row (contiguous tokens, and a layer sliced out of a larger cache as training reads it);
also hidden_backward's N = grad_hᵀ D (256 × 3750 × 770) as a GEMM and as fused_rows.keep_matmul, and the backward of
the pooling's last Linear before the max over queries as GEMMs and as vtgkit.nn.max_linear's sparse updates. One
intra-op thread (training runs one chunk per core). Rounds interleave the variants; the figure is the median over
rounds. Run with the allocator training uses:

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 python benchmarks/bench_fused_rows.py
    ... --threads 2    # also: two chunks at once on two Python threads (the kernels release the GIL)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from vtgkit.nn import fused_rows
from vtgkit.nn.max_linear import linear_max_backward
from vtgkit.nn.token_mlp import _chunk_input, _drop, chunk_generator, keep_mask

EPS = 1e-5


def variants(clips: int, per_clip: int) -> dict[str, Callable[[int], object]]:
    tokens = torch.randn(4 * clips, per_clip, 768).half()
    tef = torch.rand(4 * clips, 2)
    width, rows = 770, clips * per_clip
    gamma, beta = torch.randn(width), torch.randn(width)
    cpu = torch.device("cpu")

    def torch_forward(index: int) -> object:  # token_mlp forward today (first layer's input)
        start = (index % 4) * clips
        x = F.layer_norm(_chunk_input(tokens, tef, start, start + clips, width), [width], gamma, beta, EPS)
        return _drop(x, keep_mask(rows, width, 0.5, chunk_generator(1, index, cpu)))

    def fused_forward(index: int) -> object:
        start = (index % 4) * clips
        mask_bytes = fused_rows.draw_mask_bytes(rows, width, chunk_generator(1, index, cpu))
        return fused_rows.normalize_drop_rows(tokens, tef, start, start + clips, gamma, beta, EPS, mask_bytes)

    def torch_backward_b(index: int) -> object:  # x̂ ⊙ D and D with torch ops
        start = (index % 4) * clips
        mask = keep_mask(rows, width, 0.5, chunk_generator(1, index, cpu))
        x = _chunk_input(tokens, tef, start, start + clips, width)
        normalized = _drop(F.layer_norm(x, [width], None, None, EPS), mask)
        return normalized, mask.bitwise_and(0x3F800000).view(torch.float32)  # 1.0f where kept

    def fused_backward_b(index: int) -> object:
        start = (index % 4) * clips
        mask_bytes = fused_rows.draw_mask_bytes(rows, width, chunk_generator(1, index, cpu))
        return fused_rows.normalized_keep_rows(tokens, tef, start, start + clips, EPS, mask_bytes)

    # training's token layout: one layer of a (B, T, K, P, Dv) cache, reshaped to (B·T, P, Dv) (a strided view)
    cache = torch.randn(4 * clips, 1, 2, per_clip, 768).half()
    layer = cache[:, :, 1].reshape(4 * clips, per_clip, 768)

    def fused_forward_strided(index: int) -> object:
        start = (index % 4) * clips
        mask_bytes = fused_rows.draw_mask_bytes(rows, width, chunk_generator(1, index, cpu))
        return fused_rows.normalize_drop_rows(layer, tef, start, start + clips, gamma, beta, EPS, mask_bytes)

    # N = grad_hᵀ D of hidden_backward: the GEMM with the 0/1 matrix vs the table lookups on the keep bits
    grad_h = torch.randn(rows, 256)
    masks = [fused_rows.draw_mask_bytes(rows, width, chunk_generator(1, index, cpu)) for index in range(4)]
    kept = [fused_rows.normalized_keep_rows(tokens, tef, 0, clips, EPS, mask)[1] for mask in masks]

    def gemm_n(index: int) -> object:
        return torch.mm(grad_h.t(), kept[index % 4])

    def keep_matmul_n(index: int) -> object:
        return fused_rows.keep_matmul(grad_h, masks[index % 4], rows, width)

    # The pooling's last Linear before the max over L = 20 queries (vtgkit.nn.max_linear): its backward from the
    # max's gradient (one non-zero per clip and channel) as the two GEMMs and as the sparse row updates
    pooled = torch.randn(clips, 20, 256)
    weight = torch.randn(256, 256)
    z = pooled @ weight.t()
    tied = z == z.amax(dim=1, keepdim=True)
    grad_z = torch.randn(clips, 1, 256) / tied.sum(1, keepdim=True) * tied

    def linear_gemms(index: int) -> object:
        flat = grad_z.view(-1, 256)
        return flat @ weight, flat.t() @ pooled.view(-1, 256)

    def linear_sparse(index: int) -> object:
        return linear_max_backward(grad_z, pooled, weight)

    return {"torch forward": torch_forward, "fused forward": fused_forward,
            "fused forward, strided tokens": fused_forward_strided,
            "torch backward (x̂ ⊙ D, D)": torch_backward_b, "fused backward (x̂ ⊙ D, D)": fused_backward_b,
            "N = grad_hᵀD: torch.mm": gemm_n, "N = grad_hᵀD: keep_matmul": keep_matmul_n,
            "Linear before max, backward: GEMMs": linear_gemms, "Linear before max, backward: sparse": linear_sparse}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=75, help="clips per chunk (official shapes: 75)")
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2), help="chunks run at once")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    fused_rows.warm_up()
    print(f"fused_rows.warm_up (compile or load from numba's cache): {time.perf_counter() - start:.2f} s")
    runs = variants(args.clips, args.tokens)
    pool = ThreadPoolExecutor(args.threads)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(args.rounds + 2):
        for name, run in runs.items():
            begin, begin_cpu = time.perf_counter(), time.process_time()
            list(pool.map(run, range(args.threads)))
            if round_index >= 2:  # two warm-up rounds
                wall[name].append((time.perf_counter() - begin) * 1e3)
                cpu[name].append((time.process_time() - begin_cpu) * 1e3)
    print(f"{args.clips * args.tokens} rows × 770, {args.threads} chunk(s) at once, medians of {args.rounds} rounds")
    print(f"  {'':34s} {'wall ms':>8s} {'CPU ms':>8s}")
    for name in wall:
        print(f"  {name:34s} {statistics.median(wall[name]):8.2f} {statistics.median(cpu[name]):8.2f}")


if __name__ == "__main__":
    main()
