"""The training loop: micro-batch accumulation, mixed precision, non-finite-step guard, evaluation, checkpoints.

It only needs the agreed model interface (``output = model(batch)``, ``model.compute_losses(output, batch)`` with
a ``"total"`` entry), a dataset + collate function giving ``Batch`` objects, and an evaluation callback returning
the official evaluator's metrics, so both models train through the same code.

Files in ``output_dir``: ``config.json`` (resolved ``TrainConfig``), ``last.pt`` (resume point, rewritten
atomically at the end of every epoch and every ``checkpoint_every_steps`` steps), ``best.pt`` (best evaluation by
``config.best_metric``), ``best.safetensors``/``best.json`` and ``last.safetensors``/``last.json`` (the weights
in vtgkit's checkpoint format, which ``vtgkit predict --checkpoint`` reads), ``log.jsonl``, ``tensorboard/``
(optional).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from vtgkit.atomic_files import remove_partials, torch_save_atomic, write_text_atomic
from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.structures import Batch
from vtgkit.train import distributed
from vtgkit.train.checkpointing import FORMAT, capture_rng_state, load_checkpoint, restore_rng_state
from vtgkit.train.config import TrainConfig
from vtgkit.train.epoch_plan import PlannedBatchSampler, plan_epoch
from vtgkit.train.model_selection import BestTracker, select_metric
from vtgkit.train.optim import build_optimizer
from vtgkit.train.precision import autocast_factory, build_grad_scaler
from vtgkit.train.run_log import RunLog
from vtgkit.train.schedule import LearningRateSchedule
from vtgkit.train.seeded_dataset import IndexSeededDataset

EvaluateFn = Callable[[torch.nn.Module], dict[str, Any]]


@dataclass
class TrainResult:
    """What a finished (or stopped) run reached."""

    output_dir: Path
    global_step: int
    epochs_done: int
    skipped_steps: int
    best_value: float | None
    best_epoch: int | None
    last_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Progress:
    epoch: int = 0  # current epoch (0-based)
    step_in_epoch: int = 0  # optimiser steps already done in this epoch
    global_step: int = 0
    skipped_steps: int = 0
    last_loss: float = math.nan


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; in deterministic mode also ask PyTorch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


class Trainer:
    """Trains ``model`` on ``dataset`` following ``config``; see the module docstring for the files written."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        dataset: Any,
        collate_fn: Callable[[list[Any]], Batch],
        output_dir: str | Path,
        *,
        evaluate_fn: EvaluateFn | None = None,
        context: distributed.DistributedContext | None = None,
        progress_bar: bool = True,
        checkpoint_extras: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        # Plain-data entries added to every checkpoint (e.g. FlashVTG's official "opt", read by `vtgkit predict`).
        self.checkpoint_extras = dict(checkpoint_extras or {})
        self.context = context or distributed.DistributedContext()
        self.output_dir = Path(output_dir)
        self.raw_model = model.to(self.context.device)
        # DDP wraps forward + losses, so that it sees which parameters the loss used (see _LossForward).
        self.model = distributed.wrap_model(_LossForward(self.raw_model, config.precision), self.context)
        self.dataset = IndexSeededDataset(dataset, config.seed)
        self.collate_fn = collate_fn
        self.evaluate_fn = evaluate_fn
        self.optimizer = build_optimizer(self.raw_model, config)
        self.schedule = LearningRateSchedule(config)
        self.autocast = autocast_factory(config.precision, self.context.device)
        self.scaler = build_grad_scaler(config.precision, self.context.device)
        self.best = BestTracker(higher_is_better=config.best_metric_higher_is_better)
        self.progress = _Progress()
        self.log = RunLog(self.output_dir, tensorboard=config.tensorboard, enabled=self.context.is_main)
        self.progress_bar = progress_bar and self.context.is_main
        self.parameters = [p for p in self.raw_model.parameters() if p.requires_grad]
        self.last_metrics: dict[str, Any] = {}

    # ------------------------------------------------------------------ public
    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train until ``config.epochs`` (or ``max_steps``, or early stop); resume from ``last.pt`` if asked.

        Args:
            resume: False for a fresh run; True to continue from ``output_dir/last.pt``; a path for another file.
        """
        if resume:
            self._resume(self.output_dir / "last.pt" if resume is True else Path(resume))
        else:
            seed_everything(self.config.seed + self.context.rank, self.config.deterministic)
        if self.context.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # A run killed mid-write leaves hidden .partial-* files (never read as checkpoints); clear them.
            removed = remove_partials(self.output_dir)
            if removed:
                print(f"removed {removed} unfinished file(s) of an interrupted run from {self.output_dir}")
            write_text_atomic(self.output_dir / "config.json", json.dumps(self.config.to_dict(), indent=2) + "\n")
        stop = False
        while self.progress.epoch < self.config.epochs and not stop:
            stop = self._run_epoch()
        distributed.log_replica_check(self.raw_model, self.context, self.log, self.progress.global_step)
        if self.context.is_main:
            self._export("last")
        self.log.close()
        return TrainResult(
            output_dir=self.output_dir,
            global_step=self.progress.global_step,
            epochs_done=self.progress.epoch,
            skipped_steps=self.progress.skipped_steps,
            best_value=self.best.value,
            best_epoch=self.best.epoch,
            last_metrics=self.last_metrics,
        )

    # ------------------------------------------------------------------ epoch
    def _run_epoch(self) -> bool:
        """One epoch (or its remainder after a resume). Returns True when training must stop."""
        config, progress = self.config, self.progress
        epoch = progress.epoch
        plan = plan_epoch(
            len(self.dataset), config.batch_size, config.micro_batch_size, seed=config.seed, epoch=epoch,
            world_size=self.context.world_size, rank=self.context.rank, drop_last=config.drop_last,
        )
        self.dataset.set_epoch(epoch)
        loader = DataLoader(
            self.dataset,
            batch_sampler=PlannedBatchSampler(plan, progress.step_in_epoch),
            collate_fn=self.collate_fn,
            num_workers=config.num_workers,
            # An explicit generator keeps the loader from drawing its worker seed from the global RNG.
            generator=torch.Generator().manual_seed(config.seed + epoch),
        )
        micro_batches = iter(loader)
        bar = tqdm(total=len(plan), initial=progress.step_in_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not self.progress_bar, dynamic_ncols=True)
        while progress.step_in_epoch < len(plan):
            batches = [next(micro_batches) for _ in plan.steps[progress.step_in_epoch]]
            values = self.train_step(batches)
            progress.step_in_epoch += 1
            progress.global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{values['total']:.4f}", lr=f"{values['lr']:.2e}")
            if progress.global_step % config.log_every_steps == 0 or progress.step_in_epoch == len(plan):
                self.log.write("train", progress.global_step, {"epoch": epoch + 1, **values})
            if config.max_steps is not None and progress.global_step >= config.max_steps:
                bar.close()
                self._save("last.pt")
                return True
            every = config.checkpoint_every_steps
            if every and progress.global_step % every == 0 and progress.step_in_epoch < len(plan):
                self._save("last.pt")
        bar.close()
        self.schedule.end_epoch(progress.last_loss)
        progress.epoch += 1
        progress.step_in_epoch = 0
        stop = self._maybe_evaluate(epoch)
        self._save("last.pt")
        return stop

    # ------------------------------------------------------------------ step
    def train_step(self, batches: list[Batch]) -> dict[str, float]:
        """Forward/backward every micro-batch, then one guarded optimiser step. Returns the logged values."""
        self.model.train()
        rate = self.schedule.apply(self.optimizer, self.progress.global_step, self.progress.epoch)
        self.optimizer.zero_grad(set_to_none=True)
        started = time.perf_counter()
        sums: dict[str, float] = {}
        samples = 0
        for index, batch in enumerate(batches):
            batch = batch.to(self.context.device)
            samples += batch.batch_size
            last = index == len(batches) - 1
            sync = self.model.no_sync() if self.context.enabled and not last else contextlib.nullcontext()
            with sync:
                losses = self.model(batch, self.autocast)
                total = losses["total"] / len(batches)
                if self.scaler is not None:
                    total = self.scaler.scale(total)
                total.backward()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) / len(batches)
        grad_norm, stepped = self._guarded_update(sums["total"])
        values = distributed.mean_across_processes(sums, self.context)
        self.progress.last_loss = values["total"]
        elapsed = time.perf_counter() - started
        values.update(lr=rate, grad_norm=grad_norm, skipped_steps=float(self.progress.skipped_steps),
                      samples_per_s=samples * self.context.world_size / max(elapsed, 1e-9))
        if not stepped:
            self.log.write("skipped_step", self.progress.global_step + 1, values)
        return values

    def _guarded_update(self, loss_value: float) -> tuple[float, bool]:
        """Clip and step unless the loss or the global gradient norm is non-finite (then skip and count).

        A non-finite gradient would otherwise reach the weights: ``clip_grad_norm_`` multiplies every gradient by
        ``max_norm / nan`` and AdamW spreads it to every parameter (one probe run's weights became all NaN).
        """
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        # clip_grad_norm_ in its two halves, so that the gradients are rescaled only when the step is taken and the
        # norm exceeds max_norm (below it the official factor clamps to 1: a no-op pass over every gradient).
        grads = [p.grad for p in self.parameters if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.tensor(0.0)
        norm_value = float(norm)  # the step's one synchronisation
        bad = not (math.isfinite(loss_value) and math.isfinite(norm_value))
        if self.context.enabled:
            # Every process must take the same decision (gradients are already all-reduced, losses are not).
            flag = torch.tensor([float(bad)], device=self.context.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            bad = flag.item() > 0
        if bad:
            self.progress.skipped_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.update()
            return norm_value, False
        if norm_value + 1e-6 > max_norm:  # clip_grad_norm_'s factor max_norm / (norm + 1e-6) is below 1
            torch.nn.utils.clip_grads_with_norm_(self.parameters, max_norm, norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return norm_value, True

    # ------------------------------------------------------------------ evaluation
    def _maybe_evaluate(self, epoch: int) -> bool:
        """Evaluate after epoch ``epoch`` (0-based) when due; save ``best.pt``; True when early stop triggers."""
        config = self.config
        if self.evaluate_fn is None or (epoch + 1) % config.eval_every_epochs:
            return False
        stop = False
        if self.context.is_main:
            self.raw_model.eval()
            with torch.no_grad():
                metrics = self.evaluate_fn(self.raw_model)
            self.raw_model.train()
            self.last_metrics = metrics
            value = select_metric(metrics, config.best_metric)
            improved = self.best.update(value, epoch + 1)
            self.log.write("eval", self.progress.global_step,
                           {"epoch": epoch + 1, "best_metric": value, "improved": improved, **metrics})
            if improved:
                self._save("best.pt", include_training_state=False)
                self._export("best")
            patience = config.early_stop_evals
            stop = patience is not None and self.best.evals_without_improvement >= patience
        distributed.barrier(self.context)
        return distributed.broadcast_flag(stop, self.context)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, name: str, *, include_training_state: bool = True) -> None:
        """Write a checkpoint atomically from the main process (RNG states gathered from every process)."""
        rng_states = [capture_rng_state()]
        if self.context.enabled and include_training_state:
            rng_states = [None] * self.context.world_size
            torch.distributed.all_gather_object(rng_states, capture_rng_state())
        if not self.context.is_main:
            return
        state: dict[str, Any] = {
            "format": FORMAT,
            "model": self.raw_model.state_dict(),
            "config": self.config.to_dict(),
            "progress": {
                "epoch": self.progress.epoch,
                "step_in_epoch": self.progress.step_in_epoch,
                "global_step": self.progress.global_step,
                "skipped_steps": self.progress.skipped_steps,
                "last_loss": self.progress.last_loss,
            },
            "best": self.best.state_dict(),
        }
        for key, value in self.checkpoint_extras.items():
            state.setdefault(key, value)
        if include_training_state:
            state["optimizer"] = self.optimizer.state_dict()
            state["schedule"] = self.schedule.state_dict()
            state["scaler"] = self.scaler.state_dict() if self.scaler is not None else None
            state["rng"] = rng_states
        torch_save_atomic(state, self.output_dir / name)

    def _export(self, name: str) -> None:
        """``<name>.safetensors`` + ``<name>.json``: the weights in vtgkit's checkpoint format (``vtgkit predict``).

        Written only for models that carry their config dataclass (the agreed model interface); a test model
        without one keeps only the ``.pt`` checkpoints.
        """
        model_config = getattr(self.raw_model, "config", None)
        if model_config is None or not dataclasses.is_dataclass(model_config):
            return
        from vtgkit.models.checkpoint_io import save_vtgkit_checkpoint

        save_vtgkit_checkpoint(self.output_dir / f"{name}.safetensors", self.config.model, model_config,
                               self.raw_model.state_dict())

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        if "optimizer" not in state:
            raise CheckpointError(f"{path}: holds weights only (a best.pt?); resume needs a last.pt")
        saved = TrainConfig.from_dict(state["config"])
        for key in ("batch_size", "micro_batch_size", "seed", "epochs", "lr", "schedule"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ConfigError(f"{path}: resume with {key}={getattr(self.config, key)!r}, but the run used "
                                  f"{getattr(saved, key)!r}; an exact resume needs the same value")
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best.load_state_dict(state["best"])
        progress = state["progress"]
        self.progress = _Progress(**progress)
        rng_states = state["rng"]
        restore_rng_state(rng_states[self.context.rank if self.context.rank < len(rng_states) else 0])
        self.log.write("resume", self.progress.global_step, {"from": str(path), "epoch": self.progress.epoch + 1})


class _LossForward(torch.nn.Module):
    """``model`` forward under autocast, then its losses in float32: one module, so that DDP wraps both.

    DistributedDataParallel finds the parameters a step did not use by walking back from what its forward returns.
    Returning the losses (not the model output) makes that walk exact: FlashVTG has parameters that never get a
    gradient (the unused text position table, the moment head of highlight-only configs, pyramid levels a short
    batch skips), which otherwise stop the next step with "Expected to have finished reduction".
    """

    def __init__(self, model: torch.nn.Module, precision: str) -> None:
        super().__init__()
        self.model = model
        self.precision = precision

    def forward(self, batch: Batch, autocast: Callable[[], Any]) -> dict[str, torch.Tensor]:
        with autocast():
            output = self.model(batch)
        # Losses run outside autocast and on float32 inputs: the official heads/pooling/losses are float32
        # (spec r2-tuning.md §7); autocast leaves low-precision tensors in the loss inputs otherwise.
        if self.precision != "fp32":
            output = _to_float32(output)
        return self.model.compute_losses(output, batch)


def _to_float32(value: Any) -> Any:
    """``value`` with every bf16/fp16 tensor inside (dataclass fields, dicts, lists, tuples) cast to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, dict):
        return {key: _to_float32(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_float32(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _to_float32(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value
