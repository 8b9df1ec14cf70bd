"""Bad input: official behaviour where the official code has one, else an error naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vtgkit.errors import AnnotationError
from vtgkit.evaluation import evaluate

GT = [
    {
        "qid": 1,
        "duration": 20,
        "relevant_windows": [[0, 8]],
        "relevant_clip_ids": [0, 1],
        "saliency_scores": [[4, 2, 3], [1, 1, 1]],
    },
    {"qid": 2, "duration": 10, "relevant_windows": [[2, 6]], "relevant_clip_ids": [1], "saliency_scores": [[2, 2, 2]]},
]


def _preds() -> list[dict]:
    return [
        {"qid": 1, "pred_relevant_windows": [[0, 8, 0.9]], "pred_saliency_scores": [0.1] * 10},
        {"qid": 2, "pred_relevant_windows": [[2, 4, 0.5]], "pred_saliency_scores": [0.2] * 5},
    ]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_missing_qid_names_it(tmp_path: Path) -> None:
    preds = _write(tmp_path / "p.jsonl", _preds()[:1])
    with pytest.raises(AnnotationError, match=r"1 qid\(s\) of ground truth have no prediction .*\[2\]"):
        evaluate("qvhighlights", preds, GT)


def test_extra_qid_names_it(tmp_path: Path) -> None:
    preds = _write(tmp_path / "p.jsonl", _preds() + [dict(_preds()[0], qid=7)])
    with pytest.raises(AnnotationError, match=r"p.jsonl are not in ground truth: \[7\]"):
        evaluate("qvhighlights", preds, GT)


def test_duplicate_qid_names_both_lines(tmp_path: Path) -> None:
    preds = _write(tmp_path / "p.jsonl", _preds() + [_preds()[1]])
    with pytest.raises(AnnotationError, match=r"p.jsonl line 3: field 'qid': duplicate qid 2 \(first at line 2\)"):
        evaluate("qvhighlights", preds, GT)


def test_reversed_window_names_line_and_field(tmp_path: Path) -> None:
    rows = _preds()
    rows[1]["pred_relevant_windows"] = [[2, 4, 0.5], [6, 3, 0.4]]
    preds = _write(tmp_path / "p.jsonl", rows)
    with pytest.raises(AnnotationError, match=r"line 2: field 'pred_relevant_windows'\[1\]: start > end"):
        evaluate("qvhighlights", preds, GT)


def test_nan_window_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(
        json.dumps(_preds()[0])
        + "\n"
        + '{"qid": 2, "pred_relevant_windows": [[NaN, 4, 0.5]], "pred_saliency_scores": [1]}\n'
    )
    with pytest.raises(AnnotationError, match=r"line 2: field 'pred_relevant_windows'\[0\]: non-finite"):
        evaluate("qvhighlights", tmp_path / "p.jsonl", GT)


def test_nan_saliency_is_an_error() -> None:
    rows = _preds()
    rows[0]["pred_saliency_scores"] = [0.1, float("nan")]
    with pytest.raises(AnnotationError, match=r"predictions line 1: field 'pred_saliency_scores'\[1\]"):
        evaluate("qvhighlights", rows, GT)


def test_not_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_preds()[0]) + "\n{'qid': 2}\n")
    with pytest.raises(AnnotationError, match=r"p.jsonl line 2: not valid JSON"):
        evaluate("qvhighlights", path, GT)


def test_whole_json_array_is_not_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_preds()))
    with pytest.raises(AnnotationError, match=r"p.json line 1: expected a JSON object, found list"):
        evaluate("qvhighlights", path, GT)


def test_empty_window_list_is_an_error() -> None:
    rows = _preds()
    rows[0]["pred_relevant_windows"] = []
    with pytest.raises(AnnotationError, match=r"line 1: field 'pred_relevant_windows': expected a non-empty list"):
        evaluate("qvhighlights", rows, GT)


def test_wrong_length_saliency_follows_the_official_rule_and_is_reported() -> None:
    rows = _preds()
    rows[1]["pred_saliency_scores"] = [0.2, 0.9, 0.1, 0.0, 0.3, 5.0]  # 6 scores for 5 clips; argmax on the extra one
    notes: list[str] = []
    result = evaluate("qvhighlights", rows, GT, protocol="r2tuning", notes=notes)
    assert any("6 scores for 5 clips" in note for note in notes)
    # qid 2: the argmax (index 5) is beyond the 5 clips -> no hit; qid 1: ties at 0.1 -> argmax 0, positive at Fair.
    assert result["HL-min-Fair"]["HL-Hit1"] == 50.0


def test_clip_id_outside_the_video_is_an_error() -> None:
    gt = [dict(GT[0]), GT[1]]
    gt[0]["relevant_clip_ids"] = [0, 10]
    with pytest.raises(AnnotationError, match=r"ground truth line 1: field 'relevant_clip_ids'"):
        evaluate("qvhighlights", _preds(), gt)


def test_empty_bucket_follows_each_protocol() -> None:
    # Only short GT windows: moment_detr crashes (error here), R2 falls back to the full set, FlashVTG gives zeros.
    rows = [dict(p) for p in _preds()]
    for row in rows:
        row.pop("pred_saliency_scores")
    with pytest.raises(AnnotationError, match="bucket 'middle'"):
        evaluate("qvhighlights", rows, GT)
    r2 = evaluate("qvhighlights", rows, GT, protocol="r2tuning")
    assert r2["long"] == r2["full"]
    fv = evaluate("qvhighlights", rows, GT, protocol="flashvtg")
    assert fv["brief"]["MR-long-mAP"] == 0.0
    assert "0.7749999999999999" in fv["long"]["MR-mAP"]


def test_r2tuning_skips_highlights_without_gt_saliency() -> None:
    gt = [{k: v for k, v in row.items() if k in ("qid", "duration", "relevant_windows")} for row in GT]
    notes: list[str] = []
    result = evaluate("charades_sta", _preds(), gt, notes=notes)
    assert "HL-min-Fair" not in result and "MR-full-R1@0.3" in result["brief"]
    assert notes and "highlight detection skipped" in notes[0]
    with pytest.raises(AnnotationError, match="'relevant_clip_ids' is missing"):
        evaluate("charades_sta", _preds(), gt, protocol="flashvtg")


def test_summarization_length_rules() -> None:
    gt = [{"qid": "v1", "domain": "dog", "label": [[1], [0], [1]]}]
    with pytest.raises(AnnotationError, match=r"predictions line 1: field 'pred_saliency_scores' has 4 values"):
        evaluate("youtube_highlights", [{"qid": "v1", "pred_saliency_scores": [0.1, 0.2, 0.3, 0.4]}], gt)
    cut = evaluate("youtube_highlights", [{"qid": "v1", "pred_saliency_scores": [0.9, 0.2, 0.3, 0.4]}], gt, "flashvtg")
    assert cut["dog"]["mAP"] == 1.0  # ranked labels [1, 1, 0]
