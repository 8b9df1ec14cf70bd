"""Shared fixtures: seeded RNG, tiny dimensions, and the locations of the shared reference folders."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VTGKIT_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(env_var: str, default: Path) -> Path:
    """A reference folder: from ``env_var`` when set, else its default under ../shared."""
    value = os.environ.get(env_var)
    return Path(value) if value else default


def require_path(path: Path, what: str) -> Path:
    """Skip the calling test with a reason naming the missing file when ``path`` does not exist."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set the environment variable or place ../shared beside the repo)")
    return path


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def annotations_dir() -> Path:
    return require_path(SHARED / "data" / "annotations", "shared benchmark annotations")
