"""Multi-process training with the usual PyTorch tools: ``torchrun`` sets the environment, we read it.

``torchrun --nproc-per-node N -m vtgkit.cli.main train RECIPE ...`` (or ``--nnodes``/``--rdzv-endpoint`` across
machines) starts the processes; each calls :func:`init_distributed`, which joins the process group with gloo on CPU
and nccl on CUDA. Without the torchrun variables the run is a single process and nothing is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


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
    return dict(zip(keys, tensor.tolist(), strict=True))


def broadcast_flag(flag: bool, context: DistributedContext) -> bool:
    """The main process's ``flag`` on every process (e.g. "stop early")."""
    if not context.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=context.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
