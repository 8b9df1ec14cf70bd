"""``vtgkit highlights VIDEO "query"``: per-clip highlight scores of a video for a text query."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vtgkit.cli.grounder_options import add_grounder_arguments, add_output_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "highlights",
        help="score every clip of a video for a text query (highlight detection)",
        description="Score every clip of VIDEO (2 s at the QVHighlights rate) for QUERY. Prints the best clips with "
                    "a bar; --json / --csv give every clip (clip, start, end, saliency); --srt, --cut, --plot and "
                    "--report use the --top-k best clips.",
    )
    parser.add_argument("video", metavar="VIDEO", help="video file")
    parser.add_argument("query", metavar="QUERY", help="sentence describing what to look for, in English")
    add_grounder_arguments(parser, top_k=10)
    add_output_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from vtgkit.api import check_query, check_video
    from vtgkit.cli.grounder_options import build_grounder, one_line_warnings, write_side_outputs
    from vtgkit.grounding_inputs import printable
    from vtgkit.moment_formats import format_saliency_csv, format_saliency_table, format_srt, saliency_to_records

    check_video(args.video)
    check_query(args.query)
    with one_line_warnings("highlights"):
        grounder = build_grounder(args)
        highlights = grounder.highlights(args.video, args.query)
    saliency, clip_len, duration = highlights.saliency, highlights.clip_len, highlights.duration
    num_clips = len(highlights.clips())  # clips that start before the end of the video
    top = highlights.top(args.top_k)
    if args.json:
        record = {"video": args.video, "query": args.query, "clip_len": clip_len, "duration": duration,
                  "checkpoint": grounder.checkpoint, "clips": saliency_to_records(saliency[:num_clips], clip_len,
                                                                                  duration)}
        sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    elif args.csv:
        sys.stdout.write(format_saliency_csv(saliency[:num_clips], clip_len, duration))
    elif args.srt:
        sys.stdout.write(format_srt(top, query=printable(args.query)))
    else:
        sys.stdout.write(f"query: {printable(args.query)}\n")  # one line, no terminal control characters
        sys.stdout.write(format_saliency_table(saliency[:num_clips], clip_len, duration, top_k=args.top_k))
    write_side_outputs(args, "highlights", top, video=args.video, query=args.query, highlights=highlights,
                       checkpoint=grounder.checkpoint)
    return 0
