"""Session fixtures of the grounding CLI tests: tiny checkpoint, CLIP and video, and a runner for ``vtgkit``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiny_grounder import write_tiny_checkpoint, write_tiny_clip, write_video


@pytest.fixture(scope="session")
def grounding_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to decode test videos")
    root = tmp_path_factory.mktemp("grounding")
    return {
        "checkpoint": write_tiny_checkpoint(root / "checkpoint"),
        "clip": write_tiny_clip(root / "clip.safetensors"),
        "video": write_video(root / "match video.mp4"),
        "cache": root / "cache",  # shared feature cache: each test decodes the video only if no test did before
    }


@pytest.fixture
def run_vtgkit(grounding_assets: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple]:
    """``run_vtgkit(*argv, model=True)`` → (exit code, stdout, stderr); model options are appended for the tiny
    checkpoint unless ``model=False``."""
    from vtgkit.cli.main import main

    def run(*argv: str, model: bool = True) -> tuple[int, str, str]:
        args = list(argv)
        if model:
            args += ["--checkpoint", str(grounding_assets["checkpoint"]), "--clip-weights",
                     str(grounding_assets["clip"]), "--cache-dir", str(grounding_assets["cache"]), "--quiet"]
        code = main(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
