"""Hostile annotation files, through every benchmark parser in ``vtgkit.data``: each bad record is an
``AnnotationError`` naming the file, the line (or video key) and the field; windows the official dataset repairs are
kept and repaired the official way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from _data_cases import FORMATS, NON_FINITE, WRONG_TYPES, load_format, one_gigabyte_line, run_bounded, write_format

from vtgkit.bounded_json import MAX_JSON_FILE_BYTES, MAX_LINE_BYTES
from vtgkit.data.grounding_targets import repair_windows
from vtgkit.errors import AnnotationError

REQUIRED = [(fmt, field) for fmt, (_, _, fields) in FORMATS.items() for field in fields]


def _where(fmt: str, path: Path, line: int = 1) -> str:
    """How the error names the record: ``<file> line <n>`` or ``<file> video 'vid<n-1>'`` for .json objects."""
    return f"{path} line {line}" if FORMATS[fmt][0] == ".jsonl" else f"{path} video 'vid{line - 1}'"


@pytest.mark.parametrize(("fmt", "field"), REQUIRED, ids=[f"{f}-{k}" for f, k in REQUIRED])
def test_every_required_field_missing_in_turn(tmp_path: Path, fmt: str, field: str) -> None:
    _, record, _ = FORMATS[fmt]
    broken = {key: value for key, value in {**record, "qid": 8}.items() if key != field}
    path = write_format(tmp_path / "anno", fmt, [record, broken])
    with pytest.raises(AnnotationError) as info:
        load_format(fmt, path)
    assert str(info.value).startswith(_where(fmt, path, line=2))
    assert f"missing field '{field}'" in str(info.value)


@pytest.mark.parametrize(("fmt", "field", "value", "expected"), WRONG_TYPES,
                         ids=[f"{f}-{k}-{v!r}"[:60] for f, k, v, _ in WRONG_TYPES])
def test_wrong_types_name_the_field_and_what_was_expected(tmp_path: Path, fmt: str, field: str, value: object,
                                                          expected: str) -> None:
    _, record, _ = FORMATS[fmt]
    path = write_format(tmp_path / "anno", fmt, [{**record, field: value}])
    with pytest.raises(AnnotationError) as info:
        load_format(fmt, path)
    message = str(info.value)
    assert message.startswith(_where(fmt, path)) and f"'{field}'" in message and expected in message


@pytest.mark.parametrize(("fmt", "field", "raw"), NON_FINITE, ids=[f"{f}-{k}" for f, k, _ in NON_FINITE])
def test_nan_and_infinity_are_refused(tmp_path: Path, fmt: str, field: str, raw: str) -> None:
    _, record, _ = FORMATS[fmt]
    path = write_format(tmp_path / "anno", fmt, [record], raw={field: raw})
    assert ("NaN" in path.read_text() or "Infinity" in path.read_text())
    with pytest.raises(AnnotationError) as info:
        load_format(fmt, path)
    assert str(info.value).startswith(_where(fmt, path)) and f"'{field}'" in str(info.value)


@pytest.mark.parametrize("fmt", ["qvhighlights", "charades_sta", "tacos", "ego4d_nlq"])
def test_negative_reversed_and_past_duration_windows_are_kept_then_repaired(tmp_path: Path, fmt: str) -> None:
    """Documented choice: the official dataset clamps, swaps and widens such windows (spec r2-tuning.md §8.2), so
    the parser keeps them as written and the training targets repair them; nothing is dropped."""
    _, record, _ = FORMATS[fmt]
    windows = [[-4.0, 6.0], [12.0, 9.0], [25.0, 45.0], [50.0, 60.0]]  # negative, reversed, past 30 s, all past
    path = write_format(tmp_path / "anno", fmt, [{**record, "relevant_windows": windows}])
    (sample,) = load_format(fmt, path)
    assert sample.windows == [tuple(w) for w in windows]
    repaired = repair_windows(sample.windows, num_clips=15, fps=0.5)  # features cover 30 s
    expected = torch.tensor([[0.0, 6.0], [9.0, 12.0], [25.0, 30.0], [28.0, 30.0]])
    torch.testing.assert_close(repaired, expected)


@pytest.mark.parametrize("fmt", ["qvhighlights", "charades_sta", "tacos", "ego4d_nlq", "tvsum",
                                 "youtube_highlights"])
def test_duplicate_ids_name_both_lines(tmp_path: Path, fmt: str) -> None:
    _, record, _ = FORMATS[fmt]
    other = {**record, "query": "another query"}
    path = write_format(tmp_path / "anno", fmt, [record, other])
    with pytest.raises(AnnotationError, match=r"line 2: 'qid' .* repeats the qid of .* line 1"):
        load_format(fmt, path)


@pytest.mark.parametrize("fmt", ["tvsum_object", "youtube_object"])
def test_duplicate_video_keys_of_a_json_object_are_refused(tmp_path: Path, fmt: str) -> None:
    """The standard JSON parser would keep the last duplicate silently; vtgkit names the repeated key."""
    _, record, _ = FORMATS[fmt]
    path = tmp_path / "anno.json"
    text = json.dumps(record)
    path.write_text(f'{{"v": {text}, "v": {text}}}', encoding="utf-8")
    with pytest.raises(AnnotationError, match=rf"{path}: duplicate key 'v'"):
        load_format(fmt, path)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file_is_an_error_naming_it(tmp_path: Path, fmt: str, content: str) -> None:
    path = tmp_path / f"anno{FORMATS[fmt][0]}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError) as info:
        load_format(fmt, path)
    assert str(info.value).startswith(str(path))
    assert "no records" in str(info.value) or "not valid JSON" in str(info.value)


@pytest.mark.parametrize("fmt", ["tvsum_object", "youtube_object"])
def test_empty_json_object_is_an_error(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "anno.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(AnnotationError, match=rf"{path}: no records \(the JSON object is empty\)"):
        load_format(fmt, path)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "anno.jsonl"
    path.write_bytes(json.dumps(FORMATS["charades_sta"][1]).encode() + b"\n" + b'{"qid": "\xff\xfe"}\n')
    with pytest.raises(AnnotationError, match=rf"{path} line 2: not UTF-8 text"):
        load_format("charades_sta", path)


def test_line_over_the_limit_names_file_line_and_limit(tmp_path: Path) -> None:
    """A line longer than the limit is refused after reading only the limit (small limit here; 1 GB: slow test)."""
    from vtgkit.data.annotation_fields import read_jsonl

    path = tmp_path / "anno.jsonl"
    path.write_text(json.dumps(FORMATS["charades_sta"][1]) + "\n" + '{"qid": "' + "x" * 5000 + '"}\n')
    with pytest.raises(AnnotationError, match=rf"{path} line 2: longer than 4096 bytes \(the line limit\)"):
        list(read_jsonl(path, max_line_bytes=4096))
    assert MAX_LINE_BYTES < 2**30 // 8  # the default limit keeps a hostile line far below 1 GB of memory


def test_json_object_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "tvsum_anno.json"
    with path.open("wb") as handle:  # sparse: no disk used
        handle.write(b'{"v": ')
        handle.truncate(MAX_JSON_FILE_BYTES + 10)
    with pytest.raises(AnnotationError, match=rf"{path}: {MAX_JSON_FILE_BYTES + 10} bytes, above the"):
        load_format("tvsum_object", path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["qvhighlights", "tvsum"])
def test_one_gigabyte_line_fails_with_bounded_memory(tmp_path: Path, fmt: str) -> None:
    path = one_gigabyte_line(tmp_path / "anno.jsonl", b'{"qid": "')
    output, growth = run_bounded(
        "from vtgkit.data.benchmarks import get_benchmark",
        f"get_benchmark({fmt!r}).load({str(path)!r})",
    )
    assert f"ERROR {path} line 1: longer than {MAX_LINE_BYTES} bytes (the line limit)" in output
    assert growth < 256 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB reading a 1 GiB line"


@pytest.mark.parametrize(("fmt", "text", "expected"), [
    ("qvhighlights", '[1, 2]\n', "line 1: expected a JSON object per line; got list"),
    ("tacos", '{"qid": 1,\n', "line 1: not valid JSON"),
    ("tvsum_object", '[{"anno": []}]', "expected a JSON object at the top level; got list"),
    ("tvsum_object", '{"v": [1, 2]}', "video 'v': expected an object with 'anno' and 'title'"),
    ("youtube_object", '{"v": "x"}', "video 'v': expected an object with 'match', 'info', 'frames', 'fps'"),
])
def test_records_of_the_wrong_kind(tmp_path: Path, fmt: str, text: str, expected: str) -> None:
    path = tmp_path / f"anno{FORMATS[fmt][0]}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError, match=rf"{path}:? {re.escape(expected)}"):
        load_format(fmt, path)
