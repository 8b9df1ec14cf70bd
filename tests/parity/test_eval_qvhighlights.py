"""Evaluator parity with the official code's stored outputs (== on every value).

* ``VTGKIT_ORACLE_EVAL`` (default ../shared/oracle/eval): ``qvhighlights/sample_val_preds.jsonl`` and the official
  standalone evaluator's JSON for it, against ``highlight_val_release.jsonl``.
* ``VTGKIT_ORACLE_R2``: the stored post-processed predictions of ``expected_outputs.json`` against the reference val
  jsonl must give ``expected_metrics.json`` (``brief`` and ``full``), with R²-Tuning's protocol; the raw
  ``model_boundary`` rows through vtgkit's post-processing must give the stored submission rows.
* ``VTGKIT_ORACLE_FLASHVTG``: both stored submissions (no NMS / NMS) against ``data/highlight_val_oracle.jsonl``
  must give ``expected_metrics.json``; the raw boundaries through vtgkit's post-processing the stored rows.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import SHARED, require_path, shared_path

from vtgkit.evaluation import evaluate
from vtgkit.evaluation.postprocess import postprocess_boundaries, postprocess_config, postprocess_saliency

pytestmark = pytest.mark.parity

ORACLE_EVAL = shared_path("VTGKIT_ORACLE_EVAL", SHARED / "oracle" / "eval")
ORACLE_R2 = shared_path("VTGKIT_ORACLE_R2", SHARED / "oracle" / "r2tuning" / "reference")
ORACLE_FLASHVTG = shared_path("VTGKIT_ORACLE_FLASHVTG", SHARED / "oracle" / "flashvtg" / "reference")
FLASHVTG_DATASETS = {"hl": "qvhighlights", "charadesSTA": "charades_sta", "tacos": "tacos"}  # opt.json dset_name
QVH_VAL = SHARED / "data" / "annotations" / "qvhighlights" / "highlight_val_release.jsonl"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_official_sample_predictions_equal_the_official_json() -> None:
    folder = require_path(ORACLE_EVAL / "qvhighlights", "official evaluator outputs")
    ground_truth = require_path(QVH_VAL, "QVHighlights val annotations")
    result = evaluate("qvhighlights", folder / "sample_val_preds.jsonl", ground_truth)
    expected = json.loads((folder / "sample_val_preds_metrics.json").read_text())
    assert json.loads(json.dumps(result)) == expected
    assert list(result) == list(expected) and list(result["brief"]) == list(expected["brief"])


def test_r2tuning_reference_metrics_from_stored_predictions() -> None:
    outputs = json.loads(require_path(ORACLE_R2 / "expected_outputs.json", "R2 oracle outputs").read_text())
    expected = json.loads((ORACLE_R2 / "expected_metrics.json").read_text())
    predictions = [
        {
            "qid": q["qid"],
            "vid": q["vid"],
            "pred_relevant_windows": q["pred_relevant_windows"],
            "pred_saliency_scores": q["pred_saliency_scores"],
        }
        for q in outputs["queries"]
    ]
    ground_truth = ORACLE_R2 / "data" / "qvhighlights" / "qvhighlights_val.jsonl"
    result = evaluate("qvhighlights", predictions, ground_truth, protocol="r2tuning")
    assert result["brief"] == expected["brief"]
    assert list(result["brief"]) == list(expected["brief"])
    assert result == expected["full"]


def _same_rows_modulo_zero_ties(got: list[list[float]], expected: list[list[float]]) -> None:
    assert len(got) == len(expected)
    positive = [row for row in expected if row[2] > 0]
    np.testing.assert_allclose([row for row in got if row[2] > 0], positive, rtol=0, atol=1e-6)
    assert sorted(map(tuple, (r for r in got if r[2] == 0))) == sorted(map(tuple, (r for r in expected if r[2] == 0)))


def test_r2tuning_reference_postprocessing() -> None:
    outputs = json.loads(require_path(ORACLE_R2 / "expected_outputs.json", "R2 oracle outputs").read_text())
    config = postprocess_config("r2tuning", "qvhighlights")
    for query in outputs["queries"]:
        rows = postprocess_boundaries(torch.tensor(query["model_boundary"]), query["duration"], config)
        _same_rows_modulo_zero_ties(rows, query["pred_relevant_windows"])


def test_flashvtg_reference_metrics_from_stored_predictions() -> None:
    folder = require_path(ORACLE_FLASHVTG, "FlashVTG oracle")
    expected = json.loads((folder / "expected_metrics.json").read_text())
    options = json.loads((folder / "opt.json").read_text())
    ground_truth = folder / "data" / Path(options["eval_path"]).name
    dataset = FLASHVTG_DATASETS[options["dset_name"]]
    for name, key in (("expected_outputs_no_nms.jsonl", "metrics_no_nms"), ("expected_outputs.jsonl", "metrics_nms")):
        result = evaluate(dataset, folder / name, ground_truth, protocol="flashvtg")
        assert json.loads(json.dumps(result)) == expected[key], key
        assert list(result["brief"]) == list(expected[key]["brief"])


def test_flashvtg_reference_postprocessing() -> None:
    folder = require_path(ORACLE_FLASHVTG, "FlashVTG oracle")
    raw = np.load(folder / "expected_raw_outputs.npz")
    options = json.loads((folder / "opt.json").read_text())
    eval_path = folder / "data" / Path(options["eval_path"]).name
    durations = {row["qid"]: row["duration"] for row in _jsonl(eval_path)}
    dataset = FLASHVTG_DATASETS[options["dset_name"]]
    plain = replace(postprocess_config("flashvtg", dataset), unit=float(options["clip_length"]))
    with_nms = replace(plain, nms_method="normal", nms_threshold=float(options["nms_thd"]))
    for name, config in (("expected_outputs_no_nms.jsonl", plain), ("expected_outputs.jsonl", with_nms)):
        for record in _jsonl(folder / name):
            qid = record["qid"]
            rows = postprocess_boundaries(torch.from_numpy(raw[f"{qid}/boundary"]), durations[qid], config)
            _same_rows_modulo_zero_ties(rows, record["pred_relevant_windows"])
            if "pred_saliency_scores" in record:
                saliency = postprocess_saliency(torch.from_numpy(raw[f"{qid}/saliency"]), plain)
                np.testing.assert_allclose(saliency, record["pred_saliency_scores"], rtol=0, atol=1.5e-4)


def test_r2tuning_derived_long_case() -> None:
    derived = json.loads(require_path(ORACLE_R2 / "derived_long.json", "R2 oracle derived case").read_text())
    predictions = [
        {
            "qid": q["qid"],
            "pred_relevant_windows": q["pred_relevant_windows"],
            "pred_saliency_scores": q["pred_saliency_scores"],
        }
        for q in derived["queries"]
    ]
    result = evaluate("qvhighlights", predictions, derived["annotations"], protocol="r2tuning")
    assert result["brief"] == derived["metrics"]["brief"]
    assert result == derived["metrics"]["full"]
    config = postprocess_config("r2tuning", "qvhighlights")
    for query in derived["queries"]:
        rows = postprocess_boundaries(torch.tensor(query["model_boundary"]), query["duration"], config)
        _same_rows_modulo_zero_ties(rows, query["pred_relevant_windows"])
