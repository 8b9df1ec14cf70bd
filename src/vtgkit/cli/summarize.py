"""``vtgkit summarize VIDEO --budget SECONDS|PERCENT``: the highest-scoring clips within a duration budget."""

from __future__ import annotations

import argparse
from typing import Any

from vtgkit.cli.grounder_options import add_grounder_arguments, add_output_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "summarize",
        help="pick the best parts of a video within a duration budget",
        description="Score every clip of VIDEO for --query (default: a generic 'most important moments' query) "
                    "and keep the best clips whose total length fits --budget; adjacent clips are joined. Prints "
                    "the segments in time order; --cut writes them as files.",
    )
    parser.add_argument("video", metavar="VIDEO", help="video file")
    parser.add_argument("--budget", default="15%",
                        help="total summary length: seconds (e.g. 60) or a percentage of the video (e.g. 15%%; "
                             "default 15%%, the TVSum/SumMe convention)")
    parser.add_argument("--query", help="what the summary should show (default: a generic query, see "
                                        "vtgkit.api.DEFAULT_SUMMARY_QUERY)")
    add_grounder_arguments(parser, top_k=1000)
    add_output_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vtgkit.api import DEFAULT_SUMMARY_QUERY, check_query, check_video, parse_budget
    from vtgkit.cli.grounder_options import build_grounder, one_line_warnings, print_rows, write_side_outputs
    from vtgkit.errors import ConfigError
    from vtgkit.grounding_inputs import printable
    from vtgkit.summary import select_summary

    check_video(args.video)
    query = DEFAULT_SUMMARY_QUERY if args.query is None else check_query(args.query)
    seconds, fraction = parse_budget(args.budget)
    with one_line_warnings("summarize"):
        grounder = build_grounder(args)
        highlights = grounder.highlights(args.video, query)
    try:
        segments = select_summary(highlights.saliency, highlights.clip_len, seconds, duration=highlights.duration,
                                  fraction=fraction)
    except ValueError as error:
        raise ConfigError(f"{args.video}: cannot summarise: {error}") from error
    total = sum(segment.duration for segment in segments)
    extra = {"duration": highlights.duration, "summary_seconds": total, "checkpoint": grounder.checkpoint}
    print_rows(args, segments, video=args.video, query=query if args.json else printable(query), extra=extra)
    write_side_outputs(args, "summarize", segments, video=args.video, query=query, highlights=highlights,
                       checkpoint=grounder.checkpoint)
    return 0
