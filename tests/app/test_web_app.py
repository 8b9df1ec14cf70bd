"""``vtgkit serve``'s endpoints through Starlette's TestClient, with the demo's SynthVTG model (offline, fast)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from tiny_grounder import write_video
from web_app_helpers import build_app, demo_grounder, require_web_stack

require_web_stack()
from starlette.testclient import TestClient  # noqa: E402  (after the skip when the extra is missing)

GREEN = "the green object is visible"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    return demo_grounder(tmp_path_factory.mktemp("vtgkit-cache"))


@pytest.fixture
def client(demo: tuple[Any, dict[str, Any]], tmp_path: Path) -> TestClient:
    grounder, sample = demo
    with TestClient(build_app(grounder, sample, tmp_path / "uploads")) as test_client:
        yield test_client


def test_page_has_the_controls(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    for element in ('id="sample-button"', 'id="file-input"', 'id="query"', 'id="submit"', '<video id="player"',
                    'id="moments"', 'id="timeline"'):
        assert element in response.text
    assert "<script src=" not in response.text  # nothing fetched from elsewhere


def test_info_lists_the_sample_and_its_queries(client: TestClient, demo: tuple[Any, dict[str, Any]]) -> None:
    info = client.get("/api/info").json()
    assert info["sample"]["id"] == "sample"
    assert info["sample"]["queries"] == list(demo[1]["queries"])
    assert info["checkpoint"] == "synthvtg_r2tuning.safetensors"  # a file name, not the server's path
    assert info["max_upload_bytes"] == 50_000_000


def test_ground_the_sample(client: TestClient, demo: tuple[Any, dict[str, Any]]) -> None:
    pytest.importorskip("matplotlib")
    response = client.post("/api/ground", json={"video": "sample", "query": GREEN, "top_k": 3})
    assert response.status_code == 200, response.text
    answer = response.json()
    moments = answer["moments"]
    assert 1 <= len(moments) <= 3 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)
    assert all(0 <= m["start"] < m["end"] <= answer["duration"] for m in moments)
    # the same moments as the Python API gives
    expected = demo[0].ground(demo[1]["path"], GREEN, top_k=3)
    assert [(m["start"], m["end"]) for m in moments] == [(round(e.start, 3), round(e.end, 3)) for e in expected]
    assert answer["timeline"].startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(answer["timeline"].split(",", 1)[1])


def test_second_query_reuses_the_video_features(demo: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    grounder, sample = demo
    video = write_video(tmp_path / "fresh.mp4", seconds=12.0)  # a file no other test has encoded
    with TestClient(build_app(grounder, sample, tmp_path / "uploads")) as client:
        uploaded = client.post("/api/videos", params={"name": "fresh.mp4"}, content=video.read_bytes()).json()
        first = client.post("/api/ground", json={"video": uploaded["id"], "query": "a red circle"}).json()
        second = client.post("/api/ground", json={"video": uploaded["id"], "query": "a blue square"}).json()
    assert first["features_reused"] is False and second["features_reused"] is True


def test_video_is_served_with_range_requests(client: TestClient, demo: tuple[Any, dict[str, Any]]) -> None:
    data = Path(demo[1]["path"]).read_bytes()
    whole = client.get("/videos/sample")
    assert whole.status_code == 200 and whole.content == data and whole.headers["accept-ranges"] == "bytes"
    part = client.get("/videos/sample", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    assert part.content == data[100:300]


def test_upload_then_ground_then_cleanup(demo: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    grounder, sample = demo
    uploads = tmp_path / "uploads"
    video = write_video(tmp_path / "my clip.mp4", seconds=10.0)
    with TestClient(build_app(grounder, sample, uploads)) as client:
        response = client.post("/api/videos", params={"name": "my clip.mp4"}, content=video.read_bytes())
        assert response.status_code == 201, response.text
        uploaded = response.json()
        assert uploaded["name"] == "my clip.mp4" and re.fullmatch(r"[0-9a-f]{32}", uploaded["id"])
        assert [path.name for path in uploads.iterdir()] == [f"{uploaded['id']}.mp4"]
        assert client.get(f"/videos/{uploaded['id']}").content == video.read_bytes()
        answer = client.post("/api/ground", json={"video": uploaded["id"], "query": "a red circle", "top_k": 2})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["moments"]) <= 2
    assert list(uploads.iterdir()) == []  # the server deletes what it wrote when it stops


def test_oldest_upload_is_dropped_beyond_the_cap(demo: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    grounder, sample = demo
    data = Path(sample["path"]).read_bytes()
    with TestClient(build_app(grounder, sample, tmp_path / "uploads", max_uploads=2)) as client:
        ids = [client.post("/api/videos", params={"name": f"{i}.mp4"}, content=data).json()["id"] for i in range(3)]
        assert client.get(f"/videos/{ids[0]}").status_code == 404
        assert client.get(f"/videos/{ids[2]}").status_code == 200
        assert sorted(path.stem for path in (tmp_path / "uploads").iterdir()) == sorted(ids[1:])
        assert client.get("/videos/sample").status_code == 200  # the sample is never dropped


@pytest.mark.parametrize(("payload", "status", "words"), [
    ({"video": "sample", "query": "   "}, 400, "query is empty"),
    ({"video": "nope", "query": GREEN}, 404, "unknown video 'nope'"),
    ({"video": "sample", "query": GREEN, "top_k": 0}, 422, "top_k"),
    ({"video": "sample"}, 422, "query"),
    ({"video": "sample", "query": "x" * 5000}, 422, "query"),
])
def test_bad_requests_get_a_message(client: TestClient, payload: dict[str, Any], status: int, words: str) -> None:
    response = client.post("/api/ground", json=payload)
    assert response.status_code == status
    assert words in response.json()["error"]


def test_unknown_video_url_is_404(client: TestClient) -> None:
    for video_id in ("nope", "..%2F..%2Fetc%2Fpasswd", "sample.mp4"):
        assert client.get(f"/videos/{video_id}").status_code == 404


def test_display_names() -> None:
    from vtgkit.app.uploads import display_name, format_size, suffix_of

    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\clip.MP4") == "clip.MP4"
    assert display_name("..") == "upload" and display_name(None) == "upload" and display_name("a/") == "upload"
    assert display_name("bad\x00\x1b[31mname.mp4") == "bad[31mname.mp4"
    assert len(display_name("x" * 1000)) == 120
    assert suffix_of("clip.MP4") == ".mp4" and suffix_of("notes.txt") == ".video" and suffix_of("x") == ".video"
    assert format_size(1_500_000) == "1.5 MB" and format_size(999) == "999 bytes"
