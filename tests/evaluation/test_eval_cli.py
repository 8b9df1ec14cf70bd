"""``vtgkit evaluate`` end to end on tiny files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.evaluation.test_eval_worked_examples import QVH_BRIEF_E, _example_e

from vtgkit.cli.main import main


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_evaluate_prints_the_brief_and_writes_the_json(tmp_path: Path, capsys) -> None:
    preds, gt = _example_e()
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--dataset", "qvhighlights", "--predictions", str(_write(tmp_path / "p.jsonl", preds))]
    args += ["--ground-truth", str(_write(tmp_path / "gt.jsonl", gt)), "--output", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["brief"] == QVH_BRIEF_E
    printed = capsys.readouterr()
    assert "MR-full-R1@0.7" in printed.out and "66.67" in printed.out
    assert "21 scores for 20 clips" in printed.err  # the wrong-length saliency is reported, not hidden


def test_bad_input_exits_2_with_file_and_line(tmp_path: Path, capsys) -> None:
    preds, gt = _example_e()
    preds[1]["pred_relevant_windows"][0] = [34, 6, 0.8]
    args = ["evaluate", "--dataset", "qvhighlights", "--predictions", str(_write(tmp_path / "p.jsonl", preds))]
    args += ["--ground-truth", str(_write(tmp_path / "gt.jsonl", gt))]
    assert main(args) == 2
    assert "p.jsonl line 2: field 'pred_relevant_windows'[0]: start > end" in capsys.readouterr().err


def test_package(tmp_path: Path) -> None:
    preds, _ = _example_e()
    val = _write(tmp_path / "val.jsonl", preds)
    test = _write(tmp_path / "test.jsonl", preds)
    zip_path = tmp_path / "submission.zip"
    args = ["evaluate", "--package", "--val", str(val), "--test", str(test), "--output", str(zip_path)]
    assert main(args) == 0
    names = zipfile.ZipFile(zip_path).namelist()
    assert sorted(names) == ["hl_test_submission.jsonl", "hl_val_submission.jsonl"]
