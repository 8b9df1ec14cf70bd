"""Training checkpoints: safe loads and the full state needed for an exact resume (written atomically by
:func:`vtgkit.atomic_files.torch_save_atomic`).

A checkpoint is a dict of tensors and plain Python values only, so it loads with ``torch.load(weights_only=True)``:
``{"format": "vtgkit-train/1", "model": state_dict, "optimizer": ..., "schedule": ..., "scaler": ... | None,
"progress": {...}, "rng": {...}, "config": {...}, "best": {...}}``. RNG states are those at the checkpointed step
boundary: python ``random``, numpy's legacy global generator, torch CPU and (when present) CUDA.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtgkit.errors import CheckpointError

FORMAT = "vtgkit-train/1"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing, truncated or unsafe file, or not a vtgkit training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or unsafe pickles
        reason = f"{type(error).__name__}: {error}"
        raise CheckpointError(f"{path}: cannot load with weights_only=True ({reason})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: expected a vtgkit training checkpoint (format {FORMAT!r}), found {found!r}")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states, as tensors and plain values (numpy's key array becomes an int64 tensor)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    # random.setstate needs tuples; a round trip through some serialisers turns them into lists.
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(item) for item in value)
    return value
