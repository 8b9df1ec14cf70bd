"""FlashVTG on its official benchmark layouts and R²-Tuning on TVSum / YouTube Highlights, through `vtgkit train`.

Each family: a tiny official-layout root (real annotation records, random features), a fixed batch whose loss
must be finite and fall under the recipe's optimiser, two epochs through the CLI, the files of the run, the
benchmark's metric keys in metrics.json, and the saved checkpoint through `vtgkit predict` (whose predictions,
scored by the official evaluator, must give metrics.json again).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from official_layouts import (
    TINY_FLASHVTG,
    TINY_R2TUNING,
    flashvtg_highlight_root,
    flashvtg_moment_root,
    r2tuning_highlight_root,
)

from vtgkit.cli.main import main
from vtgkit.errors import ConfigError
from vtgkit.evaluation import evaluate
from vtgkit.train.benchmark_data import training_data
from vtgkit.train.config import apply_overrides
from vtgkit.train.loop import Trainer, seed_everything
from vtgkit.train.recipes import get_recipe
from vtgkit.train.runner import build_model, load_split

QV_KEYS = {"MR-full-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-R1@0.3", "MR-full-mIoU",
           "HL-min-VeryGood-mAP", "HL-min-VeryGood-Hit1"}
MR_KEYS = {"MR-full-mAP", "MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU"}
# Dropout off for the fixed-batch check only, so that the loss curve reflects the optimiser alone.
NO_DROPOUT = {"flashvtg": {"dropout": 0.0, "input_dropout": 0.0, "dummy_encoder_dropout": 0.0},
              "r2tuning": {"adapter_dropout": 0.0, "drop_path": 0.0}}


def _overrides(model: str, extra: dict[str, Any] | None = None) -> list[str]:
    tiny = {**(TINY_FLASHVTG if model == "flashvtg" else TINY_R2TUNING), **(extra or {})}
    return [f"model_overrides.{key}={json.dumps(value)}" for key, value in tiny.items()]


def _train(recipe: str, root: Path, output: Path, *extra: str) -> dict[str, Any]:
    model = get_recipe(recipe).model
    args = ["train", recipe, f"data_root={root}", "epochs=2", "batch_size=2", "micro_batch_size=null",
            "eval_every_epochs=1", *extra, *_overrides(model), "--output", str(output), "--threads", "1",
            "--no-progress"]
    assert main(args) == 0
    for name in ("config.json", "last.pt", "best.pt", "log.jsonl", "metrics.json"):
        assert (output / name).is_file(), name
    records = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in records if record["kind"] == "eval"] == [1, 2]
    return json.loads((output / "metrics.json").read_text())


def _fixed_batch_losses(recipe: str, root: Path, output: Path, steps: int = 8, *extra: str) -> list[float]:
    """Total loss of ``steps`` recipe optimiser steps on one fixed batch of two training items."""
    model_name = get_recipe(recipe).model
    config = apply_overrides(get_recipe(recipe), [f"data_root={root}", "batch_size=2", "micro_batch_size=null",
                                                  *extra, *_overrides(model_name, NO_DROPOUT[model_name])])
    data = training_data(config, output)
    seed_everything(config.seed)
    model = build_model(config)
    items = data.source.build(load_split(data, data.train_file)[:2], True)
    batch = data.source.collate([items[0], items[1]])
    trainer = Trainer(model, config, items, data.source.collate, output / "fixed", progress_bar=False)
    losses = []
    for step in range(steps):
        values = trainer.train_step([batch])
        trainer.progress.global_step = step + 1
        losses.append(values["total"])
    return losses


def _assert_learns(losses: list[float]) -> None:
    assert all(math.isfinite(value) for value in losses), losses
    assert losses[-1] < losses[0], losses
    assert min(losses[-3:]) < min(losses[:3]), losses


def _predict(argv: list[str], output: Path) -> list[dict[str, Any]]:
    assert main(["predict", *argv, "--output", str(output), "--quiet"]) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ FlashVTG, MR
@pytest.mark.parametrize(("layout", "recipe", "keys"), [
    # 75-clip QVHighlights videos: ~10 s on 2 loaded cores.
    pytest.param("qvhighlights", "flashvtg-qvhighlights", QV_KEYS, marks=pytest.mark.slow),
    ("charades_sta", "flashvtg-charades", MR_KEYS),
    ("tacos", "flashvtg-tacos", MR_KEYS),
    pytest.param("qvhighlights_internvideo2", "flashvtg-qvhighlights_internvideo2", QV_KEYS, marks=pytest.mark.slow),
    pytest.param("charades_sta_internvideo2", "flashvtg-charades_internvideo2", MR_KEYS, marks=pytest.mark.slow),
])
def test_flashvtg_moment_recipe_trains_and_predicts(tmp_path: Path, layout: str, recipe: str,
                                                    keys: set[str]) -> None:
    torch.set_num_threads(1)
    root = tmp_path / "data"
    files = flashvtg_moment_root(root, layout, train=4, evaluate=2)
    _assert_learns(_fixed_batch_losses(recipe, root, tmp_path))

    metrics = _train(recipe, root, tmp_path / "run")
    assert keys <= set(metrics["brief"]), sorted(metrics["brief"])
    if not layout.startswith("qvhighlights"):
        assert not any(key.startswith("HL-") for key in metrics["brief"])  # MR only (spec flashvtg.md §6.6)

    # best.pt carries the official options: `vtgkit predict` rebuilds the model and finds the feature folders.
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    dset_names = {"qvhighlights": "hl", "qvhighlights_internvideo2": "qv_internvideo2", "charades_sta": "charadesSTA",
                  "charades_sta_internvideo2": "charadesSTA", "tacos": "tacos"}
    assert checkpoint["opt"]["dset_name"] == dset_names[layout]
    predictions = _predict(["--model", "flashvtg", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                            "--data-root", str(root), "--annotations", str(files["eval"]), "--no-nms"],
                           tmp_path / "predictions.jsonl")
    assert [p["qid"] for p in predictions] == [r["qid"] for r in files["records"][1]]
    if not layout.startswith("qvhighlights"):
        for prediction in predictions:
            del prediction["pred_saliency_scores"]
    ground_truth = [json.loads(line) for line in files["eval"].read_text().splitlines()]
    rescored = evaluate(get_recipe(recipe).dataset, predictions, ground_truth, protocol="flashvtg")
    assert rescored["brief"] == metrics["brief"]


# ------------------------------------------------------------------------------------------------ FlashVTG, HD
@pytest.mark.parametrize(("dataset", "recipe", "domain"), [
    ("tvsum", "flashvtg-tvsum_bk", "BK"),
    ("youtube_highlights", "flashvtg-youtube_dog", "dog"),
])
def test_flashvtg_highlight_recipe_trains_and_predicts(tmp_path: Path, dataset: str, recipe: str, domain: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    torch.set_num_threads(1)
    root = tmp_path / "data"
    files = flashvtg_highlight_root(root, dataset, domain, train=4)
    _assert_learns(_fixed_batch_losses(recipe, root, tmp_path))

    metrics = _train(recipe, root, tmp_path / "run")
    assert set(metrics) == {domain, "average"} and set(metrics["average"]) == {"mAP"}
    assert 0.0 <= metrics["average"]["mAP"] <= 1.0
    assert f"left out 1 records: other domain than {domain!r}" in caplog.text  # counted, not dropped silently

    predictions = _predict(["--model", "flashvtg", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                            "--data-root", str(root), "--annotations", str(files["eval"]), "--domain", domain],
                           tmp_path / "predictions.jsonl")
    assert [p["vid"] for p in predictions] == [r["vid"] for r in files["records"][1]]
    rescored = evaluate(dataset, predictions, files["eval"], protocol="flashvtg")
    assert rescored == metrics


# ------------------------------------------------------------------------------------------------ R²-Tuning, HD
@pytest.mark.parametrize(("dataset", "recipe", "domain"), [
    ("tvsum", "r2tuning-tvsum_bk", "BK"),
    ("youtube_highlights", "r2tuning-youtube_gym", "gymnastics"),
])
def test_r2tuning_highlight_recipe_trains_and_predicts(tmp_path: Path, dataset: str, recipe: str, domain: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    torch.set_num_threads(1)
    root = tmp_path / "data"
    files = r2tuning_highlight_root(root, dataset, domain, train=3)
    # warm-up off for this check: the recipe's 50-iteration warm-up starts at 0.001 x lr.
    _assert_learns(_fixed_batch_losses(recipe, root, tmp_path, 8, "warmup_iters=0"))

    metrics = _train(recipe, root, tmp_path / "run", "warmup_iters=2")
    assert set(metrics) == {domain, "average"} and set(metrics["average"]) == {"mAP"}
    assert "left out 1 records: listed in the split but not in the annotations" in caplog.text
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train_terms = {key for record in log if record["kind"] == "train" for key in record}
    assert {"loss_cls", "loss_sal"} <= train_terms and "loss_reg" not in train_terms  # saliency-only losses

    predictions = _predict(["--model", "r2tuning", "--dataset", dataset, "--checkpoint",
                            str(tmp_path / "run" / "best.safetensors"), "--data-root", str(root), "--annotations",
                            str(files["anno"]), "--domain", domain], tmp_path / "predictions.jsonl")
    assert [p["vid"] for p in predictions] == files["table"][domain]["val"]
    rescored = evaluate(dataset, predictions, files["anno"], splits=files["splits"])
    assert rescored == metrics


# ------------------------------------------------------------------------------------------------ errors, options
def test_charades_vgg_names_the_missing_glove_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "flashvtg-charades_vgg", f"data_root={tmp_path}", "--output", str(tmp_path / "run")])
    assert code != 0
    assert "GloVe 6B-300d" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="GloVe"):
        training_data(apply_overrides(get_recipe("flashvtg-charades_vgg"), [f"data_root={tmp_path}"]), tmp_path)


def test_feature_width_mismatch_is_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    flashvtg_highlight_root(root, "tvsum", "BK", train=2)
    config = apply_overrides(get_recipe("flashvtg-tvsum_bk"), [f"data_root={root}"])  # official widths 2818/512
    data = training_data(config, tmp_path)
    with pytest.raises(ConfigError, match="video width 14"):
        data.source.build(load_split(data, data.train_file), True)


def test_missing_annotation_file_names_the_key(tmp_path: Path) -> None:
    root = tmp_path / "data"
    flashvtg_highlight_root(root, "tvsum", "BK", train=2)
    config = apply_overrides(get_recipe("flashvtg-tvsum_bk"), [f"data_root={root}", "eval_annotations=nope.jsonl"])
    with pytest.raises(ConfigError, match="eval_annotations"):
        training_data(config, tmp_path)


def test_unknown_domain_lists_the_domains_of_the_file(tmp_path: Path) -> None:
    from vtgkit.errors import AnnotationError

    root = tmp_path / "data"
    flashvtg_highlight_root(root, "tvsum", "BK", train=2)
    config = apply_overrides(get_recipe("flashvtg-tvsum_bk"), [f"data_root={root}", "domain=zz"])
    data = training_data(config, tmp_path)
    with pytest.raises(AnnotationError, match="no record of domain 'ZZ'"):
        load_split(data, data.train_file)


@pytest.mark.parametrize("preset", ["qvhighlights", "qvhighlights_internvideo2", "charades_sta",
                                    "charades_sta_internvideo2", "tacos", "tvsum", "youtube_highlights"])
def test_checkpoint_options_rebuild_the_model_config(preset: str) -> None:
    from vtgkit.data.flashvtg_features import get_flashvtg_layout
    from vtgkit.models import create_config
    from vtgkit.models.flashvtg.config import config_from_options
    from vtgkit.train.flashvtg_options import official_options

    config = create_config("flashvtg", preset)
    options = json.loads(json.dumps(official_options(config, get_flashvtg_layout(preset))))  # JSON-only values
    assert config_from_options(options) == config
    assert options["v_feat_dirs"] == list(get_flashvtg_layout(preset).video_dirs)


def test_flashvtg_items_of_one_video_read_its_features_once() -> None:
    import numpy as np

    from vtgkit.data.flashvtg_batches import build_flashvtg_items
    from vtgkit.data.flashvtg_features import FlashVTGFeatureLayout
    from vtgkit.structures import GroundingSample

    class CountingReader:
        layout = FlashVTGFeatureLayout()

        def __init__(self) -> None:
            self.reads: list[str] = []

        def read_video(self, vid: str) -> np.ndarray:
            self.reads.append(vid)
            return np.ones((4, 5), dtype=np.float32)

        def read_query(self, qid: Any) -> np.ndarray:
            return np.ones((2, 3), dtype=np.float32)

    samples = [GroundingSample(qid=i, vid=vid, query="q", duration=8.0, windows=[(0.0, 4.0)])
               for i, vid in enumerate(["a", "b", "a", "a"])]
    reader = CountingReader()
    items = build_flashvtg_items(samples, reader, "windows", seed=0)  # type: ignore[arg-type]
    assert reader.reads == ["a", "b"]
    assert items[0].video is items[2].video and items[1].video is not items[0].video
