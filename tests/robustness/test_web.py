"""Hostile input to ``vtgkit serve``: oversized and non-video uploads, eight concurrent queries, escaping file names.

The concurrency case runs a real uvicorn server on 127.0.0.1 (a free port) in a thread and sends a bounded number of
requests (8), each with a timeout; nothing leaves the machine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest

from web_app_helpers import build_app, demo_grounder, live_server, require_web_stack

require_web_stack()
from starlette.testclient import TestClient  # noqa: E402  (after the skip when the extra is missing)

LIMIT = 64_000  # bytes: large enough for the 5.5 kB sample video, small enough to exceed cheaply


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    return demo_grounder(tmp_path_factory.mktemp("vtgkit-cache"))


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def client(demo: tuple[Any, dict[str, Any]], uploads: Path) -> Iterator[TestClient]:
    grounder, sample = demo
    with TestClient(build_app(grounder, sample, uploads, max_upload_bytes=LIMIT)) as test_client:
        yield test_client


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*")) if folder.exists() else []


def test_oversized_upload_with_declared_length_is_refused(client: TestClient, uploads: Path) -> None:
    response = client.post("/api/videos", params={"name": "big.mp4"}, content=b"\0" * (LIMIT + 1))
    assert response.status_code == 413
    assert "too large" in response.json()["error"] and "64 kB" in response.json()["error"]
    assert _files(uploads) == []


def test_oversized_streamed_upload_stops_at_the_limit(client: TestClient, uploads: Path) -> None:
    sent = []

    def body() -> Iterator[bytes]:  # no Content-Length: chunked, so the server must count while it writes
        for _ in range(16):
            sent.append(1)
            yield b"\0" * 16_000

    response = client.post("/api/videos", params={"name": "big.mp4"}, content=body())
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert _files(uploads) == []  # the partial file is deleted (no .partial-* either)


def test_upload_is_streamed_to_disk_and_stopped_at_the_limit(tmp_path: Path) -> None:
    import asyncio

    from vtgkit.app.uploads import UploadTooLargeError, VideoLibrary

    library = VideoLibrary(tmp_path / "uploads", max_upload_bytes=LIMIT)
    pulled: list[int] = []
    on_disk: list[int] = []

    async def chunks() -> Any:
        for index in range(1000):  # 16 MB offered; the library must stop pulling soon after 64 kB
            pulled.append(index)
            on_disk.append(sum(path.stat().st_size for path in _files(tmp_path / "uploads")))
            yield b"\0" * 8_000

    with pytest.raises(UploadTooLargeError, match="too large"):
        asyncio.run(library.save(chunks(), "big.mp4"))
    assert len(pulled) == LIMIT // 8_000 + 1  # the chunk that crosses the limit is the last one read
    assert on_disk[-1] == LIMIT  # written to disk as it arrived (a hidden partial file), never past the limit
    assert _files(tmp_path / "uploads") == []  # and deleted on refusal


def test_live_server_refuses_a_declared_oversize_before_reading_it(demo: tuple[Any, dict[str, Any]],
                                                                  uploads: Path) -> None:
    import socket

    grounder, sample = demo
    with live_server(build_app(grounder, sample, uploads, max_upload_bytes=LIMIT)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            # 10 GB announced, nothing sent: the answer must come without the body
            conn.sendall(b"POST /api/videos?name=huge.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/octet-stream\r\nContent-Length: 10000000000\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):  # headers, then the JSON
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413"), head
    assert "too large" in json.loads(body)["error"]
    assert _files(uploads) == []


def test_non_video_upload_gets_the_decoder_message(client: TestClient, uploads: Path) -> None:
    response = client.post("/api/videos", params={"name": "holiday.mp4"}, content=b"this is a text file\n" * 50)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("holiday.mp4: ") and "video" in message  # the user's name, not the server's path
    assert str(uploads) not in message and "Traceback" not in message
    assert _files(uploads) == []


def test_empty_upload_gets_a_message(client: TestClient, uploads: Path) -> None:
    response = client.post("/api/videos", params={"name": "empty.mp4"}, content=b"")
    assert response.status_code == 400 and "empty" in response.json()["error"]
    assert _files(uploads) == []


def test_video_shorter_than_a_clip_gets_a_message(client: TestClient, tmp_path: Path) -> None:
    from tiny_grounder import write_video

    video = write_video(tmp_path / "blink.mp4", seconds=0.5)  # the demo model's clips are 2 s
    uploaded = client.post("/api/videos", params={"name": "blink.mp4"}, content=video.read_bytes())
    assert uploaded.status_code == 201, uploaded.text
    response = client.post("/api/ground", json={"video": uploaded.json()["id"], "query": "a red circle"})
    assert response.status_code == 400
    assert "blink.mp4" in response.json()["error"] and "shorter than one clip" in response.json()["error"]


def test_file_names_cannot_escape_the_upload_folder(client: TestClient, demo: tuple[Any, dict[str, Any]],
                                                    uploads: Path, tmp_path: Path) -> None:
    data = Path(demo[1]["path"]).read_bytes()
    outside = Path("/tmp") / f"vtgkit-escape-{uuid.uuid4().hex}.mp4"
    names = ["../escape.mp4", "../../escape.mp4", str(outside), "..\\..\\escape.mp4", "sub/dir/escape.mp4",
             "..", "/", "%2e%2e%2fescape.mp4", "escape.mp4\x00.txt", "C:\\escape.mp4"]
    before = {path for path in _files(tmp_path) if uploads not in path.parents and path != uploads}
    for name in names:
        response = client.post(f"/api/videos?name={quote(name, safe='')}", content=data)
        assert response.status_code == 201, (name, response.text)
        shown = response.json()["name"]
        assert "/" not in shown and "\\" not in shown and shown not in {".", ".."}
    after = {path for path in _files(tmp_path) if uploads not in path.parents and path != uploads}
    assert after == before  # nothing written beside the upload folder
    assert not outside.exists()
    stored = _files(uploads)
    assert len(stored) == len(names)
    assert all(path.parent == uploads and len(path.stem) == 32 and path.is_file() for path in stored)


def test_eight_concurrent_queries_are_all_answered(demo: tuple[Any, dict[str, Any]], uploads: Path) -> None:
    grounder, sample = demo
    queries = [f"{colour} object is visible" for colour in
               ("the green", "the red", "a blue", "the magenta", "a yellow", "the cyan", "an orange", "the white")]

    def ask(base: str, query: str) -> tuple[int, dict[str, Any]]:
        request = Request(f"{base}/api/ground", data=json.dumps({"video": "sample", "query": query}).encode(),
                          headers={"Content-Type": "application/json"}, method="POST")
        with urlopen(request, timeout=120) as response:  # noqa: S310  (127.0.0.1 only)
            return response.status, json.loads(response.read())

    with live_server(build_app(grounder, sample, uploads)) as base:
        assert base.startswith("http://127.0.0.1:")
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda query: ask(base, query), queries))
        with urlopen(f"{base}/api/info", timeout=30) as response:  # still serving afterwards  # noqa: S310
            assert response.status == 200
    assert [status for status, _ in answers] == [200] * 8
    assert [answer["query"] for _, answer in answers] == queries
    assert all(answer["moments"] for _, answer in answers)


def test_oversized_query_bodies_are_refused(client: TestClient) -> None:
    declared = client.post("/api/ground", content=b"{" + b" " * 100_000 + b"}",
                           headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "request body larger than" in declared.json()["error"]

    def body() -> Iterator[bytes]:  # chunked: counted while read
        yield b'{"video": "sample", "query": "'
        for _ in range(20):
            yield b"x" * 10_000
        yield b'"}'

    streamed = client.post("/api/ground", content=body(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "request body larger than" in streamed.json()["error"]
    assert client.post("/api/ground", json={"video": "sample", "query": "the red object"}).status_code == 200


def test_page_answers_while_the_model_is_busy(demo: tuple[Any, dict[str, Any]], uploads: Path) -> None:
    grounder, sample = demo
    app = build_app(grounder, sample, uploads)
    service = app.state.service
    with live_server(app) as base, ThreadPoolExecutor(max_workers=1) as pool:
        with service.model_lock:  # the model is "busy": a grounding request has to wait for it
            request = Request(f"{base}/api/ground", data=json.dumps({"video": "sample", "query": "a red circle"})
                              .encode(), headers={"Content-Type": "application/json"}, method="POST")
            pending = pool.submit(lambda: urlopen(request, timeout=120).read())  # noqa: S310  (127.0.0.1 only)
            for path in ("/", "/api/info", "/videos/sample"):  # the page, its data and the video still come
                with urlopen(f"{base}{path}", timeout=30) as response:  # noqa: S310
                    assert response.status == 200
            assert not pending.done()
        assert json.loads(pending.result(timeout=120))["moments"]
