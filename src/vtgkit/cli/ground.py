"""``vtgkit ground VIDEO "query"``: the moments of a video that match a sentence.

Example::

    vtgkit ground match.mp4 "a goal is scored" --top-k 3 --json --cut clips/ --report report.html
"""

from __future__ import annotations

import argparse
from typing import Any

from vtgkit.cli.grounder_options import add_grounder_arguments, add_output_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ground",
        help="find the moments of a video that match a text query",
        description="Find the moments of VIDEO that match QUERY with an R2-Tuning (or FlashVTG) checkpoint. "
                    "Prints a table of the best moments (start, end, score); long videos are processed in "
                    "overlapping windows and merged (docs/grounding.md).",
    )
    parser.add_argument("video", metavar="VIDEO", help="video file")
    parser.add_argument("query", metavar="QUERY", help="sentence describing the moment, in English")
    add_grounder_arguments(parser)
    add_output_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vtgkit.api import check_query, check_video
    from vtgkit.cli.grounder_options import build_grounder, one_line_warnings, print_rows, write_side_outputs
    from vtgkit.grounding_inputs import printable

    check_video(args.video)  # fail on a bad path before loading any weights
    check_query(args.query)
    with one_line_warnings("ground"):
        grounder = build_grounder(args)
        if not grounder.has_moments:
            from vtgkit.errors import ConfigError

            raise ConfigError(f"{grounder.checkpoint} is a highlight-only checkpoint (no moment boundaries): use "
                              "`vtgkit highlights` or `vtgkit summarize`")
        result = grounder.predict(args.video, args.query)
    moments = result.moments[: args.top_k]
    extra = {"duration": result.highlights.duration, "checkpoint": grounder.checkpoint}
    # JSON keeps the query exactly (its encoder escapes control characters); text formats go to terminals.
    shown_query = args.query if args.json else printable(args.query)
    print_rows(args, moments, video=args.video, query=shown_query, extra=extra)
    write_side_outputs(args, "ground", moments, video=args.video, query=args.query, highlights=result.highlights,
                       checkpoint=grounder.checkpoint)
    return 0
