"""Entry point run by torchrun in the DDP test: trains the tiny model and saves this rank's final weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tiny_grounding import TinyDataset, TinyGroundingModel, collate_tiny

from vtgkit.train.config import TrainConfig
from vtgkit.train.distributed import init_distributed, shutdown
from vtgkit.train.loop import Trainer


def main(output: Path) -> None:
    context = init_distributed("cpu")
    torch.manual_seed(123)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    model = TinyGroundingModel(dropout=0.0, batch_term=False)
    config = TrainConfig(recipe="tiny-ddp", model="tiny", epochs=2, batch_size=8, micro_batch_size=4, lr=1e-2,
                         warmup_iters=0, grad_clip=1.0, seed=7, log_every_steps=1)
    trainer = Trainer(model, config, TinyDataset(), collate_tiny, output / "run", context=context,
                      progress_bar=False)
    result = trainer.fit()
    torch.save({"model": model.state_dict(), "world_size": context.world_size, "steps": result.global_step},
               output / f"rank{context.rank}.pt")
    shutdown(context)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
