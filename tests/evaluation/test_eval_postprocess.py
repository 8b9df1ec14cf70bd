"""Post-processing recipes (spec r2-tuning.md §5, flashvtg.md §6)."""

from __future__ import annotations

import torch

from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_boundaries, postprocess_config
from vtgkit.evaluation.submission import SUBMISSION_NAMES, package_submission, write_submission


def test_r2tuning_keeps_rows_reaching_the_duration_unrounded() -> None:
    config = PostprocessConfig("r2tuning", unit=2.0)
    rows = torch.tensor([[-3.0, 19.5, 0.9], [3.0, 7.0, 0.8], [5.1, 9.0, 0.7]])
    out = postprocess_boundaries(rows, 18.0, config)
    # Row 0: pre-clamp end 19.5 >= 18 -> clamped, not rounded; 3/2 = 1.5 and 7/2 = 3.5 round half to even.
    assert out == [[0.0, 18.0, 0.8999999761581421], [4.0, 8.0, 0.800000011920929], [6.0, 8.0, 0.699999988079071]]


def test_r2tuning_configs_per_benchmark() -> None:
    assert postprocess_config("r2tuning", "qvhighlights").nms_method == "normal"
    assert postprocess_config("r2tuning", "charades_sta").unit == 0.1
    assert postprocess_config("r2tuning", "tacos").nms_method == "linear"
    assert postprocess_config("flashvtg", "qvhighlights").nms_method is None
    assert postprocess_config("flashvtg", "qvhighlights", with_nms=True).nms_method == "normal"


def test_normal_nms_keeps_suppressed_rows_and_top_k_is_optional() -> None:
    rows = torch.tensor([[0.0, 10.0, 0.9], [0.0, 10.0, 0.8], [20.0, 30.0, 0.5]])
    out = postprocess_boundaries(rows, 100.0, postprocess_config("r2tuning", "qvhighlights"))
    assert [row[2] for row in out] == [0.8999999761581421, 0.5, 0.0]
    top = postprocess_boundaries(rows, 100.0, PostprocessConfig("r2tuning", unit=2.0, nms_method="normal", top_k=2))
    assert len(top) == 2


def test_flashvtg_rounds_to_four_decimals_then_clip_multiples() -> None:
    rows = torch.tensor([[1.0, 4.99, 0.123456], [-1.0, 160.0, 0.5]])
    out = postprocess_boundaries(rows, 155.0, postprocess_config("flashvtg", "qvhighlights"))
    assert out == [[0.0, 4.0, 0.1235], [0.0, 150.0, 0.5]]


def test_package_writes_the_server_layout(tmp_path) -> None:
    import zipfile

    val, test = tmp_path / "v.jsonl", tmp_path / "t.jsonl"
    write_submission([{"qid": 1, "pred_relevant_windows": [[0, 2, 1.0]]}], val)
    write_submission([{"qid": 2, "pred_saliency_scores": [0.1]}], test)
    path = package_submission(val, test, tmp_path / "sub.zip")
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted(SUBMISSION_NAMES.values())
