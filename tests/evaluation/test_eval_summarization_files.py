"""YouTube Highlights / TVSum ground truth from the shared files: jsonl and R²-Tuning's split tables agree."""

from __future__ import annotations

import json
import random

import pytest
from tests.conftest import SHARED, require_path

from vtgkit.errors import AnnotationError
from vtgkit.evaluation import evaluate

ANNOTATIONS = SHARED / "data" / "annotations"


def _predictions(jsonl_rows: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"qid": row["qid"], "pred_saliency_scores": [rng.random() for _ in row["label"]]} for row in jsonl_rows]


def test_tvsum_jsonl_and_split_tables_give_the_same_numbers() -> None:
    folder = require_path(ANNOTATIONS / "tvsum", "shared TVSum annotations")
    rows = [json.loads(line) for line in (folder / "tvsum_val.jsonl").read_text().splitlines() if line.strip()]
    predictions = _predictions(rows, 0)
    from_jsonl = evaluate("tvsum", predictions, folder / "tvsum_val.jsonl")
    from_splits = evaluate("tvsum", predictions, folder / "tvsum_train_sfc.json", splits=folder / "tvsum_splits.json")
    assert from_jsonl == from_splits
    assert sorted(from_jsonl) == sorted({row["domain"] for row in rows} | {"average"})
    assert all(0 <= entry["mAP"] <= 1 for entry in from_jsonl.values())


def test_youtube_split_tables_need_every_val_video_of_a_domain() -> None:
    folder = require_path(ANNOTATIONS / "youtube_highlights", "shared YouTube Highlights annotations")
    rows = [json.loads(line) for line in (folder / "youtube_valid.jsonl").read_text().splitlines() if line.strip()]
    predictions = _predictions(rows, 1)
    assert set(evaluate("youtube_highlights", predictions, folder / "youtube_valid.jsonl")) >= {"dog", "average"}
    # R²-Tuning's split ∩ anno has five videos more than the jsonl (spec metrics.md §6): they must not be skipped.
    with pytest.raises(AnnotationError, match="has no prediction for video"):
        evaluate("youtube_highlights", predictions, folder / "youtube_anno.json", splits=folder / "youtube_splits.json")


@pytest.mark.parametrize(("dataset", "label"), [("tvsum", [[1.0] * 20, [float("nan")] + [2.0] * 19]),
                                                  ("youtube_highlights", [1, float("inf"), 0])])
def test_non_finite_ground_truth_labels_are_refused(tmp_path, dataset: str, label: list) -> None:  # noqa: ANN001
    # Written by hand (json allows NaN/Infinity literals): a NaN label would silently corrupt the ranking metrics.
    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"qid": 7, "vid": "v", "domain": "d", "label": label}) + "\n")
    predictions = [{"qid": 7, "pred_saliency_scores": [0.5] * len(label)}]
    with pytest.raises(AnnotationError, match=r"gt\.jsonl.*label.*expected finite numbers"):
        evaluate(dataset, predictions, gt)
