"""Options and output writing shared by ``vtgkit ground``, ``highlights``, ``summarize`` and ``batch``.

Not a subcommand (no ``register``): the subcommand modules call these helpers. Heavy imports stay inside functions.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_CHECKPOINT = "r2tuning-qvhighlights"  # same as vtgkit.api.DEFAULT_CHECKPOINT (kept import-free here)


def add_grounder_arguments(parser: argparse.ArgumentParser, top_k: int = 5) -> None:
    """``--checkpoint``, ``--clip-weights``, ``--device``, ``--top-k``, ``--cache-dir`` and the model settings."""
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help=f"released checkpoint name (default {DEFAULT_CHECKPOINT}; downloaded on first use), "
                            "official R2-Tuning .pth or FlashVTG .ckpt file, or vtgkit checkpoint (folder or "
                            ".safetensors)")
    group.add_argument("--clip-weights", help="CLIP weight file (OpenAI .pt, state dict or .safetensors); default: "
                                              "the checkpoint's CLIP, downloaded into the cache on first use")
    group.add_argument("--slowfast-weights",
                       help="FlashVTG checkpoints: SlowFast R50 8x8 weights (Caffe2 .pkl, PySlowFast/pytorchvideo "
                            ".pyth); default SLOWFAST_8x8_R50.pkl, downloaded into the cache on first use")
    group.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    group.add_argument("--top-k", type=int, default=top_k, help=f"rows to show / cut / plot (default {top_k})")
    group.add_argument("--cache-dir", type=Path,
                       help="cache root: downloads go to checkpoints/ and clip/, per-video features to features/ "
                            "(a later run on the same unchanged file skips decoding). Default: downloads in "
                            "$VTGKIT_CACHE or ~/.cache/vtgkit, features kept in memory only")
    group.add_argument("--benchmark", help="settings (clip rate, window, post-processing) of this benchmark instead "
                                           "of the checkpoint's: qvhighlights, charades_sta, tacos, ego4d_nlq, "
                                           "youtube_highlights, tvsum")
    group.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="fp32 (exact, default) or bf16 autocast (~3x faster CLIP on CPUs with native bf16, ~1%% "
                            "feature error; refused where bf16 would be emulated)")
    group.add_argument("--pipeline", choices=("extraction", "inference-tool"), default="extraction",
                       help="frame sampling: the official feature-extraction tool (what checkpoints were trained "
                            "on, default) or the official single-video tools/inference.py")
    group.add_argument("--window", type=float, metavar="SECONDS",
                       help="window length for long videos (default: the training-video length of the benchmark)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def add_output_arguments(parser: argparse.ArgumentParser, plot: bool = True) -> None:
    """Text format (table, ``--json``, ``--csv``, ``--srt``) and ``--cut``, ``--plot``, ``--report``."""
    group = parser.add_argument_group("output")
    formats = group.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    formats.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    formats.add_argument("--srt", action="store_true", help="print SubRip subtitles (one cue per row)")
    group.add_argument("--cut", type=Path, metavar="DIR", help="write each row's span as a video file in DIR")
    group.add_argument("--cut-mode", choices=("reencode", "copy"), default="reencode",
                       help="reencode: frame-accurate H.264 (default); copy: no re-encoding, cut at keyframes")
    group.add_argument("--overwrite", action="store_true", help="replace existing files written by --cut")
    if plot:
        group.add_argument("--plot", type=Path, metavar="FILE", help="timeline plot (.png or .svg)")
        group.add_argument("--report", type=Path, metavar="FILE", help="self-contained HTML report")


def build_grounder(args: argparse.Namespace) -> Any:
    """The Grounder the common options describe."""
    from vtgkit.api import Grounder

    if args.top_k is not None and args.top_k < 1:
        from vtgkit.errors import ConfigError

        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    return Grounder.from_pretrained(
        args.checkpoint, clip_weights=args.clip_weights, benchmark=args.benchmark, cache_dir=args.cache_dir,
        progress=not args.quiet, device=args.device, precision=args.precision, pipeline=args.pipeline,
        window_seconds=args.window, slowfast_weights=args.slowfast_weights,
        feature_cache_dir=args.cache_dir / "features" if args.cache_dir is not None else None,
    )


@contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Show warnings as ``vtgkit COMMAND: warning: message`` lines (no source line, no file name)."""

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"vtgkit {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def print_rows(args: argparse.Namespace, rows: Sequence[Any], *, video: str, query: str | None,
               extra: dict[str, Any]) -> None:
    """Print moments/segments as a table (default), JSON, CSV or SRT on stdout."""
    from vtgkit.moment_formats import format_csv, format_json, format_srt, format_table

    if args.json:
        text = format_json(rows, video=video, query=query, extra=extra)
    elif args.csv:
        text = format_csv(rows, video=video, query=query)
    elif args.srt:
        text = format_srt(rows, query=query)
    else:
        text = format_table(rows, query=query)
    sys.stdout.write(text)


def write_side_outputs(args: argparse.Namespace, command: str, rows: Sequence[Any], *, video: str, query: str,
                       highlights: Any, checkpoint: str) -> None:
    """``--cut``, ``--plot`` and ``--report`` for ``rows`` (best first); each written path is reported on stderr."""
    from vtgkit.errors import ConfigError

    shown = list(rows)[: args.top_k]
    if args.cut is not None:
        from vtgkit.video_cut import cut_moments

        try:
            clips = cut_moments(video, shown, args.cut, mode=args.cut_mode, overwrite=args.overwrite)
        except FileExistsError as error:
            raise ConfigError(str(error)) from error
        for clip in clips:
            print(f"vtgkit {command}: wrote {clip.path} ({clip.start:.2f}-{clip.end:.2f} s)", file=sys.stderr)
    if getattr(args, "plot", None) is not None:
        from vtgkit.viz.timeline import plot_timeline, save_timeline

        figure = plot_timeline(highlights.saliency, highlights.clip_len, shown, duration=highlights.duration,
                               query=query, top_k=len(shown) or 1)
        try:
            path = save_timeline(args.plot, figure)
        except ValueError as error:
            raise ConfigError(f"--plot: {error}") from error
        print(f"vtgkit {command}: wrote {path}", file=sys.stderr)
    if getattr(args, "report", None) is not None:
        from vtgkit.viz.report import write_report

        path = write_report(args.report, video=video, query=query, moments=shown, saliency=highlights.saliency,
                            clip_len=highlights.clip_len, duration=highlights.duration, top_k=len(shown) or 1,
                            details={"command": command, "checkpoint": checkpoint})
        print(f"vtgkit {command}: wrote {path}", file=sys.stderr)
