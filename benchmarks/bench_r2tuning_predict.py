"""Time ``vtgkit.predict`` (R²-Tuning) on the oracle's val set, and the data layer alone on long synthetic videos.

    python benchmarks/bench_r2tuning_predict.py [--oracle PATH/TO/reference] [--repeats 2] [--clips 75]

Prints, with the machine load: seconds per query of the whole predict loop (fp32 and bf16, batch size 1 and 4) on
the oracle's tiny videos, and the dataset + collation time per item for a QVHighlights-sized cached video
(``--clips`` x 4 x 50 x 768 float16, ~23 MB at 75 clips) written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vtgkit.data import GroundingDataset, R2TuningFeatureReader, collate_grounding, get_benchmark
from vtgkit.predict import get_predictor, predict
from vtgkit.structures import GroundingSample

DEFAULT_ORACLE = Path(__file__).resolve().parents[2] / "shared" / "oracle" / "r2tuning" / "reference"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def time_predict(oracle: Path, repeats: int) -> None:
    benchmark = get_benchmark("qvhighlights")
    data_root = oracle / "data" / "qvhighlights"
    samples = benchmark.load(data_root / "qvhighlights_val.jsonl")
    model = get_predictor("r2tuning").load_model(oracle / "r2_random.pth", benchmark)
    for precision in ("fp32", "bf16"):
        for batch_size in (1, 4):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                run = predict("r2tuning", model, samples, benchmark, data_root, batch_size=batch_size,
                              precision=precision)
                best = min(best, time.perf_counter() - start)
            assert not run.failures
            print(f"predict {precision} batch {batch_size}: {best / len(samples):.3f} s/query over {len(samples)} "
                  f"queries (best of {repeats}; load {load_average()})")


def time_data_layer(num_clips: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "clip_b32_vid_k4").mkdir()
        (root / "clip_b32_txt_k4").mkdir()
        rng = np.random.default_rng(0)
        np.save(root / "clip_b32_vid_k4" / "v.npy", rng.standard_normal((num_clips, 4, 50, 768)).astype(np.float16))
        np.save(root / "clip_b32_txt_k4" / "1.npy", rng.standard_normal((20, 4, 512)).astype(np.float16))
        sample = GroundingSample(qid=1, vid="v", query="q", duration=num_clips * 2.0, windows=[(10.0, 30.0)],
                                 relevant_clip_ids=[5, 6], saliency_scores=[[1, 2, 3], [4, 4, 4]])
        for mmap in (True, False):
            reader = R2TuningFeatureReader(root, mmap=mmap)
            dataset = GroundingDataset([sample] * 8, reader, get_benchmark("qvhighlights"))
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                collate_grounding([dataset[i] for i in range(len(dataset))])
                best = min(best, time.perf_counter() - start)
            print(f"dataset+collate, {num_clips} clips, mmap={mmap}: {best / len(dataset) * 1000:.1f} ms/item "
                  f"(best of {repeats}; load {load_average()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oracle", type=Path, default=Path(os.environ.get("VTGKIT_ORACLE_R2", DEFAULT_ORACLE)))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clips", type=int, default=75)
    args = parser.parse_args()
    time_data_layer(args.clips, args.repeats)
    if (args.oracle / "r2_random.pth").is_file():
        time_predict(args.oracle, args.repeats)
    else:
        print(f"oracle not found at {args.oracle}: predict timing skipped")


if __name__ == "__main__":
    main()
