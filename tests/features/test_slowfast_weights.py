"""SlowFast weight files: Caffe2 pickles, PySlowFast and pytorchvideo torch checkpoints, and their failures."""

from __future__ import annotations

import os
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.features.slowfast_helpers import TINY, random_state, write_caffe2, write_pyslowfast, write_pytorchvideo

from vtgkit.errors import CheckpointError
from vtgkit.features.slowfast import weights as slowfast_weights
from vtgkit.features.slowfast.key_table import caffe2_name
from vtgkit.features.slowfast.weights import load_slowfast


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_state(TINY, seed=5)


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)
    assert model.config.stage_blocks == TINY.stage_blocks and model.config.width == TINY.width
    assert model.config.beta_inv == TINY.beta_inv and model.config.feature_dim == TINY.feature_dim


@pytest.mark.parametrize("fmt", ["caffe2", "pyslowfast", "pytorchvideo"])
def test_every_release_format_loads_the_same_tensors(tmp_path: Path, tiny_state: dict, fmt: str) -> None:
    # PySlowFast names its torch files .pkl too: the format is read from the bytes, not the suffix.
    path = tmp_path / "weights.pkl"
    if fmt == "caffe2":
        write_caffe2(path, tiny_state, TINY)
    elif fmt == "pyslowfast":
        write_pyslowfast(path, tiny_state, TINY)
    else:
        write_pytorchvideo(path, tiny_state)
    _assert_loaded(load_slowfast(path), tiny_state)


def test_legacy_torch_format_is_recognised(tmp_path: Path, tiny_state: dict) -> None:
    path = tmp_path / "legacy.pyth"
    torch.save({"model_state": tiny_state}, path, _use_new_zipfile_serialization=False)
    _assert_loaded(load_slowfast(path), tiny_state)


def test_caffe2_names_follow_the_official_blob_names() -> None:
    blocks = (3, 4, 6, 3)
    assert caffe2_name("s1.pathway0_stem.conv.weight", blocks) == "conv1_w"
    assert caffe2_name("s1.pathway1_stem.bn.running_var", blocks) == "t_res_conv1_bn_riv"
    assert caffe2_name("s1_fuse.conv_f2s.weight", blocks) == "t_pool1_subsample_w"
    assert caffe2_name("s4_fuse.bn.running_mean", blocks) == "t_res4_5_branch2c_bn_subsample_bn_rm"
    assert caffe2_name("s3.pathway1_res2.branch2.b_bn.weight", blocks) == "t_res3_2_branch2b_bn_s"
    assert caffe2_name("s2.pathway0_res0.branch1_bn.bias", blocks) == "res2_0_branch1_bn_b"


def test_truncated_caffe2_file_is_a_clear_error(tmp_path: Path, tiny_state: dict) -> None:
    path = write_caffe2(tmp_path / "SLOWFAST_8x8_R50.pkl", tiny_state, TINY)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"SLOWFAST_8x8_R50\.pkl.*truncated"):
        load_slowfast(path)


def test_truncated_torch_file_is_a_clear_error(tmp_path: Path, tiny_state: dict) -> None:
    path = write_pyslowfast(tmp_path / "w.pyth", tiny_state, TINY)
    path.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(CheckpointError, match=r"w\.pyth"):
        load_slowfast(path)


def test_another_models_file_names_the_missing_and_unexpected_keys(tmp_path: Path, tiny_state: dict) -> None:
    other = {k: v for k, v in tiny_state.items() if "s5." not in k}
    other["visual.conv1.weight"] = torch.zeros(8, 3, 32, 32)
    path = tmp_path / "other.pth"
    torch.save(other, path)
    with pytest.raises(CheckpointError, match=r"other\.pth.*missing \['s.*unexpected \['visual\.conv1\.weight'\]"):
        load_slowfast(path)


def test_caffe2_file_with_a_foreign_blob_is_refused(tmp_path: Path, tiny_state: dict) -> None:
    path = write_caffe2(tmp_path / "nln.pkl", tiny_state, TINY)
    with open(path, "rb") as file:
        data = pickle.load(file)
    data["blobs"]["nonlocal_conv3_1_theta_w"] = np.zeros((4, 4, 1, 1, 1), dtype=np.float32)
    with open(path, "wb") as file:
        pickle.dump(data, file, protocol=2)
    with pytest.raises(CheckpointError, match=r"nln\.pkl.*caffe2 naming.*nonlocal_conv3_1_theta_w"):
        load_slowfast(path)


def test_shape_mismatch_names_the_tensor(tmp_path: Path, tiny_state: dict) -> None:
    bad = dict(tiny_state)
    bad["s3.pathway0_res0.branch2.b.weight"] = torch.zeros(16, 16, 1, 5, 5)
    path = tmp_path / "bad.pyth"
    torch.save({"model_state": bad}, path)
    with pytest.raises(CheckpointError, match=r"s3\.pathway0_res0\.branch2\.b\.weight.*\(16, 16, 1, 5, 5\)"):
        load_slowfast(path)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_naming_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as file:
        pickle.dump({"blobs": {"conv1_w": _Exploit()}}, file, protocol=2)
    with pytest.raises(CheckpointError, match=r"evil\.pkl.*(posix|os)\.system"):
        load_slowfast(path)


def test_registry_names_download_and_offline_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    def offline(*_args: object, **_kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"SLOWFAST_8x8_R50\.pkl.*no network.*slowfast"):
        load_slowfast("SLOWFAST_8x8_R50.pkl")
    assert not any((tmp_path / "slowfast").glob("*"))  # no partial file left behind
    with pytest.raises(CheckpointError, match="neither a file nor a known name"):
        load_slowfast(tmp_path / "nothing.pkl")
    url, _sha = slowfast_weights.SLOWFAST_WEIGHTS["SLOWFAST_8x8_R50.pkl"]
    assert url.endswith("/kinetics400/SLOWFAST_8x8_R50.pkl")
