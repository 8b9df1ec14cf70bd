"""Optimiser of the official recipes: AdamW over every trainable parameter, no weight-decay exclusions."""

from __future__ import annotations

import torch

from vtgkit.errors import ConfigError
from vtgkit.train.config import TrainConfig


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW(lr, betas, eps, weight_decay) on all parameters with ``requires_grad``.

    Both official codes decay every learnable parameter, biases and norms included (spec r2-tuning.md §1.2,
    flashvtg.md §7). ``foreach`` is left to PyTorch's default so the update matches a plain ``AdamW``.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not parameters:
        raise ConfigError(f"model {type(model).__name__} has no trainable parameters")
    return torch.optim.AdamW(
        parameters, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
