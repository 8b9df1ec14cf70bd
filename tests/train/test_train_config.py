"""TrainConfig overrides, recipes, learning-rate schedules, epoch plans and atomic checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vtgkit.atomic_files import torch_save_atomic
from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.train import checkpointing
from vtgkit.train.config import TrainConfig, apply_overrides
from vtgkit.train.epoch_plan import plan_epoch
from vtgkit.train.model_selection import BestTracker, select_metric
from vtgkit.train.recipes import RECIPES, get_recipe
from vtgkit.train.schedule import LearningRateSchedule


def test_overrides_are_typed_and_checked() -> None:
    config = apply_overrides(get_recipe("r2tuning-qvhighlights"),
                             ["epochs=3", "lr=1e-3", "lr_milestones=[1, 2]", "micro_batch_size=null",
                              "precision=bf16", "model_overrides.adapter_dropout=0.3"])
    assert (config.epochs, config.lr, config.lr_milestones) == (3, 1e-3, (1, 2))
    assert config.micro_batch_size is None and config.precision == "bf16"
    assert config.model_overrides == {"adapter_dropout": 0.3}
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(config, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(config, ["epochs=1.5"])
    with pytest.raises(ConfigError, match="expected one of"):
        apply_overrides(config, ["precision=fp8"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(config, ["epochs"])
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert "lr_milestones" in config.format()


def test_recipes_cover_every_official_script() -> None:
    r2 = [name for name in RECIPES if name.startswith("r2tuning-")]
    assert len(r2) == 4 + 6 + 10
    qv = get_recipe("r2tuning-qvhighlights")
    assert (qv.batch_size, qv.epochs, qv.lr, qv.lr_milestones, qv.warmup_iters, qv.repeat_train) == (
        128, 30, 5e-4, (20,), 500, 4)
    assert (qv.weight_decay, qv.grad_clip, qv.lr_gamma, qv.warmup_ratio, qv.min_video_len) == (1e-4, 35.0, 0.1,
                                                                                               0.001, 5.0)
    assert get_recipe("r2tuning-tvsum_bk").schedule == "constant"
    flash = get_recipe("flashvtg-tacos")
    assert (flash.batch_size, flash.lr, flash.epochs, flash.lr_drop, flash.eval_every_epochs) == (32, 2e-4, 150, 70,
                                                                                                  3)
    assert flash.best_metric == "MR-full-R1@0.3" and flash.grad_clip == 0.1
    assert get_recipe("flashvtg-youtube_surfing").drop_last
    with pytest.raises(ConfigError, match="unknown recipe"):
        get_recipe("r2tuning-nope")


def test_r2tuning_recipes_agree_with_the_model_presets() -> None:
    training = pytest.importorskip("vtgkit.models.r2tuning.config").TRAINING_PRESETS
    for name, preset in training.items():
        recipe = get_recipe(f"r2tuning-{name}")
        assert (recipe.batch_size, recipe.epochs, recipe.lr, recipe.lr_milestones, recipe.warmup_iters) == (
            preset.batch_size, preset.epochs, preset.lr, preset.lr_milestones, preset.warmup_iters), name
        assert recipe.repeat_train == preset.train_repeat and recipe.grad_clip == preset.grad_clip_norm, name


def test_r2tuning_schedule_warmup_and_steps() -> None:
    config = TrainConfig(lr=1.0, warmup_iters=10, warmup_ratio=0.001, lr_milestones=(2, 4), lr_gamma=0.1)
    schedule = LearningRateSchedule(config)
    assert schedule.value(0, 0) == pytest.approx(0.001)
    assert schedule.value(5, 0) == pytest.approx(1 - 0.999 * 0.5)
    assert schedule.value(10, 0) == 1.0
    assert schedule.value(100, 2) == pytest.approx(0.1)
    assert schedule.value(100, 5) == pytest.approx(0.01)
    constant = LearningRateSchedule(TrainConfig(lr=1.0, schedule="constant", warmup_iters=0))
    assert constant.value(0, 99) == 1.0


def test_flashvtg_schedule_uses_the_loss_as_epoch() -> None:
    config = TrainConfig(lr=1.0, schedule="flashvtg_step", lr_drop=2, lr_gamma=0.5, flashvtg_loss_as_epoch=True,
                         warmup_iters=0)
    schedule = LearningRateSchedule(config)
    assert schedule.value(0, 0) == 1.0
    schedule.end_epoch(4.5)  # floor(4.5 / 2) = 2 halvings, whatever the epoch
    assert schedule.value(0, 1) == 0.25
    schedule.end_epoch(math.nan)  # a skipped last step keeps the previous value
    assert schedule.value(0, 2) == 0.25
    per_epoch = LearningRateSchedule(TrainConfig(lr=1.0, schedule="flashvtg_step", lr_drop=2, lr_gamma=0.5))
    assert [per_epoch.value(0, epoch) for epoch in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_epoch_plan_shards_cover_the_epoch_once() -> None:
    plans = [plan_epoch(10, 4, 1, seed=3, epoch=1, world_size=2, rank=rank) for rank in (0, 1)]
    assert [len(plan) for plan in plans] == [3, 3]
    seen = [index for plan in plans for step in plan.steps for micro in step for index in micro]
    assert sorted(seen) == list(range(10))  # every sample once, none twice
    assert seen != list(range(10))  # shuffled
    # 11 samples: the last global batch (3) is padded to 4 so both processes get 2 (DistributedSampler rule).
    padded = [plan_epoch(11, 4, None, seed=3, epoch=1, world_size=2, rank=rank) for rank in (0, 1)]
    assert [len(micro) for plan in padded for micro in plan.steps[-1]] == [2, 2]
    assert {i for plan in padded for step in plan.steps for micro in step for i in micro} == set(range(11))
    single = plan_epoch(10, 4, 2, seed=3, epoch=1)
    assert [[len(micro) for micro in step] for step in single.steps] == [[2, 2], [2, 2], [2]]
    assert plan_epoch(10, 4, 2, seed=3, epoch=1).steps == single.steps
    assert plan_epoch(10, 4, 2, seed=3, epoch=2).steps != single.steps
    assert len(plan_epoch(10, 4, None, seed=0, epoch=0, drop_last=True)) == 2
    with pytest.raises(ConfigError, match="divisible"):
        plan_epoch(10, 6, 4, seed=0, epoch=0)


def test_select_metric_and_best_tracker() -> None:
    assert select_metric({"a": 10.0, "b": 20.0}, "a+b") == 15.0
    with pytest.raises(ConfigError, match="reported"):
        select_metric({"a": 1.0}, "c")
    tracker = BestTracker()
    assert tracker.update(1.0, 1) and not tracker.update(1.0, 2) and not tracker.update(math.nan, 3)
    assert tracker.update(2.0, 4) and tracker.epoch == 4 and tracker.evals_without_improvement == 0


def test_atomic_save_keeps_the_previous_file_when_writing_fails(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    torch_save_atomic({"format": checkpointing.FORMAT, "value": torch.ones(2)}, path)

    def broken_save(obj: object, stream: object) -> None:
        stream.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        torch_save_atomic({"format": checkpointing.FORMAT, "value": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(checkpointing.load_checkpoint(path)["value"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    path.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="last.pt"):
        checkpointing.load_checkpoint(path)


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    state = checkpointing.capture_rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)
    checkpointing.restore_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
