"""Turn a model's raw boundary rows into the submission rows the official code writes.

The one place for clamping, unit rounding, NMS, the final sort and the optional top-k cut; ``vtgkit predict`` and
the trainers' validation both call it. Two official recipes exist and differ in order and precision:

* R²-Tuning (spec r2-tuning.md §5, ``Grounding.evaluate``): rows whose *pre-clamp* end is ≥ the duration stay
  unrounded; clamp start/end to [0, duration]; the other rows are rounded to the dataset unit (``torch.round``,
  half to even, float32); NMS; descending ``torch.sort``.
* FlashVTG (spec flashvtg.md §6): clamp start/end/score to [0, duration]; every value to 4 decimals; through a
  float32 tensor: clamp times to [0, max_timestamp] where the dataset has one, round to multiples of the clip
  length; score back to 4 decimals. That list is the "no-NMS" submission; the NMS one applies normal NMS (0.7) to it.

Evaluation itself never post-processes: predictions are evaluated as given (spec metrics.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

from vtgkit.spans import NMSMethod, nms

Recipe = Literal["r2tuning", "flashvtg"]


@dataclass(frozen=True)
class PostprocessConfig:
    """How one benchmark's raw rows become submission rows.

    Attributes:
        recipe: "r2tuning" or "flashvtg" (order and precision of the steps, see the module docstring).
        unit: R²-Tuning rounding unit in seconds (None: no rounding); FlashVTG clip length (always rounds).
        max_timestamp: FlashVTG's extra clamp of times to [0, max_timestamp] (150 for QVHighlights/Charades-STA).
        nms_method: None (no NMS), "normal", "linear" or "gaussian".
        nms_threshold: IoU threshold of normal NMS.
        nms_sigma: width of gaussian NMS (not set by any official config).
        decimals: FlashVTG rounds every value of a row and the saliency to this many decimals.
        top_k: keep only the first k rows after sorting (None: all rows, as both official recipes do).
    """

    recipe: Recipe = "r2tuning"
    unit: float | None = None
    max_timestamp: float | None = None
    nms_method: NMSMethod | None = None
    nms_threshold: float = 0.7
    nms_sigma: float = 0.5
    decimals: int | None = None
    top_k: int | None = None


# spec r2-tuning.md §5 / §1.2: QVHighlights unit 2 s + normal NMS 0.7 (default nms_cfg); the others linear NMS.
R2TUNING_POSTPROCESS: dict[str, PostprocessConfig] = {
    "qvhighlights": PostprocessConfig("r2tuning", unit=2.0, nms_method="normal", nms_threshold=0.7),
    "charades_sta": PostprocessConfig("r2tuning", unit=0.1, nms_method="linear"),
    "tacos": PostprocessConfig("r2tuning", unit=None, nms_method="linear"),
    "ego4d_nlq": PostprocessConfig("r2tuning", unit=None, nms_method="linear"),
}

# spec flashvtg.md §6: the headline ("no-NMS") submissions; use ``with_nms`` for the ``_nms_thd_0.7`` files.
FLASHVTG_POSTPROCESS: dict[str, PostprocessConfig] = {
    "qvhighlights": PostprocessConfig("flashvtg", unit=2.0, max_timestamp=150.0, decimals=4),
    "charades_sta": PostprocessConfig("flashvtg", unit=1.0, max_timestamp=150.0, decimals=4),
    "tacos": PostprocessConfig("flashvtg", unit=2.0, max_timestamp=None, decimals=4),
}


def postprocess_config(method: str, dataset: str, with_nms: bool = False) -> PostprocessConfig:
    """The official post-processing of ``method`` ("r2tuning" or "flashvtg") on ``dataset``.

    ``with_nms`` adds FlashVTG's normal NMS (0.7); R²-Tuning always applies its NMS.
    """
    table = {"r2tuning": R2TUNING_POSTPROCESS, "flashvtg": FLASHVTG_POSTPROCESS}.get(method)
    if table is None:
        raise ValueError(f"unknown method {method!r}; expected 'r2tuning' or 'flashvtg'")
    if dataset not in table:
        raise ValueError(f"{method} has no moment post-processing for {dataset!r}; known: {sorted(table)}")
    config = table[dataset]
    if with_nms and config.nms_method is None:
        config = replace(config, nms_method="normal", nms_threshold=0.7)
    return config


def _round_decimals(value: float, decimals: int) -> float:
    # FlashVTG formats with f"{v:.4f}" and parses back: round half to even on the binary value.
    return float(f"{value:.{decimals}f}")


def postprocess_boundaries(boundaries: torch.Tensor, duration: float, config: PostprocessConfig) -> list[list[float]]:
    """Raw rows -> submission rows ``[[start_s, end_s, score], ...]`` (best first).

    Args:
        boundaries: (N, 3) [start_s, end_s, score] as the model returns them (sorted by score, before clamping).
        duration: the annotation's video duration in seconds.
        config: the benchmark's recipe.
    """
    if boundaries.dim() != 2 or boundaries.shape[-1] != 3:
        raise ValueError(f"boundaries must have shape (N, 3); got {tuple(boundaries.shape)}")
    if config.recipe == "r2tuning":
        rows = _r2tuning_rows(boundaries, duration, config)  # (N, 3) float32
    elif config.recipe == "flashvtg":
        listed = _flashvtg_rows(boundaries, duration, config)
        if config.nms_method is None:
            return _cut(listed, config.top_k)
        # The official NMS converts the list to a float32 tensor (so NMS scores come out float32-widened).
        rows = torch.tensor(listed, dtype=torch.float32).reshape(-1, 3)
    else:
        raise ValueError(f"unknown post-processing recipe {config.recipe!r}")
    if config.nms_method is not None:
        rows = nms(rows, config.nms_method, config.nms_threshold, config.nms_sigma)
    return _cut(rows.tolist(), config.top_k)


def _cut(rows: list[list[float]], top_k: int | None) -> list[list[float]]:
    return rows if top_k is None else rows[:top_k]


def _r2tuning_rows(boundaries: torch.Tensor, duration: float, config: PostprocessConfig) -> torch.Tensor:
    rows = boundaries.detach().to("cpu", torch.float32).clone()
    # spec r2-tuning.md §5 step 1: rows whose end reaches the duration *before* clamping keep unrounded times.
    rounded = rows[:, 1] < duration
    rows[:, :2] = rows[:, :2].clamp(min=0, max=duration)
    if config.unit is not None and config.unit > 0:
        rows[rounded, :2] = torch.round(rows[rounded, :2] / config.unit) * config.unit
    if config.nms_method is None:
        _, order = rows[:, 2].sort(descending=True)
        rows = rows[order]
    return rows


def _flashvtg_rows(boundaries: torch.Tensor, duration: float, config: PostprocessConfig) -> list[list[float]]:
    decimals = 4 if config.decimals is None else config.decimals
    # spec flashvtg.md §6 step 2: the whole row (score too) is clamped to [0, duration], then 4 decimals.
    clamped = torch.clamp(boundaries.detach().to("cpu", torch.float32), 0, duration).tolist()
    rows = [[_round_decimals(value, decimals) for value in row] for row in clamped]
    table = torch.tensor(rows, dtype=torch.float32).reshape(-1, 3)
    windows = table[:, :2]
    if config.max_timestamp is not None:
        windows = torch.clamp(windows, min=0, max=config.max_timestamp)
    if config.unit is not None and config.unit > 0:
        windows = torch.round(windows / config.unit) * config.unit
    merged = torch.cat([windows, table[:, 2:3]], dim=1).tolist()
    return [row[:2] + [_round_decimals(row[2], decimals)] for row in merged]


def postprocess_saliency(
    saliency: torch.Tensor, config: PostprocessConfig, num_clips: int | None = None
) -> list[float]:
    """Per-clip saliency (T,) -> the submission list: cut to ``num_clips`` valid clips, FlashVTG's 4 decimals."""
    values = saliency.detach().to("cpu", torch.float32)
    if num_clips is not None:
        values = values[:num_clips]
    result = values.tolist()
    if config.recipe == "flashvtg":
        decimals = 4 if config.decimals is None else config.decimals
        result = [_round_decimals(value, decimals) for value in result]
    return result
