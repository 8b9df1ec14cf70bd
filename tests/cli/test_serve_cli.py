"""``vtgkit serve``: option checks, the message when the app extra is missing, a port in use, and the app it starts
(the server loop replaced by a stand-in that queries the app in process: nothing is served)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest


def test_missing_app_extra_says_what_to_install(run_vtgkit, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "fastapi" else real_find_spec(name, *rest))
    code, _, err = run_vtgkit("serve", model=False)
    assert code == 2
    assert "needs fastapi" in err and "pip install 'vtgkit[app]'" in err and "Traceback" not in err


@pytest.mark.parametrize(("option", "words"), [(("--max-upload-mb", "0"), "--max-upload-mb must be > 0"),
                                               (("--port", "70000"), "--port must be between 0 and 65535")])
def test_bad_options_are_refused(run_vtgkit, option: tuple[str, str], words: str) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    code, _, err = run_vtgkit("serve", *option, model=False)
    assert code == 2 and words in err


def test_serve_builds_the_page_with_the_sample(run_vtgkit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("fastapi", "uvicorn", "httpx", "av"):
        pytest.importorskip(module)
    from starlette.testclient import TestClient

    import vtgkit.cli.serve as serve

    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    seen: dict[str, Any] = {}

    def fake_serve(app: Any, sock: socket.socket) -> None:
        seen.update(address=sock.getsockname())
        with TestClient(app) as client:
            seen["info"] = client.get("/api/info").json()
            seen["answer"] = client.post("/api/ground", json={"video": "sample", "query": "the red object"}).json()
            seen["oversized"] = client.post("/api/videos", content=b"\0" * 2_000_001).status_code

    monkeypatch.setattr(serve, "serve_forever", fake_serve)
    uploads = tmp_path / "uploads"
    code, _, err = run_vtgkit("serve", "--port", "0", "--max-upload-mb", "2", "--upload-dir", str(uploads),
                              model=False)
    assert code == 0, err
    host, port = seen["address"]
    assert host == "127.0.0.1" and port > 0 and f"open http://127.0.0.1:{port}" in err
    assert seen["info"]["max_upload_bytes"] == 2_000_000 and seen["info"]["sample"]["id"] == "sample"
    assert seen["answer"]["moments"]
    assert seen["oversized"] == 413
    assert uploads.is_dir() and list(uploads.iterdir()) == []


def test_listening_beyond_this_machine_warns(run_vtgkit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("fastapi", "uvicorn", "av"):
        pytest.importorskip(module)
    import vtgkit.cli.serve as serve

    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(serve, "serve_forever", lambda app, sock: None)
    # port 0 on every address, closed again at once: nothing is served
    code, _, err = run_vtgkit("serve", "--host", "0.0.0.0", "--port", "0", model=False)
    assert code == 0 and "anyone who can reach it" in err


def test_port_in_use_is_a_clear_error(run_vtgkit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("fastapi", "uvicorn", "av"):
        pytest.importorskip(module)
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path / "cache"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, _, err = run_vtgkit("serve", "--port", str(port), model=False)
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}: the port is in use" in err
