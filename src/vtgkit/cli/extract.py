"""``vtgkit extract``: videos (and an annotation file's queries) → the official feature caches.

Example (R²-Tuning's QVHighlights features, frames kept)::

    vtgkit extract --preset r2tuning-qvhighlights --clip-weights ViT-B-32.pt --annotations anno.jsonl \\
        --save-frames --output data/qvhighlights videos/

FlashVTG's SlowFast+CLIP features (``slowfast_features/``, ``clip_features/``, ``clip_text_features/``)::

    vtgkit extract --preset flashvtg-qvhighlights --clip-weights ViT-B-32.pt \\
        --slowfast-weights SLOWFAST_8x8_R50.pkl --annotations anno.jsonl --output data/qvhighlights videos/
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract CLIP (and SlowFast) features from videos into the official cache layouts",
        description="Decode videos, sample frames as the official tools do, run a frozen CLIP (and, for the "
        "flashvtg-* presets, SlowFast R50 8x8 as HERO_Video_Feature_Extractor does) and write the official feature "
        "caches. Resumable (a rerun skips verified outputs), shardable (--shard i/n); a bad "
        "video is logged to <output>/.vtgkit-extract/failures.*.jsonl and the batch goes on; partly decoded videos "
        "and queries cut to CLIP's 77 tokens are counted and listed in <output>/.vtgkit-extract/warnings.*.jsonl.",
    )
    parser.add_argument("videos", nargs="*", metavar="VIDEO", help="video files or folders of videos")
    parser.add_argument("--output", help="cache root folder (required unless --list-presets)")
    parser.add_argument("--preset", default="r2tuning-qvhighlights",
                        help="official feature set (default r2tuning-qvhighlights); see --list-presets")
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    parser.add_argument("--fps", type=float, help="sampling rate (default: the preset's)")
    parser.add_argument("--arch", help="CLIP arch naming the folders and the download (default: the preset's)")
    parser.add_argument("--clip-weights", help="CLIP weight file (.pt TorchScript/state dict, .safetensors); "
                        "default: download the preset's arch into the cache (~/.cache/vtgkit or $VTGKIT_CACHE)")
    parser.add_argument("--layers", type=int, help="K: keep the last K hidden states (R²-Tuning; default 4)")
    parser.add_argument("--sampler", choices=("fps-filter", "frame-stride"),
                        help="fps-filter = tools/extract_frames.py (default); frame-stride = tools/inference.py")
    parser.add_argument("--annotations", help="annotation file whose queries get features too")
    parser.add_argument("--save-frames", action="store_true", help="also write frames_<size>_<fps>fps/<vid>.npy")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per CLIP forward (default 16)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="fp32 reproduces the official files (default); bf16 (~1%% error) is ~3x faster on "
                        "CPUs with native bf16 (AVX-512 BF16/AMX) and refused on others")
    parser.add_argument("--shard", default="0/1", help="i/n: process every n-th video and query from i (0-based)")
    parser.add_argument("--no-slowfast", action="store_true",
                        help="FlashVTG presets: write only the CLIP part, no SlowFast features")
    parser.add_argument("--slowfast-weights",
                        help="FlashVTG presets: SlowFast R50 8x8 weights (Caffe2 .pkl, PySlowFast/pytorchvideo .pyth); "
                        "default: download SLOWFAST_8x8_R50.pkl into the cache (~/.cache/vtgkit or $VTGKIT_CACHE)")
    parser.add_argument("--clip-len", help="FlashVTG presets: SlowFast seconds per clip, e.g. 2, 1 or 3/2 "
                        "(default: the preset's, or 1/--fps when --fps is given)")
    parser.add_argument("--slowfast-batch-size", type=int, default=4, help="clips per SlowFast forward (default 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _describe_weights(weights: str) -> str:
    from pathlib import Path

    path = Path(weights)
    return f"{path.name}:{path.stat().st_size}" if path.is_file() else weights


def _slowfast_part(args: argparse.Namespace, preset, fps: float | None):  # noqa: ANN001, ANN202
    """(encoder, settings, clip length) of a FlashVTG preset's SlowFast features, or Nones when not wanted."""
    from fractions import Fraction

    from vtgkit.errors import ConfigError
    from vtgkit.features.slowfast.encoder import SlowFastEncoder
    from vtgkit.features.slowfast.sampling import parse_clip_len
    from vtgkit.features.slowfast.weights import DEFAULT_WEIGHTS, load_slowfast

    if preset.layout != "flashvtg" or args.no_slowfast or not args.videos:
        if args.slowfast_weights or args.clip_len:
            raise ConfigError("--slowfast-weights / --clip-len apply to FlashVTG presets with SlowFast features only")
        return None, None, None
    if args.clip_len is not None:
        clip_len = parse_clip_len(args.clip_len)
    elif args.fps is not None:
        clip_len = parse_clip_len(Fraction(1) / Fraction(args.fps).limit_denominator(1000))
    else:
        clip_len = parse_clip_len(Fraction(preset.clip_len).limit_denominator(1000))
    weights = args.slowfast_weights or DEFAULT_WEIGHTS
    encoder = SlowFastEncoder(load_slowfast(weights), batch_size=args.slowfast_batch_size)
    return encoder, {"slowfast_weights": _describe_weights(weights)}, clip_len


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    from vtgkit.errors import ConfigError
    from vtgkit.features.annotation_queries import read_per_video_fps, read_queries
    from vtgkit.features.clip_weights import load_clip
    from vtgkit.features.encoding import ClipEncoder
    from vtgkit.features.extraction import FeatureExtraction, expand_video_paths, parse_shard
    from vtgkit.features.presets import PRESETS, get_preset
    from vtgkit.features.tokenizer import default_tokenizer

    if args.list_presets:
        for name, preset in PRESETS.items():
            rate = "per video" if preset.fps is None else f"{preset.fps:g} fps"
            slowfast = f", slowfast -> {preset.slowfast_dir}/" if preset.slowfast_dir else ""
            print(f"{name:24s} {preset.layout:9s} {preset.arch:15s} {rate:10s} {preset.sampler:13s} "
                  f"video -> {preset.video_dir(preset.fps)}/, text -> {preset.text_dir()}/{slowfast}")
        return 0
    if not args.output:
        raise ConfigError("--output is required: the cache root folder to write into")
    preset = get_preset(args.preset, arch=args.arch, num_layers=args.layers, sampler=args.sampler)
    if not args.videos and not args.annotations:
        raise ConfigError("nothing to do: give VIDEO paths and/or --annotations")
    shard = parse_shard(args.shard)
    fps = args.fps if args.fps is not None else preset.fps
    per_video_fps = None
    if fps is None:
        if not args.annotations:
            raise ConfigError(f"preset {preset.name} samples each video at its own rate: pass --annotations or --fps")
        per_video_fps = read_per_video_fps(args.annotations)
    weights = args.clip_weights or preset.arch
    model = load_clip(weights)
    encoder = ClipEncoder(model, preset.layout, preset.num_layers, args.precision)
    settings = {"preset": preset.name, "arch": preset.arch, "layers": preset.num_layers,
                "weights": _describe_weights(weights), "precision": args.precision}
    slowfast, slowfast_settings, clip_len = _slowfast_part(args, preset, fps)
    extraction = FeatureExtraction(encoder, preset, Path(args.output), fps, settings, per_video_fps,
                                   save_frames=args.save_frames, batch_size=args.batch_size, shard=shard,
                                   progress=not args.no_progress, slowfast=slowfast,
                                   slowfast_settings=slowfast_settings, clip_len=clip_len)
    start = time.perf_counter()
    videos = expand_video_paths(args.videos)
    if videos:
        extraction.run_videos(videos)
    if args.annotations:
        extraction.run_queries(read_queries(args.annotations), default_tokenizer())
    report = extraction.report
    seconds = time.perf_counter() - start
    print(f"videos: {report.done} extracted ({report.frames} frames), {report.skipped} already done (verified); "
          f"queries: {report.queries_done} extracted, {report.queries_skipped} already done; "
          f"{len(report.failures)} failed; {seconds:.1f} s")
    if report.partials_removed:
        print(f"removed {report.partials_removed} partial files left by an interrupted run")
    # Extracted with a caveat (exit code unchanged): counted here, each listed in the warnings log.
    if report.partly_decoded:
        print(f"{report.partly_decoded} videos partly decoded (corrupt packets skipped or the stream ends early; "
              f"features cover what could be decoded), listed in {report.warning_log}")
    if report.queries_cut:
        print(f"{report.queries_cut} queries longer than {report.query_context} tokens were cut (as the official "
              f"tools do), listed in {report.warning_log}")
    if report.manifest_unreadable_lines:
        print(f"{report.manifest_unreadable_lines} malformed or torn manifest lines ignored (the outputs they "
              "described were verified again from their file headers)")
    if report.manifest_torn_line_cut:
        print(f"cut a torn last line (a killed run's) from {extraction.manifest.path}")
    if report.failures:
        print(f"{len(report.failures)} failures, listed in {report.failure_log}", file=sys.stderr)
        return 1
    return 0
