"""Multi-process training with the usual PyTorch tools: ``torchrun`` sets the environment, we read it.

``torchrun --nproc-per-node N -m vtgkit.cli.main train RECIPE ...`` (or ``--nnodes``/``--rdzv-endpoint`` across
machines) starts the processes; each calls :func:`init_distributed`, which joins the process group with gloo on CPU
and nccl on CUDA. Without the torchrun variables the run is a single process and nothing is initialised.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: rank/world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistributedContext:
    """Join the torchrun process group if the environment names one, else return a single-process context.

    Args:
        device: ``"cpu"`` or ``"cuda"``; default CUDA when available. Backend: nccl for CUDA, gloo for CPU.
    """
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=torch.device("cuda" if use_cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        run_device = torch.device("cuda", local_rank)
    else:
        run_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=run_device)


def wrap_model(model: torch.nn.Module, context: DistributedContext) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when there are several processes, else ``model`` itself."""
    if not context.enabled:
        return model
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    # Some parameters get no gradient in some steps (FlashVTG's unused text position table, its moment head in
    # highlight-only configs, pyramid levels longer than a batch's videos): DDP must look for them every step.
    # ``model`` returns the losses (the trainer's loss wrapper), so the parameters it finds are exactly those.
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (for ``compute_losses``, ``state_dict`` and evaluation)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def mean_across_processes(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    """Average logged scalars over all processes (identity for one process)."""
    if not context.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[key] for key in keys], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    tensor /= context.world_size
    averaged = dict(zip(keys, tensor.tolist(), strict=True))
    return {key: averaged[key] for key in values}  # the caller's order (log.jsonl as in one process)


def broadcast_flag(flag: bool, context: DistributedContext) -> bool:
    """The main process's ``flag`` on every process (e.g. "stop early")."""
    if not context.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=context.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def weight_digests(model: torch.nn.Module, context: DistributedContext) -> list[str] | None:
    """sha256 of ``model``'s state dict on every process, in rank order (None for one process).

    DDP keeps the replicas equal only if every process takes the same steps; the digests show that it did
    (a run that drifted apart would otherwise save rank 0's weights without a sign).
    """
    if not context.enabled:
        return None
    digests: list[str | None] = [None] * context.world_size
    dist.all_gather_object(digests, state_digest(model.state_dict()))
    return [str(item) for item in digests]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the names and raw bytes of a state dict's tensors, in its order."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode("utf-8"))
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def log_replica_check(model: torch.nn.Module, context: DistributedContext, log: Any, step: int) -> None:
    """Several processes: write whether every replica ended with the same weights to ``log`` (a ``RunLog``,
    record kind ``ranks_in_sync``), with a warning on stderr when they did not."""
    digests = weight_digests(model, context)
    if digests is None:
        return
    in_sync = len(set(digests)) == 1
    log.write("ranks_in_sync", step, {"in_sync": in_sync, "weights_sha256": digests})
    if not in_sync and context.is_main:
        print(f"warning: the {len(digests)} training processes ended with different weights (log.jsonl, kind "
              "ranks_in_sync); the checkpoints hold rank 0's", file=sys.stderr)


@contextmanager
def main_process_first(context: DistributedContext) -> Iterator[None]:
    """Run the block on rank 0 first, then on the first process of each other machine, then on the rest: a data
    folder is built once per file system and the later processes find it complete (shared or per-machine disks).
    One process: just run it. Every process passes two barriers."""
    if not context.enabled:
        yield
        return
    first = context.is_main
    machine_first = not first and context.local_rank == 0
    if not first:
        dist.barrier()
    if not first and not machine_first:
        dist.barrier()
    yield
    if first:
        dist.barrier()
    if first or machine_first:
        dist.barrier()


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
