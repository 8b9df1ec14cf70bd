"""``vtgkit train RECIPE [key=value ...] --output DIR [--resume]``: train a model from an official recipe.

Benchmarks: ``data_root=PATH`` is the folder with the official feature folders and annotation files, e.g.
``vtgkit train flashvtg-qvhighlights data_root=/data/qvhighlights --output runs/fv-qv`` reads
slowfast_features/, clip_features/, clip_text_features/ and highlight_{train,val}_release.jsonl;
``vtgkit train r2tuning-tvsum_bk data_root=/data/tvsum --output runs/r2-bk`` reads clip_b32_vid_k4/,
clip_b32_txt_k4/, tvsum_anno.json and tvsum_splits.json. Other file names: train_annotations=, eval_annotations=,
test_annotations=, splits_file= (relative to data_root or absolute). --print-config shows every setting.

Multi-process / multi-machine: launch this same command with torchrun, e.g.
``torchrun --nproc-per-node 2 -m vtgkit.cli.main train RECIPE --output DIR`` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
import os
import sys
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
    parser.add_argument("--allocator", choices=["tcmalloc", "glibc", "default"], default=None,
                        help="memory allocator: tcmalloc when installed (the command restarts itself with it "
                        "preloaded; else tuned glibc malloc), glibc (mmap / trim thresholds raised), default "
                        "(untouched, OMP_WAIT_POLICY too; the others set it to PASSIVE unless set); default: "
                        "$VTGKIT_ALLOCATOR or tcmalloc (vtgkit.train.allocator)")
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
    from vtgkit.train.allocator import setup_allocator

    # Step temporaries are tens of MB: an allocator that keeps freed memory avoids page-faulting them every step.
    print(f"allocator: {setup_allocator(args.allocator, may_reexec=_is_cli_process())}", file=sys.stderr)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from vtgkit.train.runner import run_training

    data = _training_data(config, args.output)
    result, metrics = run_training(config, data, args.output, resume=args.resume,
                                   progress_bar=not args.no_progress)
    if metrics is not None:
        brief = metrics.get("brief", metrics)
        best = (f"best {config.best_metric} = {result.best_value} at epoch {result.best_epoch}"
                if result.best_epoch is not None else
                f"no evaluation ran (eval_every_epochs={config.eval_every_epochs}), last checkpoint scored")
        print(f"trained {result.global_step} steps ({result.skipped_steps} skipped); {best}; held-out metrics in "
              f"{args.output / 'metrics.json'}")
        print(" ".join(f"{key}={value}" for key, value in brief.items()))
    return 0


def _is_cli_process() -> bool:
    """Whether this process is the ``vtgkit`` command (console script or ``python -m vtgkit...``, also under
    torchrun), which may restart itself; not e.g. a test calling the command's function in process."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == "vtgkit":
        return True
    return os.path.basename(sys.argv[0]) == "vtgkit"


def _training_data(config: Any, output: Path) -> Any:
    """Where the recipe's data lives: a SynthVTG folder (built on first use) or a benchmark root."""
    from vtgkit.train.benchmark_data import training_data

    return training_data(config, output)
