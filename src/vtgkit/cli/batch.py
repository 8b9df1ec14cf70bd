"""``vtgkit batch MANIFEST --output results.jsonl``: many (video, query) pairs, resumable.

The manifest is ``.jsonl`` (``{"video": ..., "query": ..., "id": optional}`` per line) or ``.csv`` with those
columns (vtgkit.batch_jobs). Each item writes one result line; a rerun skips items already done, retries failed ones
and redoes a line cut short by an interruption. Items are grouped by video so each video is decoded once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vtgkit.cli.grounder_options import add_grounder_arguments

TASKS = ("ground", "highlights", "summarize")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run ground / highlights / summarize over a manifest of videos and queries (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help=".jsonl or .csv with columns video, query (and id)")
    parser.add_argument("--output", required=True, help="results .jsonl (resumed when it exists)")
    parser.add_argument("--task", choices=TASKS, default="ground",
                        help="ground: top-k moments (default); highlights: per-clip saliency; summarize: segments "
                             "within --budget for the item's query")
    parser.add_argument("--saliency", action="store_true", help="ground: add the per-clip saliency to each line")
    parser.add_argument("--budget", default="15%", help="summarize: seconds or a percentage (default 15%%)")
    add_grounder_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vtgkit.api import parse_budget
    from vtgkit.batch_jobs import BatchItem, read_manifest, run_batch
    from vtgkit.cli.grounder_options import build_grounder, one_line_warnings
    from vtgkit.errors import VTGKitError
    from vtgkit.moment_formats import moments_to_records, saliency_to_records
    from vtgkit.summary import select_summary

    items = read_manifest(args.manifest)
    seconds, fraction = parse_budget(args.budget)

    with one_line_warnings("batch"):
        grounder = build_grounder(args)

        def ground_one(item: BatchItem) -> dict[str, Any]:
            result = grounder.predict(item.video, item.query)
            highlights = result.highlights
            record: dict[str, Any] = {"duration": highlights.duration, "clip_len": highlights.clip_len}
            if args.task == "ground":
                record["moments"] = moments_to_records(result.moments[: args.top_k])
                if args.saliency:
                    record["saliency"] = [float(value) for value in highlights.saliency]
            elif args.task == "highlights":
                record["clips"] = saliency_to_records(highlights.saliency, highlights.clip_len, highlights.duration)
            else:
                try:
                    segments = select_summary(highlights.saliency, highlights.clip_len, seconds,
                                              duration=highlights.duration, fraction=fraction)
                except ValueError as error:
                    raise VTGKitError(f"cannot summarise: {error}") from error
                record["segments"] = moments_to_records(segments)
            return record

        # Bad items (missing video, empty query, ...) become error lines; a bug stops the run with its traceback.
        summary = run_batch(items, ground_one, args.output, progress=not args.quiet, catch=(VTGKitError, OSError))
    print(f"vtgkit batch: {summary.describe()}; results in {args.output}", file=sys.stderr)
    for item_id, message in summary.failures[:10]:
        print(f"  {item_id}: {message}", file=sys.stderr)
    if len(summary.failures) > 10:
        print(f"  ... {len(summary.failures) - 10} more (status 'error' lines in {args.output})", file=sys.stderr)
    return 1 if summary.failed else 0
