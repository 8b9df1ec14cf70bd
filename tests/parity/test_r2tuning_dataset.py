"""Oracle step 5: the loss batch built by vtgkit's dataset and collation equals the official collated batch.

Everything (qids, label file, fps, shapes, checksums) is read from ``expected_losses.json`` → ``batch``.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from tests.conftest import SHARED, require_path, shared_path

from vtgkit.data import GroundingDataset, R2TuningFeatureReader, collate_grounding, filter_min_duration, get_benchmark
from vtgkit.data.collate import to_official_layout

pytestmark = pytest.mark.parity

ORACLE = shared_path("VTGKIT_ORACLE_R2", SHARED / "oracle" / "r2tuning" / "reference")


def _sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def loss_batch() -> dict:
    path = require_path(ORACLE / "expected_losses.json", "R2-Tuning oracle expected_losses.json")
    return json.loads(path.read_text(encoding="utf-8"))["batch"]


def test_official_loss_batch(loss_batch: dict) -> None:
    label_file = require_path(ORACLE / loss_batch["label_file"], "oracle training annotations")
    benchmark = get_benchmark("qvhighlights")
    assert benchmark.fps == loss_batch["fps"]  # the batch was built with the benchmark's official rate
    samples, skipped = filter_min_duration(benchmark.load(label_file), benchmark.min_video_len)
    by_qid = {sample.qid: sample for sample in samples}
    missing = [qid for qid in loss_batch["qids"] if qid not in by_qid]
    assert not missing, f"batch qids {missing} absent after the training filter ({dict(skipped)})"
    chosen = [by_qid[qid] for qid in loss_batch["qids"]]
    assert [s.vid for s in chosen] == loss_batch["vids"]
    reader = R2TuningFeatureReader(label_file.parent)
    dataset = GroundingDataset(chosen, reader, benchmark)
    batch = collate_grounding([dataset[i] for i in range(len(dataset))])

    video, query = to_official_layout(batch)
    assert list(video.shape) == loss_batch["video_shape"] and list(query.shape) == loss_batch["query_shape"]
    assert str(video.dtype) == loss_batch["video_dtype"] and str(query.dtype) == loss_batch["query_dtype"]
    assert _sha256(video) == loss_batch["video_sha256"]
    assert _sha256(query) == loss_batch["query_sha256"]

    expected_boundaries = torch.tensor(loss_batch["boundary_after_dataset"], dtype=torch.float32)
    assert batch.boundaries.shape == expected_boundaries.shape
    finite = torch.isfinite(expected_boundaries)
    assert torch.equal(torch.isfinite(batch.boundaries), finite)
    assert torch.equal(batch.boundaries[finite], expected_boundaries[finite])
    assert torch.isinf(batch.boundaries[~finite]).all() and (batch.boundaries[~finite] > 0).all()

    expected_saliency = torch.tensor(loss_batch["saliency"], dtype=torch.float32)
    assert torch.equal(batch.saliency, expected_saliency)
    # explicit masks mark exactly the rows the official +inf padding leaves finite (spec r2-tuning.md §2.3)
    assert torch.equal(batch.video_mask.bool(), video[..., 0].isfinite())
    assert torch.equal(batch.query_mask.bool(), query[..., 0].isfinite())
    # pos_clip is drawn at random from clips with positive saliency; the oracle's fixed draw must be one of them.
    assert batch.pos_clip.shape == (len(chosen), 1)
    for row, clip in enumerate(loss_batch["pos_clip"]):
        assert batch.saliency[row, batch.pos_clip[row, 0]] > 0
        assert expected_saliency[row, clip] > 0
    assert batch.fps.tolist() == [loss_batch["fps"]] * len(chosen)
