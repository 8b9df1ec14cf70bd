"""``vtgkit predict``: predictions for every query of an annotation file, as a QVHighlights-format submission."""

from __future__ import annotations

import argparse
import sys
from typing import Any

BENCHMARK_NAMES = ("qvhighlights", "charades_sta", "tacos", "ego4d_nlq", "youtube_highlights", "tvsum")
MODEL_NAMES = ("r2tuning", "flashvtg")
MAX_LISTED_FAILURES = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict moments and clip saliency for every query of an annotation file",
        description="Run a trained model over an annotation file with the benchmark's official settings (clip "
                    "rate, rounding unit, NMS) and write one JSON line per query: qid, query, vid, "
                    "pred_relevant_windows [[start, end, score], ...], pred_saliency_scores.",
    )
    parser.add_argument("--model", required=True, choices=MODEL_NAMES)
    parser.add_argument("--dataset", choices=BENCHMARK_NAMES,
                        help="benchmark whose official settings apply (required for r2tuning; FlashVTG "
                             "checkpoints name their dataset, which is the default)")
    parser.add_argument("--checkpoint", required=True, help="official .pth checkpoint or vtgkit checkpoint")
    parser.add_argument("--data-root", required=True,
                        help="folder holding the cached features (e.g. clip_b32_vid_k4/ and clip_b32_txt_k4/)")
    parser.add_argument("--annotations", required=True, help="annotation file (.jsonl, or the official .json)")
    parser.add_argument("--output", required=True, help="predictions .jsonl (written atomically)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=0, help="data loading processes (default 0)")
    parser.add_argument("--no-nms", action="store_true", help="skip NMS (windows are still clamped and rounded)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16 autocast of the model body (never fp16 on CPU)")
    parser.add_argument("--domain", help="TVSum category / YouTube Highlights domain (official .json files)")
    parser.add_argument("--split", choices=("train", "val"), default="val",
                        help="split of --domain to predict (official .json files; default val)")
    parser.add_argument("--splits", help="TVSum / YouTube splits table (default <name>_splits.json beside the "
                                         "annotations)")
    parser.add_argument("--skip-errors", action="store_true",
                        help="write the predictions that succeeded and list failed queries in OUT.failed.jsonl "
                             "instead of failing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vtgkit.atomic_files import ensure_writable
    from vtgkit.data.benchmarks import get_benchmark
    from vtgkit.errors import ConfigError
    from vtgkit.predict import failures_path, get_predictor, load_samples, predict, write_jsonl

    if args.dataset is None:
        if args.model != "flashvtg":
            raise ConfigError(f"--dataset is required for --model {args.model}")
        from vtgkit.predict_flashvtg import flashvtg_benchmark_name

        args.dataset = flashvtg_benchmark_name(args.checkpoint)
    benchmark = get_benchmark(args.dataset)
    ensure_writable(args.output)  # a read-only output folder is reported before the work, not after it
    samples, skipped = load_samples(benchmark, args.annotations, domain=args.domain, split=args.split,
                                    splits_file=args.splits)
    for reason, count in sorted(skipped.items()):
        print(f"vtgkit predict: left out {count} annotation record(s): {reason}", file=sys.stderr)
    model = get_predictor(args.model).load_model(Path(args.checkpoint), benchmark)
    result = predict(args.model, model, samples, benchmark, args.data_root, device=args.device,
                     batch_size=args.batch_size, num_workers=args.num_workers, nms=not args.no_nms,
                     precision=args.precision, progress=not args.quiet)
    output = Path(args.output)
    side_file = failures_path(output)
    if result.failures:
        counts = result.failure_counts()
        summary = ", ".join(f"{count} {reason}" for reason, count in counts.most_common())
        print(f"vtgkit predict: {len(result.failures)} of {len(samples)} queries could not be predicted ({summary})",
              file=sys.stderr)
        for failure in result.failures[:MAX_LISTED_FAILURES]:
            print(f"  qid {failure.sample.qid!r}: {failure.message}", file=sys.stderr)
        if len(result.failures) > MAX_LISTED_FAILURES:
            print(f"  ... {len(result.failures) - MAX_LISTED_FAILURES} more", file=sys.stderr)
        if not args.skip_errors:
            print("vtgkit predict: no output written; fix the inputs, or pass --skip-errors to write the "
                  f"{len(result.predictions)} predictions and list the failed queries in {side_file}",
                  file=sys.stderr)
            return 1
        write_jsonl(side_file, [failure.to_json() for failure in result.failures])
        print(f"vtgkit predict: failed queries listed in {side_file}", file=sys.stderr)
    elif side_file.exists():
        side_file.unlink()  # a stale list from an earlier run would contradict this complete output
    write_jsonl(output, [prediction.to_json() for prediction in result.predictions])
    print(f"vtgkit predict: wrote {len(result.predictions)} predictions to {output}", file=sys.stderr)
    return 0
