"""Run the official R²-Tuning code side by side with vtgkit (benchmark helper; nothing of it is vendored).

The official repository (https://github.com/yeliudev/R2-Tuning, commit 03fbcf6) is checked out elsewhere and imported
from ``--official-root``; it needs ``nncore`` (0.4.4 as pinned there), so run this file, and the benchmarks given
``--official-root``, with a Python that has it, e.g. a venv made with ``--system-site-packages``:

    python -m venv --system-site-packages /tmp/offvenv
    /tmp/offvenv/bin/pip install "setuptools<70" wheel    # nncore 0.4.4's setup.py needs pkg_resources
    /tmp/offvenv/bin/pip install --no-build-isolation nncore==0.4.4
    /tmp/offvenv/bin/python benchmarks/bench_r2tuning_official.py --official-root /tmp/official_r2

The official ``models`` package imports openai ``clip`` at module level but only uses it when ``init=True`` (CLIP
attached); the QVHighlights config uses ``init=False``, so an empty stand-in module is registered when ``clip`` does
not import. The official model gets vtgkit's random weights (through the official key table of
``vtgkit.models.r2tuning.convert``), so both compute the same function on the same inputs.

Standalone, it prints the official inference time (batch 1, T=75, fp16 cache features, 20-token query) and the
official training step (batch 8, forward + summed losses + backward + clip 35 + AdamW, as nncore's engine does).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import resource
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

from vtgkit.structures import Batch


def load_official_package(root: str | Path) -> types.ModuleType:
    """Import ``<root>/models`` under a private name (its modules register themselves in nncore's MODELS)."""
    root = Path(root)
    init = root / "models" / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"{init} not found: --official-root must be a checkout of yeliudev/R2-Tuning")
    try:
        importlib.import_module("clip")
    except ImportError:  # only used with init=True (CLIP attached), which the QVHighlights config does not use
        sys.modules["clip"] = types.ModuleType("clip")
    name = "official_r2tuning_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_official_model(root: str | Path, weights_from: torch.nn.Module | None = None) -> torch.nn.Module:
    """The official QVHighlights model (configs/qvhighlights), optionally with a vtgkit model's weights."""
    import nncore
    from nncore.nn import build_model

    package = load_official_package(root)
    # The base configs list packages by plain name for nncore to import ("models" registers the model; "datasets"
    # the data pipeline, not needed here and heavy): point those names at the loaded package / a stand-in meanwhile.
    stand_ins = {"models": package, "datasets": types.ModuleType("datasets")}
    previous = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        config = nncore.Config.from_file(str(Path(root) / "configs" / "qvhighlights" / "r2_tuning_qvhighlights.py"))
    finally:
        for name, module in previous.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    model = build_model(config.model)
    if weights_from is not None:
        from vtgkit.models.r2tuning.convert import to_official_state_dict

        state = to_official_state_dict(weights_from)
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(f"official model: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    model.eval()  # its train() override returns None, so .eval() cannot be chained
    return model


def official_data(batch: Batch, with_targets: bool) -> dict[str, Any]:
    """The official collated layout: video (B, T, K·P·Dv), query (B, L, K·Dq) in the cache dtype (fp16); the
    forward zeroes non-finite padding in place, so each call gets fresh tensors."""
    b, t = batch.video.shape[:2]
    data: dict[str, Any] = {
        "video": batch.video.reshape(b, t, -1).clone(),
        "query": batch.query.reshape(b, batch.query.size(1), -1).clone(),
        "fps": [float(f) for f in batch.fps],
    }
    if with_targets:
        data.update(boundary=batch.boundaries.clone(), saliency=batch.saliency.clone(),
                    pos_clip=batch.pos_clip.clone())
    return data


def official_infer(model: torch.nn.Module, batch: Batch) -> dict[str, Any]:
    """One official test forward (batch 1), under torch.no_grad as nncore's engine runs it."""
    with torch.no_grad():
        return model(official_data(batch, with_targets=False), mode="test")["_out"]


class OfficialTrainStep:
    """The official training iteration: losses summed over the ``loss*`` keys, zero_grad, backward,
    clip_grad_norm_(35), AdamW(5e-4, wd 1e-4) (configs/_base_/schedules/default.py, nncore's OptimizerHook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        model.train()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=5e-4, weight_decay=1e-4)

    def __call__(self, batch: Batch) -> float:
        output = self.model(official_data(batch, with_targets=True), mode="train")
        loss = sum(v for k, v in output.items() if "loss" in k)
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 35)
        self.optimizer.step()
        return float(loss.detach())


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_r2tuning_inference import make_batch  # same inputs as bench_r2tuning_inference.py
    from bench_train import r2tuning_batch  # same inputs as bench_train.py

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-root", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_official_model(args.official_root)
    print(f"load before: {os.getloadavg()}; threads {args.threads}; allocator {os.environ.get('LD_PRELOAD', 'glibc')}")
    single = make_batch(1, 75, 20, torch.Generator().manual_seed(0))
    official_infer(model, single)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        official_infer(model, single)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"official inference batch 1: {median * 1000:.1f} ms/query ({1 / median:.2f} q/s), "
          f"spread {(max(times) - min(times)) / median:.0%}")
    step = OfficialTrainStep(model)
    batch = r2tuning_batch(args.batch_size, 75, 20)
    step(batch)
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"official train step batch {args.batch_size}: {median:.2f} s ({args.batch_size / median:.2f} samples/s), "
          f"peak RSS {rss:.2f} GiB; load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
