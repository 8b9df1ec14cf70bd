"""Two CPU processes on gloo through torchrun: weights stay in sync and match one process on the same batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_grounding import TinyDataset, TinyGroundingModel, collate_tiny

from vtgkit.train.config import TrainConfig
from vtgkit.train.loop import Trainer

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(WORKER), str(tmp_path)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert ranks[0]["world_size"] == 2 and ranks[0]["steps"] == 6
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), f"ranks disagree on {key}"

    # One process, same effective batch (8) as two micro-batches of 4: the same gradients up to rounding.
    torch.manual_seed(123)
    model = TinyGroundingModel(dropout=0.0, batch_term=False)
    config = TrainConfig(recipe="tiny-ddp", model="tiny", epochs=2, batch_size=8, micro_batch_size=4, lr=1e-2,
                         warmup_iters=0, grad_clip=1.0, seed=7, log_every_steps=1)
    Trainer(model, config, TinyDataset(), collate_tiny, tmp_path / "single", progress_bar=False).fit()
    torch.manual_seed(123)
    initial = TinyGroundingModel(dropout=0.0).state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=1e-5, atol=1e-6)
        assert not torch.equal(initial[key], value)
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "run" / "rank1").exists()
