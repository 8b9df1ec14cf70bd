"""Imports flow one way (conventions.md): inference code never pulls in training or evaluation code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vtgkit"

# package area -> areas it must never import
FORBIDDEN: dict[str, set[str]] = {
    "spans": {"nn", "models", "data", "evaluation", "features", "train", "api", "cli", "app", "pretrained"},
    "structures": {"nn", "models", "data", "evaluation", "features", "train", "api", "cli", "app", "pretrained"},
    "nn": {"models", "data", "evaluation", "features", "train", "api", "cli", "app", "pretrained"},
    "models": {"data", "evaluation", "features", "train", "api", "cli", "app"},
    "data": {"nn", "models", "evaluation", "features", "train", "api", "cli", "app", "pretrained"},
    "evaluation": {"nn", "models", "data", "features", "train", "api", "cli", "app", "pretrained"},
    "features": {"models", "evaluation", "train", "api", "cli", "app"},
    # SynthVTG writes videos, annotations and features like `features` does; it never needs a model or the trainer.
    "synth": {"models", "evaluation", "train", "api", "cli", "app"},
    "pretrained": {"data", "evaluation", "features", "train", "api", "cli", "app"},
    "api": {"train", "cli", "app"},
    "app": {"nn", "models", "data", "evaluation", "features", "train", "cli", "pretrained"},
}
# api-level helpers that need no model: they see only spans/structures/errors (and each other), never model code.
_NO_MODEL_CODE = {"nn", "models", "data", "evaluation", "features", "train", "api", "cli", "app", "pretrained"}
FORBIDDEN.update(
    {area: _NO_MODEL_CODE for area in ("viz", "windowing", "summary", "moment_formats", "batch_jobs", "video_cut")}
)
# the one atomic-write mechanism sits below everything (standard library only): it imports nothing from the package
_EVERY_AREA = {path.name.removesuffix(".py") for path in PACKAGE.iterdir()
               if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").is_file())}
FORBIDDEN["atomic_files"] = _EVERY_AREA - {"atomic_files"}


def _area(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported_areas(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    areas: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "vtgkit" and len(parts) > 1:
                areas.add(parts[1])
    return areas


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    area = _area(path)
    bad = _imported_areas(path) & FORBIDDEN.get(area, set())
    assert not bad, f"{path.relative_to(PACKAGE)} ({area}) imports {sorted(bad)}, against the import direction"
