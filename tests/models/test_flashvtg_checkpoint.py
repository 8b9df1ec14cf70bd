"""The restricted loader of official checkpoints: option objects load as data, code in a pickle never runs."""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from vtgkit.errors import CheckpointError
from vtgkit.models.restricted_unpickler import load_restricted_checkpoint


class _CreatesMarker:
    """Unpickling this object would run ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _official_like_checkpoint(path: Path, payload: object | None = None) -> None:
    """Write a checkpoint shaped like FlashVTG's: tensors + Namespace(cfg=nncore Config, device=torch.device)."""
    fake = types.ModuleType("nncore.utils.config")

    class Config(dict):
        pass

    Config.__module__, Config.__qualname__ = "nncore.utils.config", "Config"
    fake.Config = Config
    saved = {name: sys.modules.get(name) for name in ("nncore", "nncore.utils", "nncore.utils.config")}
    sys.modules.update({"nncore": types.ModuleType("nncore"), "nncore.utils": types.ModuleType("nncore.utils"),
                        "nncore.utils.config": fake})
    try:
        cfg = Config(model=Config(strides=(1, 2), buffer_size=1024))
        cfg._frozen, cfg._filename = False, "data/MR.py"
        options = argparse.Namespace(cfg=cfg, device=torch.device("cpu"), hidden_dim=256, extra=payload)
        torch.save({"model": OrderedDict(w=torch.ones(2, 3)), "optimizer": {}, "epoch": 1, "opt": options}, path)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_official_option_objects_load_as_plain_data(tmp_path):
    path = tmp_path / "model_best.ckpt"
    _official_like_checkpoint(path)
    loaded = load_restricted_checkpoint(path)
    options = loaded["opt"]
    assert isinstance(options, argparse.Namespace) and options.device == torch.device("cpu")
    assert isinstance(options.cfg, OrderedDict) and options.cfg["model"]["strides"] == (1, 2)
    assert options.cfg._filename == "data/MR.py"  # the Config's attributes are kept as data
    assert torch.equal(loaded["model"]["w"], torch.ones(2, 3))
    assert "nncore" not in sys.modules


@pytest.mark.parametrize("payload_class", [_CreatesMarker, _ExecPayload])
@pytest.mark.parametrize("legacy_format", [False, True])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload_class, legacy_format):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.ckpt"
    checkpoint = {"model": {"w": torch.zeros(1)}, "opt": argparse.Namespace(hook=payload_class(marker))}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy_format)
    with pytest.raises(CheckpointError) as error:
        load_restricted_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint executed code from the pickle"
    message = str(error.value)
    assert str(path) in message and ("system" in message or "exec" in message) and "nothing" in message


def test_malicious_object_inside_official_options_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model_best.ckpt"
    _official_like_checkpoint(path, payload=_CreatesMarker(marker))
    with pytest.raises(CheckpointError, match="allow-list"):
        load_restricted_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps({"x": _CreatesMarker(marker)}, protocol=2))
    with pytest.raises(CheckpointError):
        load_restricted_checkpoint(path)
    assert not marker.exists()


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_restricted_checkpoint(tmp_path / "absent.ckpt")
    path = tmp_path / "model.ckpt"
    _official_like_checkpoint(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read|refused"):
        load_restricted_checkpoint(path)


def test_vtgkit_predict_refuses_a_malicious_checkpoint(tmp_path, capsys):
    from vtgkit.cli.main import main

    marker = tmp_path / "marker"
    path = tmp_path / "model_best.ckpt"
    torch.save({"model": {}, "opt": argparse.Namespace(dset_name="hl", hook=_CreatesMarker(marker))}, path)
    code = main(["predict", "--model", "flashvtg", "--checkpoint", str(path), "--data-root", str(tmp_path),
                 "--annotations", str(tmp_path / "a.jsonl"), "--output", str(tmp_path / "out.jsonl"), "--quiet"])
    assert code == 2 and not marker.exists() and not (tmp_path / "out.jsonl").exists()
    assert "refused to load" in capsys.readouterr().err
