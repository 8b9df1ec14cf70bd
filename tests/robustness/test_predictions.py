"""Hostile prediction and ground-truth files through the evaluator's reader (``vtgkit.evaluation.io``), ``evaluate``,
``vtgkit evaluate`` and the submission packager: errors name the file, the line and the field; windows the official
evaluators score as given are scored as given."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from _data_cases import EVAL_GT, EVAL_PREDICTIONS, one_gigabyte_line, run_bounded, run_cli, write_jsonl

from vtgkit.bounded_json import MAX_LINE_BYTES
from vtgkit.errors import AnnotationError
from vtgkit.evaluation import evaluate
from vtgkit.evaluation.io import read_json, read_jsonl
from vtgkit.evaluation.submission import package_submission, write_submission

SUMMARY_GT = [{"qid": "v1", "domain": "dog", "label": [[1], [0], [1]]},
              {"qid": "v2", "domain": "dog", "label": [[0], [1], [1]]}]
SUMMARY_PREDICTIONS = [{"qid": "v1", "pred_saliency_scores": [0.9, 0.1, 0.8]},
                       {"qid": "v2", "pred_saliency_scores": [0.1, 0.9, 0.8]}]


def _files(tmp_path: Path, predictions: list[dict[str, Any]], gt: list[dict[str, Any]] = EVAL_GT) -> tuple[Path, Path]:
    return write_jsonl(tmp_path / "pred.jsonl", predictions), write_jsonl(tmp_path / "gt.jsonl", gt)


def _without(rows: list[dict[str, Any]], line: int, field: str) -> list[dict[str, Any]]:
    rows = copy.deepcopy(rows)
    del rows[line - 1][field]
    return rows


def _with(rows: list[dict[str, Any]], line: int, **values: Any) -> list[dict[str, Any]]:
    rows = copy.deepcopy(rows)
    rows[line - 1].update(values)
    return rows


def test_valid_files_evaluate(tmp_path: Path) -> None:
    """The baseline every case below breaks in one place."""
    result = evaluate("qvhighlights", *_files(tmp_path, EVAL_PREDICTIONS), protocol="r2tuning")
    assert "MR-full-mAP" in result["brief"] and "HL-min-VeryGood-mAP" in result["brief"]


# Which file is broken, which field, and which protocol needs it (HD fields only matter with saliency scores).
MISSING = [("pred", "qid"), ("pred", "pred_relevant_windows"), ("pred", "pred_saliency_scores"), ("gt", "qid"),
           ("gt", "relevant_windows"), ("gt", "duration"), ("gt", "relevant_clip_ids"), ("gt", "saliency_scores")]


@pytest.mark.parametrize(("which", "field"), MISSING, ids=[f"{w}-{f}" for w, f in MISSING])
def test_every_required_field_missing_in_turn(tmp_path: Path, which: str, field: str) -> None:
    predictions = _without(EVAL_PREDICTIONS, 2, field) if which == "pred" else EVAL_PREDICTIONS
    gt = _without(EVAL_GT, 2, field) if which == "gt" else EVAL_GT
    pred_path, gt_path = _files(tmp_path, predictions, gt)
    with pytest.raises(AnnotationError) as info:
        evaluate("qvhighlights", pred_path, gt_path, protocol="flashvtg")
    path = pred_path if which == "pred" else gt_path
    assert f"{path} line 2: field '{field}' is missing" in str(info.value)


@pytest.mark.parametrize(("which", "field"), [("pred", "pred_saliency_scores"), ("pred", "qid"), ("gt", "label"),
                                              ("gt", "domain")])
def test_summarization_fields_missing_in_turn(tmp_path: Path, which: str, field: str) -> None:
    predictions = _without(SUMMARY_PREDICTIONS, 2, field) if which == "pred" else SUMMARY_PREDICTIONS
    gt = _without(SUMMARY_GT, 2, field) if which == "gt" else SUMMARY_GT
    pred_path, gt_path = _files(tmp_path, predictions, gt)
    with pytest.raises(AnnotationError) as info:
        evaluate("youtube_highlights", pred_path, gt_path)
    path = pred_path if which == "pred" else gt_path
    assert f"{path} line 2: field '{field}'" in str(info.value)


WRONG_TYPES = [
    ("pred", "qid", 2.5, "expected an int or string id"),
    ("pred", "qid", True, "expected an int or string id"),
    ("pred", "pred_relevant_windows", "2-4", "expected a non-empty list of windows [start, end, score]"),
    ("pred", "pred_relevant_windows", [[2, 4]], "[0]: expected 3 numbers"),
    ("pred", "pred_relevant_windows", [[2, "4", 0.5]], "[0]: expected 3 numbers"),
    ("pred", "pred_relevant_windows", [], "expected a non-empty list of windows"),
    ("pred", "pred_saliency_scores", "high", "expected a non-empty list of numbers"),
    ("pred", "pred_saliency_scores", [0.1, None], "[1]: expected a finite number"),
    ("gt", "duration", "10", "expected a finite number"),
    ("gt", "relevant_windows", [[2, 6, 1, 1]], None),  # extra columns: official evaluators read the first two
    ("gt", "relevant_clip_ids", [1.5], "expected clip indices in [0, 5)"),
    ("gt", "saliency_scores", [[2, 2]], "expected 1 rows of 3 rater scores"),
]


@pytest.mark.parametrize(("which", "field", "value", "expected"), WRONG_TYPES,
                         ids=[f"{w}-{f}-{v!r}"[:50] for w, f, v, _ in WRONG_TYPES])
def test_wrong_types_name_line_field_and_expectation(tmp_path: Path, which: str, field: str, value: Any,
                                                     expected: str | None) -> None:
    predictions = _with(EVAL_PREDICTIONS, 2, **{field: value}) if which == "pred" else EVAL_PREDICTIONS
    gt = _with(EVAL_GT, 2, **{field: value}) if which == "gt" else EVAL_GT
    pred_path, gt_path = _files(tmp_path, predictions, gt)
    if expected is None:
        assert evaluate("qvhighlights", pred_path, gt_path, protocol="r2tuning")["brief"]
        return
    with pytest.raises(AnnotationError) as info:
        evaluate("qvhighlights", pred_path, gt_path, protocol="r2tuning")
    path = pred_path if which == "pred" else gt_path
    assert f"{path} line 2: field '{field}'" in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize(("which", "field", "raw"), [
    ("pred", "pred_relevant_windows", "[[NaN, 4, 0.5]]"),
    ("pred", "pred_relevant_windows", "[[2, Infinity, 0.5]]"),
    ("pred", "pred_relevant_windows", "[[2, 4, NaN]]"),
    ("pred", "pred_saliency_scores", "[0.1, -Infinity, 0.3, 0.1, 0.1]"),
    ("gt", "duration", "NaN"),
    ("gt", "relevant_windows", "[[2, Infinity]]"),
])
def test_nan_and_infinity_are_refused(tmp_path: Path, which: str, field: str, raw: str) -> None:
    rows = copy.deepcopy(EVAL_PREDICTIONS if which == "pred" else EVAL_GT)
    rows[1][field] = "@RAW@"
    path = tmp_path / f"{which}.jsonl"
    path.write_text("".join(json.dumps(r).replace('"@RAW@"', raw) + "\n" for r in rows), encoding="utf-8")
    pred_path = path if which == "pred" else write_jsonl(tmp_path / "p.jsonl", EVAL_PREDICTIONS)
    gt_path = path if which == "gt" else write_jsonl(tmp_path / "g.jsonl", EVAL_GT)
    with pytest.raises(AnnotationError) as info:
        evaluate("qvhighlights", pred_path, gt_path, protocol="r2tuning")
    assert f"{path} line 2: field '{field}'" in str(info.value)
    assert "non-finite" in str(info.value) or "finite number" in str(info.value)


@pytest.mark.parametrize("which", ["pred", "gt"])
def test_reversed_windows_are_refused(tmp_path: Path, which: str) -> None:
    """The official evaluators would compute a meaningless IoU without complaint; vtgkit refuses start > end."""
    if which == "pred":
        pred_path, gt_path = _files(tmp_path, _with(EVAL_PREDICTIONS, 2, pred_relevant_windows=[[4, 2, 0.5]]))
    else:
        pred_path, gt_path = _files(tmp_path, EVAL_PREDICTIONS, _with(EVAL_GT, 2, relevant_windows=[[6, 2]]))
    path = pred_path if which == "pred" else gt_path
    with pytest.raises(AnnotationError, match=rf"{path} line 2: field '\w+'\[0\]: start > end"):
        evaluate("qvhighlights", pred_path, gt_path, protocol="r2tuning")


@pytest.mark.parametrize("window", [[-2.0, 4.0, 0.5], [2.0, 14.0, 0.5]], ids=["negative", "past-duration"])
def test_negative_and_past_duration_predictions_are_scored_as_given(tmp_path: Path, window: list[float]) -> None:
    """Documented choice, as the official evaluators: no clamping at evaluation (post-processing clamps model
    output before it is written). A window partly outside [0, duration] scores lower than its clamped version."""
    clamped = [max(window[0], 0.0), min(window[1], 10.0), window[2]]
    as_given = evaluate("qvhighlights", *_files(tmp_path, _with(EVAL_PREDICTIONS, 2, pred_relevant_windows=[window])),
                        protocol="r2tuning")
    repaired = evaluate("qvhighlights", *_files(tmp_path, _with(EVAL_PREDICTIONS, 2, pred_relevant_windows=[clamped])),
                        protocol="r2tuning")
    assert as_given["brief"]["MR-full-mIoU"] < repaired["brief"]["MR-full-mIoU"]


@pytest.mark.parametrize("which", ["pred", "gt", "summary-pred", "summary-gt"])
def test_duplicate_ids_name_both_lines(tmp_path: Path, which: str) -> None:
    summary = which.startswith("summary")
    predictions, gt = (SUMMARY_PREDICTIONS, SUMMARY_GT) if summary else (EVAL_PREDICTIONS, EVAL_GT)
    if which.endswith("pred"):
        predictions = predictions + [predictions[0]]
    else:
        gt = gt + [gt[0]]
    pred_path, gt_path = _files(tmp_path, predictions, gt)
    path = pred_path if which.endswith("pred") else gt_path
    key = "'qid'"
    with pytest.raises(AnnotationError, match=rf"{path} line 3: field {key}: duplicate qid .* \(first at line 1\)"):
        evaluate("youtube_highlights" if summary else "qvhighlights", pred_path, gt_path)


@pytest.mark.parametrize("content", ["", "\n", "   \n"], ids=["zero-bytes", "one-newline", "blank"])
@pytest.mark.parametrize("which", ["pred", "gt"])
def test_empty_files_are_errors_naming_them(tmp_path: Path, which: str, content: str) -> None:
    pred_path, gt_path = _files(tmp_path, EVAL_PREDICTIONS)
    path = pred_path if which == "pred" else gt_path
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AnnotationError) as info:
        evaluate("qvhighlights", pred_path, gt_path)
    assert str(info.value).startswith(str(path)) and ("no records" in str(info.value) or "empty line" in
                                                      str(info.value))


def test_cli_reports_bad_predictions_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred_path, gt_path = _files(tmp_path, _with(EVAL_PREDICTIONS, 2, pred_relevant_windows=[[4, 2, 0.5]]))
    code = run_cli("evaluate", "--dataset", "qvhighlights", "--predictions", pred_path, "--ground-truth", gt_path)
    assert code == 2 and f"{pred_path} line 2: field 'pred_relevant_windows'[0]: start > end" in capsys.readouterr().err


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_bytes(json.dumps(EVAL_PREDICTIONS[0]).encode() + b"\n" + b'{"qid": 2, "x": "\xc3\x28"}\n')
    with pytest.raises(AnnotationError, match=rf"{path} line 2: not UTF-8 text"):
        read_jsonl(path)


def test_line_over_the_limit_names_file_line_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "pred.jsonl"
    path.write_text(json.dumps(EVAL_PREDICTIONS[0]) + "\n" + json.dumps({"qid": 2, "pred_saliency_scores":
                                                                          [0.5] * 2000}) + "\n")
    assert len(read_jsonl(path, max_line_bytes=20000).rows) == 2
    with pytest.raises(AnnotationError, match=rf"{path} line 2: longer than 4096 bytes \(the line limit\)"):
        read_jsonl(path, max_line_bytes=4096)


def test_json_document_with_repeated_key_is_refused(tmp_path: Path) -> None:
    """R²-Tuning's split tables / annotation objects: the standard parser would keep the last duplicate silently."""
    path = tmp_path / "youtube_splits.json"
    path.write_text('{"dog": {"val": ["a"]},\n "dog": {"val": ["b"]}}', encoding="utf-8")
    with pytest.raises(AnnotationError, match=rf"{path}: duplicate key 'dog'"):
        read_json(path)


@pytest.mark.slow
def test_one_gigabyte_prediction_line_fails_with_bounded_memory(tmp_path: Path) -> None:
    path = one_gigabyte_line(tmp_path / "pred.jsonl", b'{"qid": 1, "pred_saliency_scores": [')
    gt = write_jsonl(tmp_path / "gt.jsonl", EVAL_GT)
    output, growth = run_bounded("from vtgkit.evaluation import evaluate",
                                 f"evaluate('qvhighlights', {str(path)!r}, {str(gt)!r})")
    assert f"ERROR {path} line 1: longer than {MAX_LINE_BYTES} bytes (the line limit)" in output
    assert growth < 256 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MiB reading a 1 GiB line"


# ---------------------------------------------------------------------------------------------------- submissions
def test_package_refuses_duplicate_and_incomplete_predictions(tmp_path: Path) -> None:
    val = write_jsonl(tmp_path / "val.jsonl", EVAL_PREDICTIONS)
    test = write_jsonl(tmp_path / "test.jsonl", EVAL_PREDICTIONS + [EVAL_PREDICTIONS[1]])
    output = tmp_path / "submission.zip"
    with pytest.raises(AnnotationError, match=rf"{test} line 3: field 'qid': duplicate qid 2"):
        package_submission(val, test, output)
    write_jsonl(test, [{"qid": 1}])
    with pytest.raises(AnnotationError, match=rf"{test} line 1: needs 'pred_relevant_windows'"):
        package_submission(val, test, output)
    test.write_text("")
    with pytest.raises(AnnotationError, match=rf"{test}: no records"):
        package_submission(val, test, output)
    assert not output.exists()  # nothing half-written is left where the zip goes
    write_jsonl(test, EVAL_PREDICTIONS)
    with zipfile.ZipFile(package_submission(val, test, output)) as archive:
        assert sorted(archive.namelist()) == ["hl_test_submission.jsonl", "hl_val_submission.jsonl"]


def test_write_submission_is_atomic(tmp_path: Path) -> None:
    """A writer that fails midway (here: a record that cannot be JSON-encoded) leaves no partial file."""
    path = tmp_path / "hl_val_submission.jsonl"
    with pytest.raises(TypeError):
        write_submission([EVAL_PREDICTIONS[0], {"qid": object()}], path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert write_submission(EVAL_PREDICTIONS, path) == 2 and len(read_jsonl(path).rows) == 2
