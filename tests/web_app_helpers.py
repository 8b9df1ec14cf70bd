"""Helpers of the ``vtgkit serve`` tests: the demo's Grounder built offline, the app, and a live uvicorn server.

The live server listens on 127.0.0.1 only, on a port the OS picks, in a thread of the test process; it is stopped
when the ``with`` block ends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def require_web_stack() -> None:
    """Skip unless the app extra, the test client and PyAV (to decode the sample) are installed."""
    for module in ("fastapi", "uvicorn", "httpx", "av"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'vtgkit[app,dev]')")


def demo_grounder(cache: Path) -> tuple[Any, dict[str, Any]]:
    """The demo's SynthVTG Grounder and sample; its tiny CLIP is rebuilt into ``cache`` (not the user's cache)."""
    from vtgkit.cli.serve import load_grounder

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VTGKIT_CACHE", str(cache))
        grounder, sample = load_grounder(None)
    assert sample is not None, "the demo assets (sample video) are missing from src/vtgkit/assets"
    return grounder, sample


def build_app(grounder: Any, sample: dict[str, Any] | None, upload_dir: Path, max_upload_bytes: int = 50_000_000,
              max_uploads: int = 20) -> Any:
    """The app exactly as ``vtgkit serve`` builds it."""
    from vtgkit.cli.serve import build_app as serve_app

    return serve_app(grounder, sample, upload_dir, max_upload_bytes, max_uploads=max_uploads)


@contextmanager
def live_server(app: Any, start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1:<free port> in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout  # a bound on waiting, not a speed check
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        sock.close()
