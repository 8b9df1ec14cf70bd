"""Grounder.from_pretrained on vtgkit-format FlashVTG checkpoints (``X.safetensors`` + ``X.json``, as `vtgkit train`
writes ``best.*`` / ``last.*``): the JSON config replaces the official training options. The same tiny random weights
as an official ``model_best.ckpt`` must give the same grounder and the same answers; what the config cannot tell
apart is refused with the reason, before any encoder weights are loaded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tests.features.slowfast_helpers import TINY, random_state, write_caffe2
from tests.test_api_flashvtg import FLASH_CLIP, SHORT_SECONDS, write_flashvtg_checkpoint

from tiny_grounder import write_tiny_checkpoint, write_tiny_clip, write_video

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to decode test videos")

from vtgkit.api import Grounder  # noqa: E402
from vtgkit.errors import CheckpointError, ConfigError  # noqa: E402
from vtgkit.flashvtg_grounding import FlashVTGGrounder  # noqa: E402
from vtgkit.grounder_loading import is_flashvtg_checkpoint  # noqa: E402
from vtgkit.models.checkpoint_io import save_vtgkit_checkpoint  # noqa: E402
from vtgkit.models.flashvtg import FlashVTG  # noqa: E402
from vtgkit.models.flashvtg.config import PRESETS  # noqa: E402
from vtgkit.models.flashvtg.convert import load_official_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vtgkit_flashvtg")
    official = write_flashvtg_checkpoint(root / "model_best.ckpt")
    loaded = load_official_checkpoint(official)
    run = root / "run"
    run.mkdir()
    # What the trainer's export writes: the weights plus the model's FlashVTGConfig, no official options.
    save_vtgkit_checkpoint(run / "best.safetensors", "flashvtg", loaded.config, loaded.model.state_dict())
    return {
        "official": official,
        "vtgkit": run / "best.safetensors",
        "config": loaded.config,
        "clip": write_tiny_clip(root / "clip224.safetensors", FLASH_CLIP),
        "slowfast": write_caffe2(root / "SLOWFAST_tiny.pkl", random_state(TINY, seed=7), TINY),
        "video": write_video(root / "kitchen.mp4", SHORT_SECONDS),
        "root": root,
    }


def _grounder(assets: dict[str, Path], checkpoint: Path | str, **options: object) -> FlashVTGGrounder:
    return Grounder.from_pretrained(checkpoint, clip_weights=assets["clip"], slowfast_weights=assets["slowfast"],
                                    progress=False, **options)


def test_vtgkit_format_grounds_like_the_official_checkpoint(assets: dict[str, Path]) -> None:
    ours, official = _grounder(assets, assets["vtgkit"]), _grounder(assets, assets["official"])
    assert isinstance(ours, FlashVTGGrounder) and ours.checkpoint == str(assets["vtgkit"])
    assert ours.layout == official.layout  # folders, caps and clip length from the config + dataset_name
    assert ours.layout.video_dirs == ("slowfast_features", "clip_features")
    assert (ours.window_clips, ours.clip_len, ours.has_moments) == (75, 2.0, True)
    query = "a white box moves across the screen"
    mine, theirs = ours.predict(assets["video"], query), official.predict(assets["video"], query)
    assert mine.moments and [(m.start, m.end, m.score) for m in mine.moments] == \
        [(m.start, m.end, m.score) for m in theirs.moments]
    assert mine.highlights.saliency.tolist() == theirs.highlights.saliency.tolist()


def test_json_path_and_folder_layout_are_accepted(assets: dict[str, Path]) -> None:
    folder = assets["root"] / "folder_checkpoint"
    model = FlashVTG(assets["config"])
    save_vtgkit_checkpoint(folder, "flashvtg", assets["config"], model.state_dict())  # model.safetensors + config.json
    for checkpoint in (assets["vtgkit"].with_suffix(".json"), folder):
        assert is_flashvtg_checkpoint(checkpoint)
        assert isinstance(_grounder(assets, checkpoint), FlashVTGGrounder)
    r2tuning = write_tiny_checkpoint(assets["root"] / "r2_checkpoint")  # a vtgkit R²-Tuning folder stays R²-Tuning
    assert not is_flashvtg_checkpoint(r2tuning)
    assert not is_flashvtg_checkpoint(assets["root"] / "missing.safetensors")


def _saved(assets: dict[str, Path], name: str, config: object) -> Path:
    path = assets["root"] / name / "best.safetensors"
    path.parent.mkdir(exist_ok=True)
    save_vtgkit_checkpoint(path, "flashvtg", config, FlashVTG(config).state_dict())
    return path


def test_features_vtgkit_does_not_make_are_refused_before_loading_encoders(assets: dict[str, Path]) -> None:
    # Charades-STA names one dset_name for SlowFast+CLIP, VGG and InternVideo2 features: the widths tell them apart.
    iv2 = PRESETS["charades_sta_internvideo2"]
    config = dataclasses.replace(assets["config"], video_dim=iv2.video_dim, query_dim=iv2.query_dim,
                                 dataset_name="charadesSTA", clip_len=1.0, max_video_len=-1)
    checkpoint = _saved(assets, "charades_iv2", config)
    with pytest.raises(ConfigError, match="InternVideo2 / VGG"):  # a missing CLIP file would fail later otherwise
        Grounder.from_pretrained(checkpoint, clip_weights=assets["root"] / "no-clip.pt", progress=False)


def test_widths_that_do_not_fit_name_the_assumed_layout(assets: dict[str, Path]) -> None:
    checkpoint = _saved(assets, "other_widths", dataclasses.replace(assets["config"], video_dim=40))
    with pytest.raises(CheckpointError) as error:
        _grounder(assets, checkpoint)
    message = str(error.value)
    assert str(checkpoint) in message and "expects 40" in message
    assert "records no feature folders" in message and "slowfast_features + clip_features" in message


def test_preset_and_mismatched_weights_are_refused(assets: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="drop preset='qvhighlights'"):
        _grounder(assets, assets["vtgkit"], preset="qvhighlights")
    broken = assets["root"] / "broken" / "best.safetensors"
    broken.parent.mkdir()
    save_vtgkit_checkpoint(broken, "flashvtg", assets["config"], FlashVTG(assets["config"]).state_dict())
    record = json.loads(broken.with_suffix(".json").read_text())
    record["config"]["hidden_dim"] = 32  # weights of hidden 16 under a config of hidden 32
    broken.with_suffix(".json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="do not fit the FlashVTG config"):
        _grounder(assets, broken)
