"""``vtgkit ground`` / ``highlights`` / ``summarize`` through ``vtgkit.cli.main`` with the tiny checkpoint."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

SRT_CUE = re.compile(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)$")


def srt_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    seconds, millis = rest.split(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def test_ground_table_and_json(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    video = str(grounding_assets["video"])
    code, out, err = run_vtgkit("ground", video, "a white box moves", "--top-k", "3")
    assert code == 0, err
    assert out.startswith("query: a white box moves\n")
    assert len([line for line in out.splitlines() if re.match(r"\s*\d+\s", line)]) in (1, 2, 3)

    code, out, err = run_vtgkit("ground", video, "a white box moves", "--top-k", "3", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["query"] == "a white box moves" and record["video"] == video
    assert 1 <= len(record["moments"]) <= 3
    assert [m["rank"] for m in record["moments"]] == list(range(1, len(record["moments"]) + 1))
    for moment in record["moments"]:
        assert 0 <= moment["start"] < moment["end"] <= record["duration"] + 1e-6


def test_ground_csv_and_srt(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    video = str(grounding_assets["video"])
    code, out, _ = run_vtgkit("ground", video, "stripes", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and set(rows[0]) >= {"rank", "start", "end", "score"}

    code, out, _ = run_vtgkit("ground", video, "stripes", "--srt")
    assert code == 0
    cues = out.strip().split("\n\n")
    assert cues
    previous_start = -1.0
    for number, cue in enumerate(cues, start=1):
        match = SRT_CUE.match(cue)
        assert match, cue
        assert int(match.group(1)) == number
        start, end = srt_seconds(match.group(2)), srt_seconds(match.group(3))
        assert previous_start <= start < end
        previous_start = start


def test_ground_cut_plot_and_report(run_vtgkit, grounding_assets: dict[str, Path], tmp_path: Path) -> None:
    import av

    query = '<b>box</b> & "stripes"'
    report, plot = tmp_path / "report.html", tmp_path / "timeline.png"
    code, _, err = run_vtgkit("ground", str(grounding_assets["video"]), query, "--top-k", "2", "--cut",
                              str(tmp_path / "clips"), "--plot", str(plot), "--report", str(report))
    assert code == 0, err
    clips = sorted((tmp_path / "clips").glob("*.mp4"))
    assert 1 <= len(clips) <= 2
    for clip in clips:
        with av.open(str(clip)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "&lt;b&gt;box&lt;/b&gt; &amp; &quot;stripes&quot;" in page
    assert "<b>box</b>" not in page


def test_highlights_json_has_every_clip(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    code, out, err = run_vtgkit("highlights", str(grounding_assets["video"]), "a white box", "--json")
    assert code == 0, err
    record = json.loads(out)
    clips = record["clips"]
    assert [clip["clip"] for clip in clips] == list(range(len(clips)))
    assert clips[-1]["end"] == pytest.approx(record["duration"])
    assert len(clips) * record["clip_len"] >= record["duration"]

    code, out, _ = run_vtgkit("highlights", str(grounding_assets["video"]), "a white box", "--top-k", "4")
    assert code == 0
    assert len(out.strip().splitlines()) == 1 + 4  # query line + 4 clips


@pytest.mark.parametrize(("budget", "limit"), [("6", 6.0), ("30%", 0.3 * 21.0)])
def test_summarize_budget(run_vtgkit, grounding_assets: dict[str, Path], budget: str, limit: float) -> None:
    code, out, err = run_vtgkit("summarize", str(grounding_assets["video"]), "--budget", budget, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["moments"]
    assert record["summary_seconds"] <= limit + 1e-6
    assert sum(m["end"] - m["start"] for m in record["moments"]) == pytest.approx(record["summary_seconds"])
