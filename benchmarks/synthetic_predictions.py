"""Synthetic prediction files for the evaluator benchmarks and cross-checks (no model needed).

The predictions are built to hit the evaluators' corner cases: unsorted lists, tied scores, duplicate windows, single
windows, windows equal to a GT window (IoU exactly on a threshold), zero-length windows, windows covering two GT
windows, saliency lists shorter or longer than the clip count and with tied values.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def _window(rng: random.Random, duration: float, grid: float | None, gt: list[list[float]]) -> list[float]:
    kind = rng.random()
    if gt and kind < 0.25:
        start, end = rng.choice(gt)
        if rng.random() < 0.5 and grid:
            start, end = start + grid * rng.randint(-2, 2), end + grid * rng.randint(-2, 2)
    elif len(gt) > 1 and kind < 0.32:
        start, end = min(w[0] for w in gt), max(w[1] for w in gt)
    else:
        start = rng.uniform(0, duration)
        end = start + rng.uniform(0, duration / 2)
    if grid:
        start, end = round(start / grid) * grid, round(end / grid) * grid
        start, end = round(start, 6), round(end, 6)
    start = max(0.0, min(start, end))
    end = max(start, end)
    if rng.random() < 0.03:
        end = start  # zero-length window
    return [start, end]


def synthetic_prediction(row: dict[str, Any], rng: random.Random, grid: float | None, saliency: bool) -> dict[str, Any]:
    """One prediction record for a ground-truth row."""
    duration = float(row["duration"])
    gt = row.get("relevant_windows") or []
    count = 1 if rng.random() < 0.1 else rng.randint(2, 15)
    windows = []
    for _ in range(count):
        if windows and rng.random() < 0.1:
            windows.append(list(rng.choice(windows)))  # duplicate window (maybe another score below)
            windows[-1] = windows[-1][:2]
        else:
            windows.append(_window(rng, duration, grid, gt))
    scores = [round(rng.random(), 1 if rng.random() < 0.5 else 4) for _ in windows]
    rows = [w + [s] for w, s in zip(windows, scores, strict=True)]
    if rng.random() < 0.7:
        rows.sort(key=lambda r: -r[2])  # most lists sorted, some not
    record: dict[str, Any] = {"qid": row["qid"], "vid": row.get("vid"), "pred_relevant_windows": rows}
    if saliency:
        num_clips = int(duration / 2)
        length = max(1, num_clips + rng.choice([0, 0, 0, -2, -1, 1, 3]))
        decimals = rng.choice([1, 2, 4])
        record["pred_saliency_scores"] = [round(rng.uniform(-1, 1), decimals) for _ in range(length)]
    return record


def write_synthetic(gt_path: str | Path, out_path: str | Path, seed: int, grid: float | None, saliency: bool) -> int:
    """Write one prediction per ground-truth line of ``gt_path`` (JSON lines) to ``out_path``; returns the count."""
    rng = random.Random(seed)
    rows = [json.loads(line) for line in Path(gt_path).read_text().splitlines() if line.strip()]
    with open(out_path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(synthetic_prediction(row, rng, grid, saliency)) + "\n")
    return len(rows)
