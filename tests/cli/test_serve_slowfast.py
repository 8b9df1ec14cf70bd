"""``vtgkit serve --slowfast-weights``: the SlowFast weights reach a FlashVTG checkpoint's grounder (as with
``vtgkit ground``); with the demo model, an R²-Tuning checkpoint or a missing file the option is refused with one
line, before the port is taken (the server loop is replaced by an in-process client: nothing is served)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from tests.test_api_flashvtg import write_flashvtg_model_files

from tiny_grounder import write_video

for _module in ("fastapi", "uvicorn", "av"):
    pytest.importorskip(_module)


@pytest.fixture(scope="module")
def flashvtg_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve_flashvtg")
    return {
        **write_flashvtg_model_files(root),
        "video": write_video(root / "short.mp4", 5.0),  # 3 clips of 2 s: SlowFast stays quick
    }


def test_slowfast_weights_reach_the_flashvtg_grounder(run_vtgkit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      flashvtg_assets: dict[str, Path]) -> None:
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    import vtgkit.cli.serve as serve
    from vtgkit.flashvtg_grounding import FlashVTGGrounder

    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))  # an empty cache: no default SlowFast file in it
    seen: dict[str, Any] = {}
    build_app = serve.build_app

    def spy_build_app(grounder: Any, *args: Any, **kwargs: Any) -> Any:
        seen["grounder"] = grounder
        return build_app(grounder, *args, **kwargs)

    def fake_serve(app: Any, sock: socket.socket) -> None:
        with TestClient(app) as client:
            seen["info"] = client.get("/api/info").json()
            uploaded = client.post("/api/videos", params={"name": "short.mp4"},
                                   content=flashvtg_assets["video"].read_bytes()).json()
            seen["answer"] = client.post("/api/ground", json={"video": uploaded["id"], "query": "a box"}).json()

    monkeypatch.setattr(serve, "build_app", spy_build_app)
    monkeypatch.setattr(serve, "serve_forever", fake_serve)
    code, _, err = run_vtgkit("serve", "--port", "0", "--checkpoint", str(flashvtg_assets["checkpoint"]),
                              "--clip-weights", str(flashvtg_assets["clip"]), "--slowfast-weights",
                              str(flashvtg_assets["slowfast"]), model=False)
    assert code == 0, err
    grounder = seen["grounder"]
    assert isinstance(grounder, FlashVTGGrounder)
    # The feature-cache identity of the SlowFast is the given file (resolved path, size, mtime).
    assert grounder.extractor_settings["slowfast"].startswith(f"{flashvtg_assets['slowfast'].resolve()}:")
    assert seen["info"]["checkpoint"] == "model_best.ckpt"
    assert seen["answer"]["moments"], seen["answer"]  # grounded through the given SlowFast + CLIP + FlashVTG


@pytest.mark.parametrize("case", ["demo model", "r2tuning checkpoint", "missing file"])
def test_slowfast_weights_refused_with_one_line(run_vtgkit, grounding_assets: dict[str, Path], tmp_path: Path,
                                                flashvtg_assets: dict[str, Path], case: str) -> None:
    checkpoint = {"demo model": [], "r2tuning checkpoint": ["--checkpoint", str(grounding_assets["checkpoint"])],
                  "missing file": ["--checkpoint", str(flashvtg_assets["checkpoint"])]}[case]
    weights = tmp_path / "nowhere" / "SLOWFAST.pkl" if case == "missing file" else flashvtg_assets["slowfast"]
    # A port that is taken: the option must be refused first, so the message is about the option, not the port.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        code, _, err = run_vtgkit("serve", "--port", str(taken.getsockname()[1]), *checkpoint,
                                  "--slowfast-weights", str(weights), model=False)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    if case == "missing file":
        assert f"--slowfast-weights {weights}: no such file" in err
    else:
        assert "--slowfast-weights applies to FlashVTG checkpoints only" in err
        assert (case == "demo model") == ("demo's R2-Tuning model" in err)
