"""``vtgkit train RECIPE [key=value ...] --output DIR [--resume]``: train a model from an official recipe.

Multi-process / multi-machine: launch this same command with torchrun, e.g.
``torchrun --nproc-per-node 2 -m vtgkit.cli.main train RECIPE --output DIR`` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe (official R2-Tuning / FlashVTG settings, or SynthVTG)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", nargs="?", help="recipe name (see --list)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. epochs=5 micro_batch_size=4 model_overrides.adapter_dropout=0.3")
    parser.add_argument("--output", type=Path, help="run folder: config.json, last.pt, best.pt, log.jsonl, "
                        "metrics.json")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output from its last.pt")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads per process (default: PyTorch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to log.jsonl)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vtgkit.errors import ConfigError
    from vtgkit.train.config import apply_overrides
    from vtgkit.train.recipes import get_recipe, list_recipes

    if args.list:
        for name in list_recipes():
            recipe = get_recipe(name)
            print(f"{name:<36} {recipe.model:<9} {recipe.dataset:<19} batch {recipe.batch_size:<4} "
                  f"epochs {recipe.epochs:<4} lr {recipe.lr:g}")
        return 0
    if not args.recipe:
        raise ConfigError("name a recipe (vtgkit train --list shows them)")
    config = apply_overrides(get_recipe(args.recipe), args.overrides)
    if args.print_config:
        print(config.format())
        return 0
    if args.output is None:
        raise ConfigError("--output DIR is required to train")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from vtgkit.train.runner import run_training

    data = _training_data(config, args.output)
    result, metrics = run_training(config, data, args.output, resume=args.resume,
                                   progress_bar=not args.no_progress)
    if metrics is not None:
        brief = metrics.get("brief", metrics)
        print(f"trained {result.global_step} steps ({result.skipped_steps} skipped); best {config.best_metric} = "
              f"{result.best_value} at epoch {result.best_epoch}; held-out metrics in {args.output / 'metrics.json'}")
        print(" ".join(f"{key}={value}" for key, value in brief.items()))
    return 0


def _training_data(config: Any, output: Path) -> Any:
    """Where the recipe's data lives: a SynthVTG folder (built on first use) or a benchmark root."""
    from vtgkit.errors import ConfigError
    from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_config
    from vtgkit.train.runner import TrainingData, flashvtg_source, r2tuning_source

    if config.dataset == "synthvtg":
        from vtgkit.synth import pipeline

        root = Path(config.data_root) if config.data_root else output / "synthvtg"
        summary = pipeline.prepare_synthvtg(root, seed=config.seed)
        print(f"SynthVTG data in {root}: {summary['splits']}")
        benchmark = pipeline.SYNTHVTG_BENCHMARK
        if config.model == "flashvtg":
            source = flashvtg_source(benchmark, pipeline.synthvtg_flashvtg_reader(root), "qvhighlights", config.seed)
            postprocess = PostprocessConfig("flashvtg", unit=2.0, decimals=4)
        else:
            source = r2tuning_source(benchmark, pipeline.synthvtg_feature_reader(root))
            postprocess = PostprocessConfig("r2tuning", unit=benchmark.unit, nms_method="normal", nms_threshold=0.7)
        files = benchmark.annotation_files
        return TrainingData(
            source=source,
            train_file=root / files[config.train_split],
            eval_file=root / files[config.eval_split],
            test_file=root / files["test"],
            postprocess=postprocess,
            evaluator_dataset="qvhighlights",  # QVHighlights-format files, QVHighlights metrics
            # SynthVTG has no window longer than 30 s; the moment_detr evaluator crashes on an empty length bucket,
            # R2-Tuning's evaluator (same metrics) falls back to the full set (spec r2-tuning.md §9).
            evaluator_protocol="r2tuning",
        )
    from vtgkit.data import R2TuningFeatureReader, get_benchmark

    benchmark = get_benchmark(config.dataset)
    if not config.data_root:
        raise ConfigError(f"recipe {config.recipe}: set data_root=PATH (the folder with {benchmark.name}'s "
                          f"annotation files {sorted(benchmark.annotation_files.values())} and feature folders)")
    if config.domain is not None or config.model != "r2tuning":
        raise ConfigError(f"recipe {config.recipe}: training on {benchmark.name} with {config.model} is not wired "
                          "into `vtgkit train` yet (R2-Tuning moment-retrieval benchmarks and SynthVTG are)")
    root = Path(config.data_root)
    files = benchmark.annotation_files
    return TrainingData(
        source=r2tuning_source(benchmark, R2TuningFeatureReader(root)),
        train_file=root / files[config.train_split],
        eval_file=root / files[config.eval_split],
        test_file=None,
        postprocess=postprocess_config("r2tuning", benchmark.name),
        evaluator_dataset=benchmark.name,
    )
