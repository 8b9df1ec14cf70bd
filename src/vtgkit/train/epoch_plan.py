"""Which samples each process sees at each optimiser step of an epoch: a pure function of (seed, epoch).

Because the order is recomputed from (seed, epoch) rather than drawn from a global RNG, a run resumed at step
``k`` of an epoch continues with exactly the micro-batches an uninterrupted run would have used, with any number
of loader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from vtgkit.errors import ConfigError


@dataclass(frozen=True)
class EpochPlan:
    """``steps[i][j]`` = dataset indices of micro-batch ``j`` of optimiser step ``i`` for this process."""

    steps: list[list[list[int]]]

    def __len__(self) -> int:
        return len(self.steps)


def plan_epoch(
    num_samples: int,
    batch_size: int,
    micro_batch_size: int | None,
    *,
    seed: int,
    epoch: int,
    world_size: int = 1,
    rank: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> EpochPlan:
    """Split one epoch into optimiser steps, per-process shards and micro-batches.

    The epoch's permutation (``torch.randperm`` seeded with ``seed + epoch``) is cut into global batches of
    ``batch_size``; each global batch is split into ``world_size`` equal contiguous shards (the official per-GPU
    batch is ``batch_size / world_size``, spec r2-tuning.md §7), and each shard into micro-batches. A last global
    batch that does not divide by ``world_size`` is padded with indices from the start of the permutation, as
    ``DistributedSampler`` does, so no process ever waits on an empty step.

    Raises:
        ConfigError: ``batch_size`` not divisible by ``world_size`` or by the micro-batch size.
    """
    if batch_size % world_size:
        raise ConfigError(f"batch_size {batch_size} must be divisible by the number of processes {world_size}")
    per_process = batch_size // world_size
    micro = micro_batch_size or per_process
    if per_process % micro:
        raise ConfigError(
            f"per-process batch {per_process} (batch_size {batch_size} / {world_size} processes) must be divisible "
            f"by micro_batch_size {micro}"
        )
    if num_samples <= 0:
        raise ConfigError("the training set is empty")
    if shuffle:
        generator = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(num_samples, generator=generator).tolist()
    else:
        order = list(range(num_samples))
    steps: list[list[list[int]]] = []
    for start in range(0, num_samples, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < batch_size and drop_last:
            break
        if len(batch) % world_size:
            missing = world_size - len(batch) % world_size
            batch = batch + [order[i % num_samples] for i in range(missing)]
        shard_len = len(batch) // world_size
        shard = batch[rank * shard_len : (rank + 1) * shard_len]
        steps.append([shard[i : i + micro] for i in range(0, len(shard), micro)])
    return EpochPlan(steps)


class PlannedBatchSampler(Sampler[list[int]]):
    """Yields the micro-batches of ``plan`` from optimiser step ``start_step`` on (a ``DataLoader`` batch_sampler)."""

    def __init__(self, plan: EpochPlan, start_step: int = 0) -> None:
        self.micro_batches = [micro for step in plan.steps[start_step:] for micro in step]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.micro_batches)

    def __len__(self) -> int:
        return len(self.micro_batches)
