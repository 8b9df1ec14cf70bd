from __future__ import annotations

import json
from pathlib import Path

import pytest

from vtgkit.batch_jobs import BatchItem, read_manifest, read_results, run_batch
from vtgkit.errors import AnnotationError, VideoError


def _write_manifest(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


ROWS = [
    {"video": "a.mp4", "query": "a dog runs"},
    {"video": "b.mp4", "query": "a cat sleeps", "id": "q2", "note": "kept"},
    {"video": "a.mp4", "query": "a dog swims"},
    {"video": "/abs/c.mp4", "query": "bad one"},
]


def _fake_ground(item: BatchItem) -> dict:
    if item.query == "bad one":
        raise VideoError(f"{item.video}: not a video")
    return {"moments": [[0.0, 2.0, 0.5]], "query_length": len(item.query)}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_read_jsonl_manifest(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS))
    assert [item.item_id for item in items][1] == "q2"
    assert items[0].item_id == "a.mp4::a dog runs"
    assert items[0].video == str(tmp_path / "a.mp4") and items[3].video == "/abs/c.mp4"
    assert items[1].extra == {"note": "kept"} and items[2].line == 3


def test_read_csv_manifest(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('video,query\nx.mp4,"a, b"\ny.mp4,c\n', encoding="utf-8")
    items = read_manifest(path)
    assert [(item.query, item.line) for item in items] == [("a, b", 2), ("c", 3)]
    path.write_text("path,text\nx.mp4,a\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match="line 1: header must name columns 'video' and 'query'"):
        read_manifest(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"video": "a.mp4", "query": "q"}\n{"video": "a.mp4"\n', "line 2: not valid JSON"),
        ('{"video": "a.mp4", "query": ""}\n', "line 1: 'query' must be a non-empty string"),
        ('[1, 2]\n', "line 1: expected a JSON object"),
        ('{"video": "a.mp4", "query": "q"}\n{"video": "a.mp4", "query": "q"}\n', "line 2: id .* repeats line 1"),
        ("\n\n", "no items"),
    ],
)
def test_bad_manifest_names_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError, match=message):
        read_manifest(path)


def test_missing_or_wrong_manifest(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "m.txt").write_text("x", encoding="utf-8")
    with pytest.raises(AnnotationError, match=".jsonl or .csv"):
        read_manifest(tmp_path / "m.txt")


def test_run_writes_one_line_per_item_and_counts_failures(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS))
    results = tmp_path / "out" / "results.jsonl"
    summary = run_batch(items, _fake_ground, results, progress=False)
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped_done) == (4, 3, 1, 0)
    assert summary.failures == [("/abs/c.mp4::bad one", "/abs/c.mp4: not a video")]
    lines = _lines(results)
    # Grouped by video: both a.mp4 queries first, in manifest order.
    assert [line["query"] for line in lines] == ["a dog runs", "a dog swims", "a cat sleeps", "bad one"]
    assert lines[0]["status"] == "ok" and lines[0]["moments"] == [[0.0, 2.0, 0.5]]
    assert lines[3] == {"id": "/abs/c.mp4::bad one", "video": "/abs/c.mp4", "query": "bad one", "status": "error",
                        "error_type": "VideoError", "error": "/abs/c.mp4: not a video"}
    assert "4 items: 3 done now, 0 already done, 1 failed" in summary.describe()


def test_rerun_skips_done_and_retries_failures(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS))
    results = tmp_path / "results.jsonl"
    run_batch(items, _fake_ground, results, progress=False)
    calls: list[str] = []

    def ground_now_works(item: BatchItem) -> dict:
        calls.append(item.item_id)
        return {"moments": []}

    summary = run_batch(items, ground_now_works, results, progress=False)
    assert calls == ["/abs/c.mp4::bad one"]
    assert (summary.skipped_done, summary.succeeded, summary.failed) == (3, 1, 0)
    latest, partial = read_results(results)
    assert not partial and all(record["status"] == "ok" for record in latest.values())


def test_interrupted_run_resumes_after_last_finished_item(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS[:3]))
    results = tmp_path / "results.jsonl"
    seen: list[str] = []

    def killed_on_third(item: BatchItem) -> dict:
        seen.append(item.item_id)
        if len(seen) == 3:
            raise KeyboardInterrupt  # not caught: stops the run like Ctrl-C
        return {"moments": []}

    with pytest.raises(KeyboardInterrupt):
        run_batch(items, killed_on_third, results, progress=False)
    assert len(_lines(results)) == 2
    again: list[str] = []
    run_batch(items, lambda item: again.append(item.item_id) or {"moments": []}, results, progress=False)
    assert again == [seen[2]]


def test_partial_last_line_is_detected_and_redone(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS[:3]))
    results = tmp_path / "results.jsonl"
    run_batch(items, _fake_ground, results, progress=False)
    data = results.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    results.write_bytes(data[: last_start + 17])  # killed in the middle of writing the last line
    redone: list[str] = []
    summary = run_batch(items, lambda item: redone.append(item.item_id) or {"moments": []}, results, progress=False)
    assert summary.partial_line_redone and len(redone) == 1
    lines = _lines(results)  # every line parses again
    assert len(lines) == 3 and {line["id"] for line in lines} == {item.item_id for item in items}


def test_corrupt_line_in_the_middle_stops_with_line_number(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "a", "status": "ok"}\nnot json\n{"id": "b", "status": "ok"}\n', encoding="utf-8")
    with pytest.raises(AnnotationError, match="line 2: not valid JSON"):
        read_results(results)
    results.write_text('{"id": "a"}\n', encoding="utf-8")
    with pytest.raises(AnnotationError, match="line 1: expected an object with 'id' and 'status'"):
        read_results(results)


def test_unserialisable_result_is_a_failure_not_a_broken_file(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS[:1]))
    results = tmp_path / "results.jsonl"
    summary = run_batch(items, lambda item: {"moments": object()}, results, progress=False)
    assert summary.failed == 1 and _lines(results)[0]["error_type"] == "TypeError"


def test_results_with_unknown_ids_are_counted(tmp_path: Path) -> None:
    items = read_manifest(_write_manifest(tmp_path, ROWS[:1]))
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "old", "status": "ok"}\n', encoding="utf-8")
    summary = run_batch(items, _fake_ground, results, progress=False)
    assert summary.unknown_ids_in_results == 1 and "1 result lines have ids not in the manifest" in summary.describe()


def test_killed_process_resumes_without_losing_or_repeating_items(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    rows = [{"video": f"v{index % 3}.mp4", "query": f"query {index}"} for index in range(40)]
    manifest = _write_manifest(tmp_path, rows)
    results = tmp_path / "results.jsonl"
    script = (
        "import sys, time\n"
        "from vtgkit.batch_jobs import read_manifest, run_batch\n"
        "calls = []\n"
        "def slow(item):\n"
        "    calls.append(item)\n"
        "    time.sleep(60 if len(calls) > 5 else 0.01)  # hangs on the 6th item until killed\n"
        "    return {'moments': [[0.0, 1.0, 0.5]] * 50}\n"
        "run_batch(read_manifest(sys.argv[1]), slow, sys.argv[2], progress=False)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(manifest), str(results)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not results.exists() or results.read_bytes().count(b"\n") < 5):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert results.exists()
    written_before = results.read_bytes().count(b"\n")
    assert written_before == 5
    summary = run_batch(read_manifest(manifest), _fake_ground, results, progress=False)
    assert summary.skipped_done == written_before and summary.succeeded == 40 - written_before
    lines = _lines(results)
    assert sorted(line["id"] for line in lines) == sorted(f"v{i % 3}.mp4::query {i}" for i in range(40))
