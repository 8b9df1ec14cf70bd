"""Learning-rate schedules of the official recipes, as closed forms of (iteration, epoch).

Closed forms rather than stateful PyTorch schedulers: a resumed run recomputes the rate from its position, so
resuming cannot drift. The only state is FlashVTG's last-batch loss (see below).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vtgkit.errors import ConfigError
from vtgkit.train.config import TrainConfig


class LearningRateSchedule:
    """Learning rate per optimiser step for a ``TrainConfig``.

    * ``r2tuning_step``: spec r2-tuning.md §7. Epoch-based step value ``lr · gamma^(#milestones ≤ epoch)`` (epoch
      0-based), multiplied during the first ``warmup_iters`` iterations by the linear warm-up factor
      ``1 − (1 − warmup_ratio) · (1 − iteration / warmup_iters)``.
    * ``constant``: ``lr`` after the same warm-up (R²-Tuning TVSum / YouTube).
    * ``flashvtg_step``: ``StepLR(step_size=lr_drop, gamma)`` stepped once per epoch. With
      ``flashvtg_loss_as_epoch`` the official MR scripts call ``scheduler.step(loss)``, which StepLR treats as the
      epoch number, so the rate becomes ``lr · gamma^⌊loss / lr_drop⌋`` with the last batch's loss of the previous
      epoch (spec flashvtg.md §7). Reproduced on purpose.
    """

    def __init__(self, config: TrainConfig) -> None:
        if config.schedule not in ("r2tuning_step", "flashvtg_step", "constant"):
            raise ConfigError(f"schedule: unknown {config.schedule!r}")
        if config.schedule == "flashvtg_step" and config.lr_drop <= 0:
            raise ConfigError(f"schedule flashvtg_step needs lr_drop > 0, got {config.lr_drop}")
        self.config = config
        self.last_epoch_loss: float | None = None  # FlashVTG loss-as-epoch quirk

    def value(self, iteration: int, epoch: int) -> float:
        """Learning rate for optimiser step ``iteration`` (0-based, counted over the whole run) in ``epoch``."""
        config = self.config
        if config.schedule == "flashvtg_step":
            if config.flashvtg_loss_as_epoch:
                steps = 0 if self.last_epoch_loss is None else math.floor(self.last_epoch_loss / config.lr_drop)
            else:
                steps = epoch // config.lr_drop
            return config.lr * config.lr_gamma**steps
        if config.schedule == "r2tuning_step":
            passed = sum(1 for milestone in config.lr_milestones if epoch >= milestone)
            rate = config.lr * config.lr_gamma**passed
        else:
            rate = config.lr
        if iteration < config.warmup_iters:
            rate *= 1.0 - (1.0 - config.warmup_ratio) * (1.0 - iteration / config.warmup_iters)
        return rate

    def end_epoch(self, last_batch_loss: float) -> None:
        """Record the loss of the epoch's last batch (used only by FlashVTG's loss-as-epoch quirk).

        A non-finite loss (a skipped step) keeps the previous value: StepLR would raise on ``floor(nan)``.
        """
        if math.isfinite(last_batch_loss):
            self.last_epoch_loss = float(last_batch_loss)

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int, epoch: int) -> float:
        """Set every parameter group's rate for this step and return it."""
        rate = self.value(iteration, epoch)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch_loss": self.last_epoch_loss}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_epoch_loss = state.get("last_epoch_loss")
