"""``vtgkit evaluate``: the official metrics of a prediction file, or a QVHighlights submission zip.

Examples::

    vtgkit evaluate --dataset qvhighlights --predictions preds.jsonl \\
        --ground-truth highlight_val_release.jsonl --output metrics.json
    vtgkit evaluate --dataset charades_sta --protocol flashvtg --predictions p.jsonl --ground-truth test.jsonl
    vtgkit evaluate --dataset youtube_highlights --predictions p.jsonl \\
        --ground-truth youtube_anno.json --splits youtube_splits.json
    vtgkit evaluate --package --val hl_val.jsonl --test hl_test.jsonl --output submission.zip
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DATASET_CHOICES = ("qvhighlights", "charades_sta", "tacos", "ego4d_nlq", "youtube_highlights", "tvsum")
PROTOCOL_CHOICES = ("moment_detr", "r2tuning", "flashvtg", "lighthouse")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="official metrics of a prediction file (all six benchmarks), or a QVHighlights submission zip",
        description="Evaluate predictions exactly as the official evaluator of the chosen protocol does.",
    )
    parser.add_argument("--dataset", choices=DATASET_CHOICES, help="benchmark")
    parser.add_argument("--predictions", help="prediction JSON-lines file")
    parser.add_argument("--ground-truth", dest="ground_truth", help="annotation file (JSON lines, or R2 anno JSON)")
    parser.add_argument("--splits", help="YouTube/TVSum: R²-Tuning's split table when --ground-truth is its anno JSON")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        help="official evaluator to reproduce (default: moment_detr for qvhighlights, r2tuning otherwise; "
        "YouTube/TVSum: r2tuning or flashvtg)",
    )
    parser.add_argument("--output", help="write the full metrics JSON here (with --package: the zip path)")
    parser.add_argument("--package", action="store_true", help="write the QVHighlights server zip (--val, --test)")
    parser.add_argument("--val", help="with --package: val predictions (hl_val_submission.jsonl)")
    parser.add_argument("--test", help="with --package: test predictions (hl_test_submission.jsonl)")
    parser.add_argument("--quiet", action="store_true", help="do not print the brief table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.package:
        return _package(args)
    missing = [
        flag
        for flag, value in (
            ("--dataset", args.dataset),
            ("--predictions", args.predictions),
            ("--ground-truth", args.ground_truth),
        )
        if not value
    ]
    if missing:
        print(f"vtgkit evaluate: error: {', '.join(missing)} required", file=sys.stderr)
        return 2
    from vtgkit.evaluation import evaluate

    notes: list[str] = []
    metrics = evaluate(
        args.dataset, args.predictions, args.ground_truth, protocol=args.protocol, splits=args.splits, notes=notes
    )
    if args.output:
        from vtgkit.atomic_files import write_text_atomic

        write_text_atomic(args.output, json.dumps(metrics, indent=4))  # never a half-written metrics file
    if not args.quiet:
        print(format_table(metrics))
        for note in _summarise_notes(notes):
            print(f"note: {note}", file=sys.stderr)
        if args.output:
            print(f"full metrics written to {args.output}")
    return 0


def format_table(metrics: dict[str, Any]) -> str:
    """The brief dict (or the per-domain mAPs) as a two-column table."""
    if "brief" in metrics:
        rows = list(metrics["brief"].items())
    else:
        rows = [(f"{domain} mAP", value["mAP"]) for domain, value in metrics.items()]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def _summarise_notes(notes: list[str], limit: int = 5) -> list[str]:
    if len(notes) <= limit:
        return notes
    return notes[:limit] + [f"... and {len(notes) - limit} more notes of the same kinds"]


def _package(args: argparse.Namespace) -> int:
    if not (args.val and args.test and args.output):
        print("vtgkit evaluate --package: error: --val, --test and --output are required", file=sys.stderr)
        return 2
    from vtgkit.evaluation.submission import package_submission

    path = package_submission(args.val, args.test, args.output)
    if not args.quiet:
        print(f"wrote {path} (hl_val_submission.jsonl, hl_test_submission.jsonl)")
    return 0
