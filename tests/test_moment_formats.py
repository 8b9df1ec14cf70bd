from __future__ import annotations

import csv
import doctest
import io
import json
import re

import pytest

from vtgkit import moment_formats
from vtgkit.moment_formats import format_csv, format_json, format_srt, format_table
from vtgkit.structures import Moment

MOMENTS = [Moment(30.0, 42.5, 0.8731), Moment(2.0, 10.0, 0.5), Moment(3600.0, 3725.25, -0.125)]


def test_doctests() -> None:
    assert doctest.testmod(moment_formats).failed == 0


def test_table_is_aligned_and_ranked() -> None:
    text = format_table(MOMENTS, query="a man\nplays  guitar")
    lines = text.splitlines()
    assert lines[0] == "query: a man plays guitar"
    assert len({len(line) for line in lines[1:]}) == 1  # every row has the same width
    assert "1:00:00.0" in text and "1:02:05.2" in text and "0.8731" in text and "12.5s" in text
    assert [line.split()[0] for line in lines[3:]] == ["1", "2", "3"]


def test_table_without_moments() -> None:
    assert "(no moments)" in format_table([])


def test_json_round_trips_full_precision() -> None:
    record = json.loads(format_json(MOMENTS, video="v.mp4", query="q é", extra={"model": "r2tuning"}))
    assert record["video"] == "v.mp4" and record["query"] == "q é" and record["model"] == "r2tuning"
    assert record["moments"][2] == {"rank": 3, "start": 3600.0, "end": 3725.25, "score": -0.125}


def test_csv_parses_back() -> None:
    text = format_csv(MOMENTS, video="my video, 1.mp4", query='say "hi"')
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    assert rows[0] == {"rank": "1", "start": "30.0", "end": "42.5", "score": "0.8731", "video": "my video, 1.mp4",
                       "query": 'say "hi"'}
    assert list(csv.DictReader(io.StringIO(format_csv(MOMENTS))))[1].keys() == {"rank", "start", "end", "score"}


def test_srt_cues_in_time_order_with_rank() -> None:
    text = format_srt(MOMENTS, query="x --> y")
    blocks = text.strip().split("\n\n")
    assert len(blocks) == 3
    first = blocks[0].splitlines()
    assert first[0] == "1" and first[1] == "00:00:02,000 --> 00:00:10,000" and first[2].startswith("#2 ")
    assert "-->" not in first[2]
    for block in blocks:
        timing = block.splitlines()[1]
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", timing)
    assert "01:02:05,250" in text


def test_srt_zero_length_moment_gets_positive_duration() -> None:
    assert "00:00:05,000 --> 00:00:05,001" in format_srt([Moment(5.0, 5.0, 1.0)])


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_times_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        moment_formats.srt_timestamp(bad)
    with pytest.raises(ValueError):
        moment_formats.format_timestamp(bad)


def test_saliency_outputs() -> None:
    saliency = [0.1, 0.9, -0.2]
    rows = list(csv.DictReader(io.StringIO(moment_formats.format_saliency_csv(saliency, 2.0, duration=5.0))))
    assert [row["end"] for row in rows] == ["2.0", "4.0", "5.0"]
    table = moment_formats.format_saliency_table(saliency, 2.0, top_k=2)
    assert table.splitlines()[0].split()[:4] == ["0:02.0", "-", "0:04.0", "+0.9000"] and len(table.splitlines()) == 2
