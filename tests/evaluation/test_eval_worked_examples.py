"""The worked examples of spec metrics.md §9 (outputs of the official code), one test each."""

from __future__ import annotations

import numpy as np
import pytest

from vtgkit.evaluation import evaluate
from vtgkit.evaluation.highlight_detection import HighlightQuery, average_precision_per_rater
from vtgkit.evaluation.moment_retrieval import MAP_THRESHOLDS, MomentQuery, average_precision, percent, recall_at
from vtgkit.evaluation.summarization import SummarizationVideo, evaluate_summarization

GT_A = np.array([[0.0, 10.0], [20.0, 30.0]])


def test_a_average_precision_of_one_query() -> None:
    preds = np.array([[0, 8, 0.9], [21, 30, 0.8], [0, 10, 0.7], [40, 50, 0.6]], dtype=float)
    ap = average_precision([MomentQuery(1, preds, GT_A)])[0]
    expected = {0.5: 1.0, 0.55: 1.0, 0.6: 1.0, 0.65: 1.0, 0.7: 1.0, 0.75: 1.0, 0.8: 1.0}
    expected |= {0.85: 0.6666666666666666, 0.9: 0.6666666666666666, 0.95: 0.16666666666666666}
    assert dict(zip(MAP_THRESHOLDS, ap.tolist(), strict=True)) == expected
    assert np.mean(ap) == 0.8499999999999999


def test_b_r1_uses_the_gt_window_with_the_highest_cross_iou() -> None:
    query = MomentQuery(1, np.array([[18.0, 28.0, 1.0]]), GT_A)
    thresholds = (0.3, 0.65, 0.7)
    assert recall_at([query], thresholds) == {"0.3": 100.0, "0.65": 100.0, "0.7": 0.0}


def _hd_ap(labels: list[int], scores: list[float]) -> float:
    gt = np.repeat(np.array(labels, dtype=float)[:, None] * 4, 3, axis=1)  # label 1 -> score 4 for all raters
    return float(average_precision_per_rater([HighlightQuery(1, np.array(scores), gt)], 4)[0, 0])


def test_c_highlight_ap_with_and_without_ties() -> None:
    labels = [0, 1, 1, 0, 1, 0]
    assert _hd_ap(labels, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]) == 0.6444444444444444
    assert _hd_ap(labels, [0.9, 0.8, 0.8, 0.6, 0.5, 0.4]) == 0.6333333333333333
    assert _hd_ap([0, 0, 0], [0.1, 0.2, 0.3]) == 0.0
    assert _hd_ap([1, 1, 1], [0.1, 0.2, 0.3]) == 1.0


def test_d_rounding() -> None:
    assert percent(0.322049) == 32.2
    assert percent(2 / 3) == 66.67
    assert round(0.4166666666, 5) == 0.41667


def _example_e() -> tuple[list[dict], list[dict]]:
    pattern = [[1, 1, 1], [2, 2, 2], [3, 3, 3], [3, 3, 3], [2, 2, 2], [1, 2, 1]]
    gt = [
        {
            "qid": 1,
            "duration": 20,
            "relevant_windows": [[0, 8], [12, 16]],
            "relevant_clip_ids": [0, 1, 2, 3, 6, 7],
            "saliency_scores": [[4, 2, 3], [4, 3, 4], [2, 2, 1], [1, 0, 2], [3, 4, 4], [2, 4, 1]],
        },
        {
            "qid": 2,
            "duration": 60,
            "relevant_windows": [[4, 40]],
            "relevant_clip_ids": list(range(2, 20)),
            "saliency_scores": pattern * 3,
        },
        {
            "qid": 3,
            "duration": 40,
            "relevant_windows": [[10, 26]],
            "relevant_clip_ids": list(range(5, 13)),
            "saliency_scores": [[4, 4, 4], [3, 4, 2], [2, 2, 2], [1, 1, 1], [0, 1, 0], [1, 1, 1], [2, 3, 2], [4, 3, 4]],
        },
    ]
    q3_saliency = [-0.5, -0.4, -0.3, -0.2, -0.1, -0.05, -0.6, -0.7, -0.8, -0.9]
    q3_saliency += [-0.4, -0.3, -0.2, -0.1, -0.5, -0.6, -0.7, -0.8, -0.9, -1.0, 3.0]
    preds = [
        {
            "qid": 1,
            "pred_relevant_windows": [[0, 6, 0.95], [12, 18, 0.7], [0, 20, 0.3]],
            "pred_saliency_scores": [0.2, 0.9, 0.1, 0.0, -0.3, 0.1, 0.8, 0.4, -0.1, -0.2],
        },
        {
            "qid": 2,
            "pred_relevant_windows": [[6, 34, 0.8], [4, 40, 0.6], [30, 60, 0.2]],
            "pred_saliency_scores": [round(0.1 * ((7 * i) % 11) - 0.3, 1) for i in range(28)],
        },
        {"qid": 3, "pred_relevant_windows": [[8, 20, 0.5], [10, 26, 0.9]], "pred_saliency_scores": q3_saliency},
    ]
    return preds, gt


QVH_BRIEF_E = {
    "MR-full-R1@0.5": 100.0,
    "MR-full-R1@0.7": 66.67,
    "MR-full-mAP": 76.67,
    "MR-full-mAP@0.5": 100.0,
    "MR-full-mAP@0.75": 83.33,
    "MR-long-mAP": 80.0,
    "MR-middle-mAP": 100.0,
    "MR-short-mAP": 50.0,
    "HL-min-Fair-mAP": 65.57,
    "HL-min-Fair-Hit1": 66.67,
    "HL-min-Good-mAP": 57.98,
    "HL-min-Good-Hit1": 33.33,
    "HL-min-VeryGood-mAP": 48.82,
    "HL-min-VeryGood-Hit1": 33.33,
}


def test_e_end_to_end_moment_detr() -> None:
    preds, gt = _example_e()
    result = evaluate("qvhighlights", preds, gt)
    assert result["brief"] == QVH_BRIEF_E
    assert list(result["brief"]) == list(QVH_BRIEF_E)  # official key order
    assert list(result) == ["brief", "HL-min-Fair", "HL-min-Good", "HL-min-VeryGood", "full", "long", "middle", "short"]


def test_e_end_to_end_r2tuning_and_flashvtg_keys() -> None:
    preds, gt = _example_e()
    r2 = evaluate("qvhighlights", preds, gt, protocol="r2tuning")["brief"]
    r2_extra = {"MR-full-R1@0.3": 100.0, "MR-full-mIoU": 69.44, "MR-short-mIoU": 75.0, "MR-middle-mIoU": 55.56}
    r2_extra |= {"MR-long-mIoU": 77.78, "MR-full-R5@0.3": 100.0, "MR-full-R5@0.5": 100.0, "MR-full-R5@0.7": 100.0}
    assert r2 == QVH_BRIEF_E | r2_extra
    fv = evaluate("qvhighlights", preds, gt, protocol="flashvtg")["brief"]
    assert fv == QVH_BRIEF_E | {"MR-full-R1@0.3": 100.0, "MR-full-mIoU": 69.44}


def test_f_youtube_r2tuning_and_flashvtg() -> None:
    videos = [
        SummarizationVideo("y1", "dog", [0.9, 0.8, 0.7, 0.1], np.array([1.0, 0, 1, 0]), "y1"),
        SummarizationVideo("y2", "dog", [0.3, 0.9, 0.8, 0.1, 0.5], np.array([0.0, 0, 1, 1, 0]), "y2"),
    ]
    assert evaluate_summarization(videos, "youtube_highlights", "r2tuning")["dog"] == {"mAP": 0.53958}
    videos.append(SummarizationVideo("y3", "dog", [0.1, 0.2, 0.3], np.array([0.0, 0, 0]), "y3"))
    assert evaluate_summarization(videos, "youtube_highlights", "r2tuning")["dog"] == {"mAP": 0.35972}
    assert evaluate_summarization(videos, "youtube_highlights", "flashvtg")["dog"] == {"mAP": 0.53958}


def test_g_tvsum_top5() -> None:
    anno = np.repeat(np.array([5, 5, 3, 2, 3, 4, 3, 1], dtype=float)[:, None], 20, axis=1)
    video = SummarizationVideo("v", "BK", [0.8, 0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.6], anno, "v")
    for protocol in ("r2tuning", "flashvtg"):
        assert evaluate_summarization([video], "tvsum", protocol)["BK"] == {"mAP": 0.41667}


@pytest.mark.parametrize("protocol", ["moment_detr", "r2tuning", "flashvtg", "lighthouse"])
def test_unsorted_list_is_evaluated_as_given(protocol: str) -> None:
    preds, gt = _example_e()
    sorted_preds = [
        dict(p, pred_relevant_windows=sorted(p["pred_relevant_windows"], key=lambda w: -w[2])) for p in preds
    ]
    given = evaluate("qvhighlights", preds, gt, protocol=protocol)
    resorted = evaluate("qvhighlights", sorted_preds, gt, protocol=protocol)
    assert given["full"]["MR-R1"]["0.7"] == 66.67
    assert resorted["full"]["MR-R1"]["0.7"] == 100.0
