"""`vtgkit train` itself under torchrun: FlashVTG and R²-Tuning recipes in two gloo processes.

Each run goes through the real entry point (``python -m torch.distributed.run ... -m vtgkit.cli.main train RECIPE``)
on a tiny Charades-STA root in the official layout (real annotation records, random features, tiny model widths,
dropout off so that the processes' different dropout streams do not matter). Checked: both processes finish; only
rank 0 writes in the run folder (a test-only audit hook, ddp_probe/sitecustomize.py, records every file each rank
opens for writing, renames, removes or creates there); the replicas end with the same weights (the run's
``ranks_in_sync`` log record, whose digest must be that of the saved weights); and the run equals one process with
the same effective batch, i.e. two accumulated micro-batches of the per-process size (weights, losses, metrics).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from official_layouts import (
    TINY_FLASHVTG,
    TINY_R2TUNING,
    annotation_file,
    flashvtg_moment_root,
    read_jsonl,
    write_jsonl,
)

from vtgkit.cli.main import main
from vtgkit.train.config import apply_overrides
from vtgkit.train.distributed import state_digest
from vtgkit.train.loop import seed_everything
from vtgkit.train.recipes import get_recipe
from vtgkit.train.runner import build_model

PROBE = Path(__file__).with_name("ddp_probe")
NO_DROPOUT = {"flashvtg": {"dropout": 0.0, "input_dropout": 0.0, "dummy_encoder_dropout": 0.0},
              "r2tuning": {"adapter_dropout": 0.0, "drop_path": 0.0}}
RECIPES = {"flashvtg": "flashvtg-charades", "r2tuning": "r2tuning-charades"}
FILES = {"config.json", "log.jsonl", "last.pt", "best.pt", "last.safetensors", "last.json", "best.safetensors",
         "best.json", "metrics.json"}


def r2tuning_charades_root(root: Path, train: int = 8, evaluate: int = 2) -> Path:
    """R²-Tuning's Charades-STA layout: charades_{train,test}.jsonl (real records) + clip_b32_{vid,txt}_k4/ files
    (video (T, 4, P, Dv) per vid at 1 clip/s, query (L, 4, Dq) per qid), float16, tiny widths."""
    rng = np.random.default_rng(3)
    sources = (annotation_file("charades_sta", "charades_sta_train_tvr_format.jsonl"),
               annotation_file("charades_sta", "charades_sta_test_tvr_format.jsonl"))
    video_dir, text_dir = root / "clip_b32_vid_k4", root / "clip_b32_txt_k4"
    video_dir.mkdir(parents=True)
    text_dir.mkdir(parents=True)
    tokens, video_dim, query_dim = (TINY_R2TUNING[key] for key in ("tokens_per_frame", "video_dims", "query_dims"))
    for source, name, count in zip(sources, ("charades_train.jsonl", "charades_test.jsonl"), (train, evaluate),
                                   strict=True):
        records = read_jsonl(source, None, count)
        write_jsonl(root / name, records)
        for record in records:
            clips = math.ceil(record["duration"])
            np.save(video_dir / f"{record['vid']}.npy",
                    rng.standard_normal((clips, 4, tokens, video_dim)).astype(np.float16))
            np.save(text_dir / f"{record['qid']}.npy", rng.standard_normal((5, 4, query_dim)).astype(np.float16))
    return root


def _arguments(model: str, root: Path) -> list[str]:
    tiny = {**(TINY_FLASHVTG if model == "flashvtg" else TINY_R2TUNING), **NO_DROPOUT[model]}
    return [RECIPES[model], f"data_root={root}", "epochs=2", "batch_size=4", "eval_every_epochs=1",
            "warmup_iters=2", *[f"model_overrides.{key}={json.dumps(value)}" for key, value in tiny.items()]]


def _log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow  # ~15-25 s per model on 2 loaded cores (two processes start torch, then a one-process run)
@pytest.mark.parametrize("model", ["flashvtg", "r2tuning"])
def test_torchrun_train_recipe_matches_one_process(tmp_path: Path, model: str) -> None:
    torch.set_num_threads(1)
    data = tmp_path / "data"
    if model == "flashvtg":
        flashvtg_moment_root(data, "charades_sta", train=8, evaluate=2)
        root = data
    else:
        root = r2tuning_charades_root(data)
    arguments = _arguments(model, root)
    ddp_run, writes = tmp_path / "ddp", tmp_path / "writes"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VTGKIT_TEST_WATCH": str(ddp_run), "VTGKIT_TEST_WRITES": str(writes),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "vtgkit.cli.main", "train", *arguments, "micro_batch_size=null", "--output", str(ddp_run),
               "--threads", "1", "--no-progress"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]

    # Both ranks finished (the probe reports at a normal exit); rank 1 touched nothing in the run folder.
    reports = {rank: json.loads((writes / f"rank{rank}.json").read_text()) for rank in (0, 1)}
    assert reports[1] == [], reports[1][:5]
    published = {Path(path).name for event, path in reports[0] if event == "os.rename"}
    assert FILES - {"log.jsonl"} <= published, sorted(published)
    assert {path.name for path in ddp_run.iterdir()} == FILES
    assert completed.stdout.count("held-out metrics in") == 1  # the summary is printed by rank 0 only

    # The replicas ended equal, and the logged digest is that of the weights rank 0 saved.
    log = _log(ddp_run)
    (sync,) = [record for record in log if record["kind"] == "ranks_in_sync"]
    saved = torch.load(ddp_run / "last.pt", weights_only=True)
    assert sync["in_sync"] is True and len(sync["weights_sha256"]) == 2
    assert set(sync["weights_sha256"]) == {state_digest(saved["model"])}

    # One process, the same effective batch: per-process batch 2 → two accumulated micro-batches of 2.
    single_run = tmp_path / "single"
    assert main(["train", *arguments, "micro_batch_size=2", "--output", str(single_run), "--threads", "1",
                 "--no-progress"]) == 0
    single = torch.load(single_run / "last.pt", weights_only=True)
    assert saved["progress"]["global_step"] == single["progress"]["global_step"] == 4
    config = apply_overrides(get_recipe(RECIPES[model]), arguments[1:])
    seed_everything(config.seed)
    initial = build_model(config).state_dict()
    moved = 0
    for key, value in single["model"].items():
        torch.testing.assert_close(saved["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        moved += int(not torch.equal(initial[key], value))
    assert moved > len(initial) // 2  # the weights were trained, not left at their initial values

    single_log = [record for record in _log(single_run) if record["kind"] != "ranks_in_sync"]
    ddp_log = [record for record in log if record["kind"] != "ranks_in_sync"]
    assert [(r["kind"], r["step"]) for r in ddp_log] == [(r["kind"], r["step"]) for r in single_log]
    for ddp_record, single_record in zip(ddp_log, single_log, strict=True):
        if ddp_record["kind"] == "train":
            for key in ("total", "loss_cls", "lr", "grad_norm"):
                assert ddp_record[key] == pytest.approx(single_record[key], rel=1e-5, abs=1e-7), key
    ddp_metrics = json.loads((ddp_run / "metrics.json").read_text())
    single_metrics = json.loads((single_run / "metrics.json").read_text())
    assert ddp_metrics.keys() == single_metrics.keys()
    assert ddp_metrics["brief"] == pytest.approx(single_metrics["brief"], abs=0.01)
