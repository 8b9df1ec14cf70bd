"""``vtgkit batch``: a manifest of videos x queries, results JSON lines, resume."""

from __future__ import annotations

import json
from pathlib import Path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_batch_runs_resumes_and_records_failures(run_vtgkit, grounding_assets: dict[str, Path],
                                                  tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    video = str(grounding_assets["video"])
    entries = [{"video": video, "query": "a white box"}, {"video": video, "query": "stripes"},
               {"video": "missing.mp4", "query": "a dog", "id": "broken"}]
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")
    output = tmp_path / "results.jsonl"

    code, _, err = run_vtgkit("batch", str(manifest), "--output", str(output), "--top-k", "2")
    assert code == 1  # one item failed
    lines = read_lines(output)
    assert len(lines) == 3
    done = [line for line in lines if line["status"] == "ok"]
    assert len(done) == 2
    for line in done:
        assert 1 <= len(line["moments"]) <= 2
        assert all(0 <= m["start"] < m["end"] <= line["duration"] + 1e-6 for m in line["moments"])
    failed = [line for line in lines if line["status"] == "error"]
    assert [line["id"] for line in failed] == ["broken"] and "no such file" in failed[0]["error"]
    assert "2 done now" in err and "1 failed" in err

    code, _, err = run_vtgkit("batch", str(manifest), "--output", str(output))
    assert code == 1
    assert "2 already done" in err
    assert len(read_lines(output)) == 4  # only the failed item was retried


def test_batch_highlights_task(run_vtgkit, grounding_assets: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'video,query\n"{grounding_assets["video"]}",a white box\n', encoding="utf-8")
    output = tmp_path / "out.jsonl"
    code, _, err = run_vtgkit("batch", str(manifest), "--output", str(output), "--task", "highlights")
    assert code == 0, err
    (line,) = read_lines(output)
    assert line["status"] == "ok" and line["clips"][-1]["end"] == line["duration"]
