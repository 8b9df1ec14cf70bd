"""FlashVTG feature layouts, preprocessing, training labels and collation (spec flashvtg.md §1, §5)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from vtgkit.data.flashvtg_batches import (
    build_flashvtg_items,
    collate_flashvtg,
    qvhighlights_saliency_labels,
    window_saliency_labels,
)
from vtgkit.data.flashvtg_features import (
    FLASHVTG_LAYOUTS,
    FlashVTGFeatureReader,
    l2_normalize_rows,
    temporal_endpoint_features,
)
from vtgkit.errors import FeatureError, FeatureFileNotFoundError
from vtgkit.structures import GroundingSample


def _write_qv(root, vid="v_0.0_10.0", qid=1, slowfast_rows=6, clip_rows=5, tokens=50, text_dim=4):
    rng = np.random.default_rng(0)
    for folder, rows, dim in (("slowfast_features", slowfast_rows, 3), ("clip_features", clip_rows, 2)):
        (root / folder).mkdir(exist_ok=True)
        np.savez(root / folder / f"{vid}.npz", features=rng.normal(size=(rows, dim)).astype(np.float16))
    (root / "clip_text_features").mkdir(exist_ok=True)
    text = rng.normal(size=(tokens, text_dim)).astype(np.float32)
    np.savez(root / "clip_text_features" / f"qid{qid}.npz", last_hidden_state=text, pooler_output=text[0])
    return text


def test_qvhighlights_video_preprocessing(tmp_path):
    _write_qv(tmp_path)
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    video = reader.read_video("v_0.0_10.0")
    assert video.shape == (5, 3 + 2 + 2) and video.dtype == np.float32  # cut to the shorter folder, + TEF
    np.testing.assert_allclose(np.linalg.norm(video[:, :3], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(video[:, -2:], [[i / 5, i / 5 + 0.2] for i in range(5)], atol=1e-7)


def test_video_length_cap_before_truncation(tmp_path):
    _write_qv(tmp_path, slowfast_rows=90, clip_rows=80)
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])  # max_v_l 75
    assert reader.read_video("v_0.0_10.0").shape[0] == 75


def test_text_cut_and_normalised_or_raw(tmp_path):
    text = _write_qv(tmp_path, tokens=50)
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    query = reader.read_query(1)
    np.testing.assert_allclose(query, l2_normalize_rows(text[:40]), rtol=1e-6)
    raw_layout = dataclasses.replace(FLASHVTG_LAYOUTS["qvhighlights"], normalize_text=False)
    np.testing.assert_array_equal(FlashVTGFeatureReader(tmp_path, raw_layout).read_query(1), text)


def test_pt_and_npy_fallbacks(tmp_path):
    _write_qv(tmp_path)
    (tmp_path / "clip_features" / "v_0.0_10.0.npz").unlink()
    torch.save(torch.ones(4, 2), tmp_path / "clip_features" / "v_0.0_10.0.pt")
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    assert reader.read_video("v_0.0_10.0").shape == (4, 7)
    (tmp_path / "clip_features" / "v_0.0_10.0.pt").unlink()
    np.save(tmp_path / "clip_features" / "v_0.0_10.0.npy", np.ones((3, 2), np.float32))
    assert reader.read_video("v_0.0_10.0").shape == (3, 7)


def test_tvsum_rgb_and_flow_halves(tmp_path):
    layout = FLASHVTG_LAYOUTS["tvsum"]
    for folder in (*layout.video_dirs, layout.text_dir):
        (tmp_path / folder).mkdir()
    np.save(tmp_path / "vid_slowfast" / "x_rgb.npy", np.ones((4, 2), np.float32))
    np.save(tmp_path / "vid_slowfast" / "x_opt.npy", np.ones((4, 3), np.float32))
    np.savez(tmp_path / "vid_clip" / "x.npz", features=np.ones((4, 5), np.float32))
    video = FlashVTGFeatureReader(tmp_path, layout).read_video("x")
    assert video.shape == (4, 5 + 5 + 2)
    np.testing.assert_allclose(np.linalg.norm(video[:, :5], axis=1), 1.0, atol=1e-4)


def test_errors_name_the_files(tmp_path):
    with pytest.raises(FeatureFileNotFoundError, match="slowfast_features"):
        FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    _write_qv(tmp_path)
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    with pytest.raises(FeatureFileNotFoundError, match=r"missing\.npz"):
        reader.read_video("missing")
    np.savez(tmp_path / "clip_features" / "bad.npz", other=np.ones((2, 2)))
    np.savez(tmp_path / "slowfast_features" / "bad.npz", features=np.ones((2, 3)))
    with pytest.raises(FeatureError, match=r"bad\.npz: no key 'features'"):
        reader.read_video("bad")
    np.savez(tmp_path / "clip_features" / "nan.npz", features=np.full((2, 2), np.nan))
    np.savez(tmp_path / "slowfast_features" / "nan.npz", features=np.ones((2, 3)))
    with pytest.raises(FeatureError, match=r"nan\.npz: video features holds non-finite"):
        reader.read_video("nan")
    (tmp_path / "clip_text_features" / "qid7.npz").write_bytes(b"not a zip")
    with pytest.raises(FeatureError, match=r"qid7\.npz: cannot read"):
        reader.read_query(7)


def test_tef_matches_formula():
    np.testing.assert_allclose(temporal_endpoint_features(4), [[0, .25], [.25, .5], [.5, .75], [.75, 1]])


def test_qvhighlights_labels_hard_and_easy():
    pos, neg, labels = qvhighlights_saliency_labels([2, 3, 4], [[1, 1, 1], [4, 4, 4], [0, 1, 0]], 6,
                                                    random.Random(0))
    assert labels.tolist() == [0, 0, 3, 12, 1, 0]
    assert pos[0] == 3 and neg[0] == 4 and pos[1] in (2, 3, 4) and neg[1] in (0, 1, 5)
    # no clip outside the relevant set: the hard clips are repeated
    pos, neg, _ = qvhighlights_saliency_labels([0, 1], [[1, 1, 1], [2, 2, 2]], 2, random.Random(0))
    assert pos == [1, 1] and neg == [0, 0]


def test_window_labels_first_window():
    pos, neg, labels = window_saliency_labels((2.0, 6.0), 10.0, 10, random.Random(0))
    assert labels.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    assert all(2 <= p <= 5 for p in pos) and all(n < 2 or n > 5 for n in neg)


def test_collate_pads_and_keeps_every_window(tmp_path):
    _write_qv(tmp_path, vid="a_0_4", qid=1, slowfast_rows=4, clip_rows=4, tokens=3)
    _write_qv(tmp_path, vid="b_0_6", qid=2, slowfast_rows=6, clip_rows=6, tokens=5)
    reader = FlashVTGFeatureReader(tmp_path, FLASHVTG_LAYOUTS["qvhighlights"])
    samples = [
        GroundingSample(qid=1, vid="a_0_4", query="q", duration=8.0, windows=[(0.0, 2.0)], relevant_clip_ids=[0],
                        saliency_scores=[[1, 2, 3]]),
        GroundingSample(qid=2, vid="b_0_6", query="q", duration=12.0, windows=[(0.0, 2.0), (4.0, 6.0)],
                        relevant_clip_ids=[0, 2], saliency_scores=[[1, 1, 1], [2, 2, 2]]),
    ]
    batch = collate_flashvtg(build_flashvtg_items(samples, reader, label_kind="qvhighlights", seed=0))
    assert batch.video.shape == (2, 6, 7) and batch.query.shape == (2, 5, 4)
    assert batch.video_mask.tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6] and batch.video_mask.dtype == torch.float32
    assert torch.isinf(batch.boundaries[0, 1]).all() and batch.boundaries[1].tolist() == [[0, 2], [4, 6]]
    assert batch.fps.tolist() == [0.5, 0.5] and batch.extras["vids"] == ["a_0_4", "b_0_6"]
    assert batch.extras["saliency_pos_labels"].shape == (2, 2) and batch.saliency.shape == (2, 6)
