"""Which evaluation is the best so far: the recipe's stop metric and an early-stop counter."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vtgkit.errors import ConfigError


def select_metric(metrics: dict[str, Any], name: str) -> float:
    """The value of ``name`` in ``metrics``; ``"A+B"`` is the mean of A and B (FlashVTG's (R1@0.5+R1@0.7)/2).

    Raises:
        ConfigError: a key the evaluator did not report (the message lists the reported keys).
    """
    keys = [key.strip() for key in name.split("+")]
    missing = [key for key in keys if key not in metrics]
    if missing:
        raise ConfigError(f"best_metric {name!r}: evaluator reported no {missing}; it reported {sorted(metrics)}")
    return sum(float(metrics[key]) for key in keys) / len(keys)


@dataclass
class BestTracker:
    """Best value of the stop metric, the epoch that reached it, and evaluations since then."""

    higher_is_better: bool = True
    value: float | None = None
    epoch: int | None = None
    evals_without_improvement: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an evaluation; True when it is a new best (ties keep the earlier epoch, NaN never wins)."""
        if math.isnan(value):
            improved = False
        elif self.value is None:
            improved = True
        else:
            improved = value > self.value if self.higher_is_better else value < self.value
        if improved:
            self.value, self.epoch, self.evals_without_improvement = value, epoch, 0
        else:
            self.evals_without_improvement += 1
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch, "evals_without_improvement": self.evals_without_improvement}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        self.epoch = state["epoch"]
        self.evals_without_improvement = state["evals_without_improvement"]
