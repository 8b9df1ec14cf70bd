"""R²-Tuning model parity with the official implementation's reference outputs (oracle README steps 1, 2, 4, 5).

The oracle folder comes from ``VTGKIT_ORACLE_R2`` (default ../shared/oracle/r2tuning/reference). Every qid, vid,
shape and batch composition is read from its files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import REPO_ROOT, require_path, shared_path

from vtgkit.models.r2tuning.convert import convert_official_state_dict, load_official_checkpoint
from vtgkit.models.r2tuning.model import R2Tuning
from vtgkit.structures import Batch

pytestmark = pytest.mark.parity

ORACLE = shared_path("VTGKIT_ORACLE_R2", REPO_ROOT.parent / "shared" / "oracle" / "r2tuning" / "reference")
VIDEO_DIR = "data/qvhighlights/clip_b32_vid_k4"
QUERY_DIR = "data/qvhighlights/clip_b32_txt_k4"
# Oracle README step 2 / 5 tolerances.
BOUNDARY_ATOL = 1e-4
SCORE_ATOL = 1e-5
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def _oracle_file(name: str) -> Path:
    return require_path(ORACLE / name, f"R2-Tuning oracle file {name}")


def _json(name: str) -> dict:
    return json.loads(_oracle_file(name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> R2Tuning:
    return load_official_checkpoint(_oracle_file("r2_random.pth"), preset="qvhighlights")


def _video(vid: str) -> np.ndarray:
    return np.load(_oracle_file(f"{VIDEO_DIR}/{vid}.npy"))


def _query(qid: int | str) -> np.ndarray:
    return np.load(_oracle_file(f"{QUERY_DIR}/{qid}.npy"))


def _single_batch(video: np.ndarray, query: np.ndarray, fps: float) -> Batch:
    v = torch.from_numpy(video)[None]
    q = torch.from_numpy(query)[None]
    return Batch(video=v, query=q, video_mask=torch.ones(v.shape[:2], dtype=torch.long),
                 query_mask=torch.ones(q.shape[:2], dtype=torch.long), fps=torch.tensor([fps]))


def _padded_batch(videos: list[np.ndarray], queries: list[np.ndarray], fps: float) -> Batch:
    """Zero-padded batch with explicit masks (equivalent to the official +inf collation, spec §2.2–2.3)."""
    batch, num_clips, num_tokens = len(videos), max(len(v) for v in videos), max(len(q) for q in queries)
    video = torch.zeros(batch, num_clips, *videos[0].shape[1:], dtype=torch.float16)
    query = torch.zeros(batch, num_tokens, *queries[0].shape[1:], dtype=torch.float16)
    video_mask = torch.zeros(batch, num_clips, dtype=torch.long)
    query_mask = torch.zeros(batch, num_tokens, dtype=torch.long)
    for i, (v, q) in enumerate(zip(videos, queries, strict=True)):
        video[i, : len(v)] = torch.from_numpy(v)
        query[i, : len(q)] = torch.from_numpy(q)
        video_mask[i, : len(v)] = 1
        query_mask[i, : len(q)] = 1
    return Batch(video=video, query=query, video_mask=video_mask, query_mask=query_mask,
                 fps=torch.full((batch,), fps))


def _run(model: R2Tuning, batch: Batch, path: str):
    model.fast_inference = path == "fast"
    try:
        with torch.inference_mode():
            return model(batch)
    finally:
        model.fast_inference = True


def _compare_query(record: dict, saliency: torch.Tensor, boundaries: torch.Tensor, worst: dict) -> None:
    expected_boundary = np.asarray(record["model_boundary"], dtype=np.float64)
    got = boundaries.double().numpy()
    assert got.shape == expected_boundary.shape, f"qid {record['qid']}: boundary rows {got.shape}"
    deviation = np.abs(got - expected_boundary)
    assert deviation[:, :2].max() <= BOUNDARY_ATOL, f"qid {record['qid']}: start/end deviate by {deviation.max()}"
    assert deviation[:, 2].max() <= SCORE_ATOL, f"qid {record['qid']}: scores deviate by {deviation[:, 2].max()}"
    expected_saliency = np.asarray(record["model_saliency"])
    assert saliency.shape == expected_saliency.shape
    saliency_dev = np.abs(saliency.double().numpy() - expected_saliency).max()
    assert saliency_dev <= SCORE_ATOL, f"qid {record['qid']}: saliency deviates by {saliency_dev}"
    for name, value in (("start", deviation[:, 0].max()), ("end", deviation[:, 1].max()),
                        ("score", deviation[:, 2].max()), ("saliency", saliency_dev)):
        worst[name] = max(worst.get(name, 0.0), float(value))


def _compare_debug(model: R2Tuning, record: dict, output, index: int, length: int, prefix: str) -> None:
    """Intermediates of debug_intermediates.npz for one query (README: adapter_out, pooled_query, class_logits,
    coord_raw, point)."""
    debug = np.load(_oracle_file("debug_intermediates.npz"))
    key = f"{prefix}{record['qid']}"
    extras = output.extras
    # adapter_out is before the in-place ReLU; our video_emb is after it (spec §3.2), so compare ReLU of theirs.
    np.testing.assert_allclose(extras["video_emb"][index, :length].numpy(),
                               np.maximum(debug[f"{key}/adapter_out"], 0), atol=2e-5, rtol=0)
    np.testing.assert_allclose(extras["query_emb"][index, 0].numpy(), debug[f"{key}/pooled_query"], atol=2e-5, rtol=0)
    valid = extras["point_mask"][index].bool()
    np.testing.assert_allclose(extras["out_class"][index, valid, 0].numpy(), debug[f"{key}/class_logits"],
                               atol=2e-5, rtol=0)
    points = extras["points"][valid]
    np.testing.assert_array_equal(points.numpy(), debug[f"{key}/point"])
    # out_coord = exp(coord_raw) · coef[level of the point] (spec §3.5).
    level = torch.tensor([list(model.config.strides).index(int(s)) for s in points[:, 3].tolist()])
    expected_coord = np.exp(debug[f"{key}/coord_raw"]) * model.coef.detach()[level].numpy()[:, None]
    np.testing.assert_allclose(extras["out_coord"][index, valid].numpy(), expected_coord, rtol=2e-5, atol=2e-5)


def test_checkpoint_consumes_every_parameter(model: R2Tuning) -> None:
    """Step 1: every official parameter key is consumed with its shape; the buffer is loaded too."""
    manifest = _json("state_dict_manifest.json")
    official = torch.load(_oracle_file("r2_random.pth"), map_location="cpu", weights_only=True)["state_dict"]
    mapped = convert_official_state_dict(official, R2Tuning(model.config))
    parameter_names = {name for name, _ in model.named_parameters()}
    consumed = {key for key in official if key in parameter_names}
    assert consumed == parameter_names, "parameters not filled from the file"
    assert len(mapped) == len(official)
    for key, value in official.items():
        ours = "criterion.saliency_log_scale" if key == "loss._loss_sal.scale" else key
        assert torch.equal(model.state_dict()[ours], value), key
    assert set(manifest["keys"]) == set(official)
    assert len(official) == manifest["num_tensors"]
    assert sum(v.numel() for v in official.values()) == manifest["num_values"]
    for key, entry in manifest["keys"].items():
        assert list(official[key].shape) == list(entry["shape"]), key


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_val_queries_one_by_one(model: R2Tuning, path: str) -> None:
    """Step 2 at model level: batch size 1, eval mode, per query of the val jsonl."""
    expected = _json("expected_outputs.json")
    fps = float(expected["fps"])
    worst: dict[str, float] = {}
    for record in expected["queries"]:
        video, query = _video(record["vid"]), _query(record["qid"])
        assert len(video) == record["num_clips"]
        output = _run(model, _single_batch(video, query, fps), path)
        assert int(output.boundary_mask[0].sum()) == min(record["num_points"], model.config.max_num_moment)
        _compare_query(record, output.saliency[0], output.boundaries[0], worst)
        _compare_debug(model, record, output, 0, len(video), "")
    print(f"worst deviations ({path}): {worst}")


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_val_queries_batched(model: R2Tuning, path: str) -> None:
    """Eval with every val query in one padded batch gives each query's batch-1 outputs."""
    expected = _json("expected_outputs.json")
    records = expected["queries"]
    batch = _padded_batch([_video(r["vid"]) for r in records], [_query(r["qid"]) for r in records],
                          float(expected["fps"]))
    output = _run(model, batch, path)
    worst: dict[str, float] = {}
    for index, record in enumerate(records):
        rows = output.boundaries[index][output.boundary_mask[index]]
        _compare_query(record, output.saliency[index, : record["num_clips"]], rows, worst)
        assert torch.all(output.saliency[index, record["num_clips"]:] == 0)
    print(f"worst deviations batched ({path}): {worst}")


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_derived_long_video(model: R2Tuning, path: str) -> None:
    """Step 4 at model level: the long video is the concatenation of the listed source files."""
    derived = _json("derived_long.json")
    fps = float(_json("expected_outputs.json")["fps"])
    video = np.concatenate([_video(source) for source in derived["sources"]], axis=0)
    assert list(video.shape) == list(derived["shape"])
    worst: dict[str, float] = {}
    for record in derived["queries"]:
        output = _run(model, _single_batch(video, _query(record["qid"]), fps), path)
        _compare_query(record, output.saliency[0], output.boundaries[0], worst)
        _compare_debug(model, record, output, 0, len(video), "derived/")
    print(f"worst deviations derived ({path}): {worst}")


# ---------------------------------------------------------------------------------------------- step 5: losses
def _loss_batch(description: dict) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """The batch of ``expected_losses.json`` built by vtgkit's dataset and collation (boundary repairs, saliency,
    zero padding + masks; spec §2.2, §8.2), with the oracle's fixed pos_clip.

    Returns the batch plus its official +inf-padded fp16 layout (B, T, K·P·Dv) / (B, L, K·Dq) for the checksums."""
    from vtgkit.data import GroundingDataset, R2TuningFeatureReader, collate_grounding, get_benchmark
    from vtgkit.data.collate import to_official_layout

    label_file = _oracle_file(description["label_file"])
    benchmark = get_benchmark("qvhighlights")
    assert benchmark.fps == description["fps"]
    by_qid = {sample.qid: sample for sample in benchmark.load(label_file)}
    chosen = [by_qid[qid] for qid in description["qids"]]
    dataset = GroundingDataset(chosen, R2TuningFeatureReader(label_file.parent), benchmark)
    batch = collate_grounding([dataset[i] for i in range(len(dataset))])
    batch.pos_clip = torch.tensor(description["pos_clip"]).view(len(chosen), 1)  # the dataset draws it at random
    official_video, official_query = to_official_layout(batch)
    return batch, official_video, official_query


def test_losses_and_gradients(model: R2Tuning) -> None:
    """Step 5: every weighted loss term, the total, targets, intermediates and gradient norms."""
    expected = _json("expected_losses.json")
    description = expected["batch"]
    batch, official_video, official_query = _loss_batch(description)
    assert list(official_video.shape) == description["video_shape"]
    assert list(official_query.shape) == description["query_shape"]
    assert hashlib.sha256(official_video.numpy().tobytes()).hexdigest() == description["video_sha256"]
    assert hashlib.sha256(official_query.numpy().tobytes()).hexdigest() == description["query_sha256"]
    expected_boundaries = np.asarray(description["boundary_after_dataset"], dtype=np.float64)
    np.testing.assert_array_equal(batch.boundaries.double().numpy(), expected_boundaries)
    np.testing.assert_allclose(batch.saliency.numpy(), np.asarray(description["saliency"]), atol=1e-7, rtol=0)
    assert batch.video.dim() == 5 and batch.video.dtype == torch.float16  # the model's cached-feature layout

    model.eval()  # dropout and drop-path off, as the oracle's loss run
    model.zero_grad(set_to_none=True)
    output = model(batch, official_padding=True)
    losses = model.compute_losses(output, batch)
    worst: dict[str, float] = {}
    for name, value in expected["losses"].items():
        assert name in losses, f"missing loss term {name}"
        torch.testing.assert_close(losses[name].double(), torch.tensor(value, dtype=torch.float64),
                                   rtol=LOSS_RTOL, atol=LOSS_ATOL, msg=name)
        worst[name] = abs(losses[name].item() - value)
    assert set(losses) - {"total"} == set(expected["losses"])
    torch.testing.assert_close(losses["total"].double(), torch.tensor(expected["total"], dtype=torch.float64),
                               rtol=LOSS_RTOL, atol=LOSS_ATOL)
    worst["total"] = abs(losses["total"].item() - expected["total"])

    arrays = np.load(_oracle_file("loss_batch.npz"))
    cls_target, reg_target = model.criterion.targets(output.extras, batch)
    np.testing.assert_array_equal(cls_target.numpy(), arrays["cls_tgt"])
    np.testing.assert_allclose(reg_target.numpy(), arrays["reg_tgt"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(output.extras["points"].numpy(), arrays["point"])
    level_masks = [arrays[name] for name in sorted(n for n in arrays.files if n.startswith("pymid_msk_"))]
    np.testing.assert_array_equal(output.extras["point_mask"].numpy(), np.concatenate(level_masks, axis=1))
    for name in ("out_class", "out_coord", "video_emb", "query_emb"):
        np.testing.assert_allclose(output.extras[name].detach().numpy(), arrays[name], atol=2e-5, rtol=0, err_msg=name)
    pos_clip = batch.pos_clip[:, 0]
    layer_cls = torch.stack([cls[torch.arange(len(pos_clip)), pos_clip] for cls in output.extras["layer_video_cls"]])
    np.testing.assert_allclose(layer_cls.detach().numpy(), arrays["coll_v_at_pos_clip"], atol=2e-5, rtol=0)
    np.testing.assert_allclose(output.extras["layer_query_emb"].detach().numpy(), arrays["coll_q"], atol=2e-5, rtol=0)

    losses["total"].backward()
    parameters = dict(model.named_parameters())
    worst_grad = 0.0
    for name, norm in expected["grad_l2_norm"].items():
        got = parameters[name].grad.norm().item()
        assert abs(got - norm) <= GRAD_ATOL + GRAD_RTOL * abs(norm), f"{name}: grad norm {got} vs {norm}"
        if abs(norm) > GRAD_ATOL:
            worst_grad = max(worst_grad, abs(got - norm) / abs(norm))
    assert set(expected["grad_l2_norm"]) == set(parameters)
    print(f"worst loss deviations: {worst}; worst relative grad-norm deviation {worst_grad:.3g}")
