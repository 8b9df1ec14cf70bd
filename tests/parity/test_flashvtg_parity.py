"""FlashVTG parity with the official implementation's reference set (see the oracle folder's README).

Everything (qids, vids, batch compositions, configuration) is read from the set's files, so the same tests run on
any set of this layout: point VTGKIT_ORACLE_FLASHVTG at its ``reference`` folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import SHARED, require_path, shared_path

from vtgkit.cli.main import main as vtgkit_main
from vtgkit.data.flashvtg_features import FlashVTGFeatureReader
from vtgkit.evaluation import evaluate
from vtgkit.models.flashvtg import FlashVTG
from vtgkit.models.flashvtg.convert import OfficialCheckpoint, load_official_checkpoint
from vtgkit.models.flashvtg.loss import FlashVTGLoss
from vtgkit.predict_flashvtg import feature_layout, flashvtg_benchmark_name
from vtgkit.structures import Batch

pytestmark = pytest.mark.parity

REFERENCE = shared_path("VTGKIT_ORACLE_FLASHVTG", SHARED / "oracle" / "flashvtg" / "reference")
SCORE_TOL = 1.5e-4  # README: outputs are rounded to 4 decimals, one flipped last digit allowed
RAW_RTOL, RAW_ATOL = 1e-4, 2e-4
LOSS_RTOL, LOSS_ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def reference() -> Path:
    return require_path(REFERENCE / "flashvtg_random.ckpt.xz", "FlashVTG reference checkpoint").parent


@pytest.fixture(scope="module")
def checkpoint_path(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flashvtg") / "model_best.ckpt"
    with lzma.open(reference / "flashvtg_random.ckpt.xz") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target)
    manifest = json.loads((reference / "state_dict_manifest.json").read_text())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["ckpt_sha256"], "decompressed checkpoint differs"
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint_path: Path) -> OfficialCheckpoint:
    return load_official_checkpoint(checkpoint_path)


def _annotation_file(reference: Path) -> Path:
    files = sorted((reference / "data").glob("*.jsonl"))
    assert len(files) == 1, f"expected one annotation file in {reference / 'data'}, found {files}"
    return files[0]


def _data_root(reference: Path, options: dict) -> Path:
    """README: option paths are relative to the official repo root, ``data/oracle/...`` = ``reference/data/...``."""
    parent = Path(str(options["v_feat_dirs"][0]).rstrip("/")).parent
    parts = parent.parts[2:] if parent.parts[:2] == ("data", "oracle") else parent.parts
    return reference.joinpath("data", *parts)


def _annotations(reference: Path) -> list[dict]:
    return [json.loads(line) for line in _annotation_file(reference).read_text().splitlines() if line.strip()]


def test_weights_match_manifest_and_parameter_count(reference, loaded):
    manifest = json.loads((reference / "state_dict_manifest.json").read_text())
    state = loaded.model.state_dict()
    assert list(state) == list(manifest["keys"])
    for key, entry in manifest["keys"].items():
        tensor = state[key]
        assert list(tensor.shape) == entry["shape"], key
        assert hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest() == entry["sha256"], key
    assert sum(t.numel() for t in state.values()) == manifest["num_parameters"]


def test_config_read_from_checkpoint_options(reference, loaded):
    options = json.loads((reference / "opt.json").read_text())
    config = loaded.config
    assert config.video_dim == options["v_feat_dim"] + 2 and config.query_dim == options["t_feat_dim"]
    assert (config.num_dummies, config.num_t2v_layers, config.num_encoder_layers, config.num_dummy_layers) == (
        options["num_dummies"], options["t2v_layers"], options["enc_layers"], options["dummy_layers"])
    assert config.clip_len == options["clip_length"] and config.dataset_name == options["dset_name"]


def test_dataset_gives_the_official_model_inputs(reference, loaded):
    inputs = np.load(reference / "model_inputs.npz")
    reader = FlashVTGFeatureReader(_data_root(reference, loaded.options), feature_layout(loaded.model))
    for record in _annotations(reference):
        np.testing.assert_allclose(reader.read_video(record["vid"]), inputs[f"video/{record['vid']}"],
                                   rtol=0, atol=1e-6, err_msg=record["vid"])
        np.testing.assert_allclose(reader.read_query(record["qid"]), inputs[f"query/{record['qid']}"],
                                   rtol=0, atol=1e-6, err_msg=str(record["qid"]))


def _rows_match(expected: np.ndarray, got: np.ndarray, reach: int = 3) -> bool:
    """Rows of a score-sorted list may swap among near-equal scores (README: up to 3 places)."""
    used = set()
    for i, row in enumerate(expected):
        for j in range(max(0, i - reach), min(len(got), i + reach + 1)):
            if j not in used and np.allclose(row, got[j], rtol=RAW_RTOL, atol=RAW_ATOL):
                used.add(j)
                break
        else:
            return False
    return True


def test_raw_outputs_from_official_inputs(reference, loaded):
    inputs = np.load(reference / "model_inputs.npz")
    expected = np.load(reference / "expected_raw_outputs.npz")
    qids = {key.split("/")[0] for key in expected.files}
    by_qid = {str(r["qid"]): r for r in _annotations(reference)}
    assert qids == set(by_qid)
    for qid in sorted(qids):
        video = torch.from_numpy(inputs[f"video/{by_qid[qid]['vid']}"])[None]
        query = torch.from_numpy(inputs[f"query/{qid}"])[None]
        batch = Batch(video=video, query=query, video_mask=torch.ones(video.shape[:2]),
                      query_mask=torch.ones(query.shape[:2]), fps=torch.tensor([1 / loaded.config.clip_len]))
        with torch.inference_mode():
            output = loaded.model(batch)
        np.testing.assert_allclose(output.saliency[0].numpy(), expected[f"{qid}/saliency"], rtol=RAW_RTOL,
                                   atol=RAW_ATOL, err_msg=f"saliency of qid {qid}")
        boundary, reference_boundary = output.boundaries[0].numpy(), expected[f"{qid}/boundary"]
        assert boundary.shape == reference_boundary.shape, qid
        assert _rows_match(reference_boundary, boundary), f"boundary of qid {qid}"


def _windows_by_span(windows: list) -> dict:
    grouped = defaultdict(list)
    for start, end, score in windows:
        grouped[(float(start), float(end))].append(float(score))
    return {key: sorted(scores) for key, scores in grouped.items()}


def _check_submission(expected_path: Path, records: list[dict]) -> None:
    expected = {r["qid"]: r for r in (json.loads(x) for x in expected_path.read_text().splitlines() if x.strip())}
    got = {r["qid"]: r for r in records}
    assert set(got) == set(expected)
    for qid, ref in expected.items():
        cand = got[qid]
        ref_windows, cand_windows = _windows_by_span(ref["pred_relevant_windows"]), _windows_by_span(
            cand["pred_relevant_windows"])
        assert set(ref_windows) == set(cand_windows), f"qid {qid}: windows differ"
        for span, scores in ref_windows.items():
            assert len(cand_windows[span]) == len(scores), f"qid {qid} window {span}"
            np.testing.assert_allclose(cand_windows[span], scores, rtol=0, atol=SCORE_TOL)
        cand_scores = [w[2] for w in cand["pred_relevant_windows"]]
        assert all(a >= b for a, b in zip(cand_scores, cand_scores[1:], strict=False)), f"qid {qid}: not sorted"
        # Official Charades-STA / TACoS files drop the saliency field; vtgkit always writes it (compare.py agrees).
        if "pred_saliency_scores" in ref:
            np.testing.assert_allclose(cand["pred_saliency_scores"], ref["pred_saliency_scores"], rtol=0,
                                       atol=SCORE_TOL)


@pytest.fixture(scope="module")
def submissions(reference, loaded, checkpoint_path, tmp_path_factory) -> dict[str, Path]:
    """The issue's command: ``vtgkit predict --model flashvtg --checkpoint ... [--no-nms]`` (dataset from the
    checkpoint)."""
    folder = tmp_path_factory.mktemp("flashvtg_submissions")
    paths = {}
    for name, extra in (("nms", []), ("no_nms", ["--no-nms"])):
        paths[name] = folder / f"{name}.jsonl"
        code = vtgkit_main(["predict", "--model", "flashvtg", "--checkpoint", str(checkpoint_path), "--data-root",
                            str(_data_root(reference, loaded.options)), "--annotations",
                            str(_annotation_file(reference)), "--output", str(paths[name]), "--quiet", *extra])
        assert code == 0
    return paths


def test_submission_without_nms(reference, submissions):
    records = [json.loads(x) for x in submissions["no_nms"].read_text().splitlines()]
    _check_submission(reference / "expected_outputs_no_nms.jsonl", records)


def test_submission_with_nms(reference, submissions):
    records = [json.loads(x) for x in submissions["nms"].read_text().splitlines()]
    _check_submission(reference / "expected_outputs.jsonl", records)


@pytest.fixture(scope="module")
def metrics(reference, checkpoint_path, submissions, tmp_path_factory) -> Path:
    """The official evaluation ("flashvtg" protocol) of both submissions, in the expected_metrics.json layout."""
    dataset = flashvtg_benchmark_name(checkpoint_path)
    annotations = _annotation_file(reference)
    first = json.loads((reference / "expected_outputs.jsonl").read_text().splitlines()[0])
    result = {}
    for key, name in (("metrics_no_nms", "no_nms"), ("metrics_nms", "nms")):
        records = [json.loads(line) for line in submissions[name].read_text().splitlines()]
        if "pred_saliency_scores" not in first:  # official Charades-STA / TACoS files carry no saliency (spec §6)
            records = [{k: v for k, v in r.items() if k != "pred_saliency_scores"} for r in records]
        result[key] = evaluate(dataset, records, annotations, protocol="flashvtg")
    path = tmp_path_factory.mktemp("flashvtg_metrics") / "metrics.json"
    path.write_text(json.dumps(result))
    return path


def test_metrics(reference, metrics):
    expected = json.loads((reference / "expected_metrics.json").read_text())
    got = json.loads(metrics.read_text())
    for key in ("metrics_no_nms", "metrics_nms"):
        for name, value in expected[key]["brief"].items():
            assert abs(got[key]["brief"][name] - value) <= 1e-6, f"{key} {name}: {got[key]['brief'][name]} vs {value}"


def _loss_batch(reference: Path, name: str, meta: dict, config) -> Batch:
    inputs = np.load(reference / "model_inputs.npz")
    arrays = np.load(reference / "loss_batches.npz")
    video_mask = torch.from_numpy(arrays[f"{name}/src_vid_mask"])
    query_mask = torch.from_numpy(arrays[f"{name}/src_txt_mask"])
    batch_size = len(meta["qid"])
    video = torch.zeros(batch_size, video_mask.shape[1], config.video_dim)
    query = torch.zeros(batch_size, query_mask.shape[1], config.query_dim)
    for index, (qid, vid) in enumerate(zip(meta["qid"], meta["vid"], strict=True)):
        rows, tokens = inputs[f"video/{vid}"], inputs[f"query/{qid}"]
        video[index, : len(rows)] = torch.from_numpy(rows)
        query[index, : len(tokens)] = torch.from_numpy(tokens)
    assert hashlib.sha256(video.numpy().tobytes()).hexdigest() == meta["src_vid_sha256"], name
    assert hashlib.sha256(query.numpy().tobytes()).hexdigest() == meta["src_txt_sha256"], name
    width = max(len(w) for w in meta["relevant_windows"])
    boundaries = torch.full((batch_size, width, 2), float("inf"))
    for index, windows in enumerate(meta["relevant_windows"]):
        boundaries[index, : len(windows)] = torch.tensor(windows, dtype=torch.float32)
    return Batch(
        video=video, query=query, video_mask=video_mask, query_mask=query_mask,
        fps=torch.full((batch_size,), float(meta["fps"])), boundaries=boundaries,
        saliency=torch.from_numpy(arrays[f"{name}/saliency_all_labels"]),
        extras={"vids": list(meta["vid"]),
                "saliency_pos_labels": torch.from_numpy(arrays[f"{name}/saliency_pos_labels"]),
                "saliency_neg_labels": torch.from_numpy(arrays[f"{name}/saliency_neg_labels"])},
    )


def test_training_losses(reference, loaded):
    meta = json.loads((reference / "loss_batches_meta.json").read_text())
    expected = json.loads((reference / "expected_losses.json").read_text())["batches"]
    config = dataclasses.replace(loaded.config, dropout=0.0, input_dropout=0.0, dummy_encoder_dropout=0.0)
    model = FlashVTG(config).train()
    model.load_state_dict(loaded.model.state_dict())
    criterion = FlashVTGLoss(config)
    assert set(meta) == set(expected)
    for name, batch_meta in meta.items():
        batch = _loss_batch(reference, name, batch_meta, config)
        with torch.no_grad():  # training-mode forward; gradients are not needed to compare values
            output = model(batch)
            terms = {key: float(value) for key, value in criterion.terms(output, batch).items()}
            total = float(criterion(output, batch)["total"])
        for key, value in expected[name]["terms"].items():
            assert criterion.weights[key] == expected[name]["weights"][key], f"weight of {key}"
            assert np.isclose(terms[key], value, rtol=LOSS_RTOL, atol=LOSS_ATOL), f"{name} {key}: {terms[key]}"
        assert np.isclose(total, expected[name]["weighted_total"], rtol=LOSS_RTOL, atol=LOSS_ATOL), name


def _compare_script(reference: Path) -> Path:
    for candidate in (reference.parent / "compare.py", SHARED / "oracle" / "flashvtg" / "compare.py"):
        if candidate.is_file():
            return candidate
    pytest.skip(f"compare.py not found beside {reference}")


def test_official_checker_accepts_submissions_and_metrics(reference, submissions, metrics):
    script = _compare_script(reference)
    result = subprocess.run(
        [sys.executable, str(script), "--reference", str(reference), "--outputs", str(submissions["nms"]),
         "--outputs-no-nms", str(submissions["no_nms"]), "--metrics", str(metrics)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
