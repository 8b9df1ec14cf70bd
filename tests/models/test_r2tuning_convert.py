"""Official checkpoint ↔ vtgkit conversion on tiny random models (no shared files needed)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from vtgkit.cli.main import main as cli_main
from vtgkit.errors import CheckpointError
from vtgkit.models import create_model
from vtgkit.models.r2tuning.convert import (
    infer_config,
    load_official_checkpoint,
    load_vtgkit,
    save_official_checkpoint,
    save_vtgkit,
    to_official_state_dict,
)

# Real CLIP widths (the arch is inferred from them); small hidden width. num_heads cannot be read from weights, so
# it keeps its default.
TINY = {"num_layers": 2, "hidden_dims": 16, "ffn_ratio": 2}


def _randomised(preset: str = "qvhighlights"):
    model = create_model("r2tuning", preset, **TINY)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return model.eval()


def _official_file(model, path: Path, prefix: str = "", bare: bool = False) -> Path:
    state = OrderedDict((prefix + key, value) for key, value in to_official_state_dict(model).items())
    torch.save(state if bare else {"state_dict": state, "meta": {"nncore_version": "0.4.4"}}, path)
    return path


def _assert_same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("preset", ["qvhighlights", "tvsum_bk"])
def test_official_round_trip_and_config_inference(tmp_path: Path, preset: str) -> None:
    model = _randomised(preset)
    loaded = load_official_checkpoint(_official_file(model, tmp_path / "official.pth"), preset=preset)
    _assert_same_weights(model, loaded)
    assert loaded.config == model.config
    keys = list(to_official_state_dict(model))
    assert "loss._loss_sal.scale" in keys and not any(k.startswith("criterion.") for k in keys)
    inferred = infer_config(to_official_state_dict(model))
    assert inferred.strides == model.config.strides
    assert inferred.use_tef == model.config.use_tef
    assert inferred.use_coord_head == model.config.use_coord_head
    assert inferred.num_layers == 2 and inferred.hidden_dims == 16 and inferred.ffn_ratio == 2


def test_module_prefix_and_bare_state_dict(tmp_path: Path) -> None:
    model = _randomised()
    path = _official_file(model, tmp_path / "bare.pth", prefix="module.", bare=True)
    _assert_same_weights(model, load_official_checkpoint(path, preset="qvhighlights"))


def test_vtgkit_format_round_trip(tmp_path: Path) -> None:
    model = _randomised("charades")
    weights, config = save_vtgkit(model, tmp_path / "ckpt")
    assert weights.name == "model.safetensors" and config.name == "config.json"
    loaded = load_vtgkit(tmp_path / "ckpt")
    _assert_same_weights(model, loaded)
    assert loaded.config == model.config
    save_vtgkit(model, tmp_path / "single.safetensors")
    assert (tmp_path / "single.json").is_file()
    _assert_same_weights(model, load_vtgkit(tmp_path / "single.safetensors"))
    back = save_official_checkpoint(loaded, tmp_path / "back.pth")
    _assert_same_weights(model, load_official_checkpoint(back, preset="charades"))


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = to_official_state_dict(_randomised())
    del state["adapter.q_map.weight"]
    state["adapter.extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as error:
        load_official_checkpoint(tmp_path / "bad.pth", preset="qvhighlights")
    message = str(error.value)
    assert "bad.pth" in message and "adapter.q_map.weight" in message and "adapter.extra.weight" in message


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    model = _randomised()
    state = to_official_state_dict(model)
    state["pooling.att.weight"] = torch.zeros(1, 9)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"pooling\.att\.weight: file \(1, 9\)"):
        load_official_checkpoint(tmp_path / "shape.pth", config=model.config)


def test_truncated_non_dict_and_foreign_checkpoints(tmp_path: Path) -> None:
    full = _official_file(_randomised(), tmp_path / "full.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_official_checkpoint(truncated)
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth.*expected a dict"):
        load_official_checkpoint(tmp_path / "list.pth")
    torch.save({"state_dict": {"transformer.layer.weight": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth.*not an R2-Tuning"):
        load_official_checkpoint(tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_official_checkpoint(tmp_path / "absent.pth")


def test_corrupt_vtgkit_files(tmp_path: Path) -> None:
    save_vtgkit(_randomised(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_vtgkit(tmp_path / "ckpt")


def test_cli_convert_both_directions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _randomised()
    official = _official_file(model, tmp_path / "official.pth")
    assert cli_main(["convert", "--model", "r2tuning", "--input", str(official), "--output",
                     str(tmp_path / "out"), "--preset", "qvhighlights"]) == 0
    assert cli_main(["convert", "--model", "r2tuning", "--input", str(tmp_path / "out"), "--output",
                     str(tmp_path / "back.pth"), "--to", "official"]) == 0
    _assert_same_weights(model, load_official_checkpoint(tmp_path / "back.pth", preset="qvhighlights"))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    assert cli_main(["convert", "--model", "r2tuning", "--input", str(tmp_path / "broken.pth"), "--output",
                     str(tmp_path / "x")]) == 2
    assert "broken.pth" in capsys.readouterr().err
