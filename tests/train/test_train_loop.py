"""Training loop: exact resume, non-finite-step guard, bf16 autocast, best/last checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_grounding import TinyDataset, TinyGroundingModel, collate_tiny, fake_evaluate

from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.train.checkpointing import load_checkpoint
from vtgkit.train.config import TrainConfig
from vtgkit.train.loop import Trainer


def _config(**values: object) -> TrainConfig:
    base = TrainConfig(
        recipe="tiny", model="tiny", epochs=3, batch_size=8, micro_batch_size=4, lr=1e-2, lr_milestones=(2,),
        warmup_iters=2, grad_clip=1.0, seed=7, deterministic=True, log_every_steps=1, best_metric="MR-full-mAP",
    )
    return TrainConfig(**{**base.__dict__, **values})


def _train(output: Path, config: TrainConfig, resume: bool = False, dataset: TinyDataset | None = None) -> Trainer:
    torch.manual_seed(123)  # the same initial weights for every run
    trainer = Trainer(TinyGroundingModel(), config, dataset or TinyDataset(), collate_tiny, output,
                      evaluate_fn=fake_evaluate, progress_bar=False)
    trainer.fit(resume=resume)
    return trainer


def _assert_same_state(first: Trainer, second: Trainer) -> None:
    for (name, a), (_, b) in zip(first.raw_model.state_dict().items(), second.raw_model.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), f"weights differ at {name}"
    state_a, state_b = first.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    for key in state_a:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[key][name], state_b[key][name]), f"optimizer {name} differs"


@pytest.mark.parametrize("stop_at", [4, 3])  # mid-epoch (epoch 2, step 1 of 3) and an epoch boundary
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, stop_at: int) -> None:
    uninterrupted = _train(tmp_path / "full", _config())
    _train(tmp_path / "split", _config(max_steps=stop_at))
    assert load_checkpoint(tmp_path / "split" / "last.pt")["progress"]["global_step"] == stop_at
    resumed = _train(tmp_path / "split", _config(), resume=True)
    assert resumed.progress.global_step == uninterrupted.progress.global_step == 9
    _assert_same_state(uninterrupted, resumed)
    # Sanity: training moved the weights, so equality above is not trivial.
    torch.manual_seed(123)
    initial = TinyGroundingModel().state_dict()
    assert not torch.equal(initial["head.weight"], resumed.raw_model.state_dict()["head.weight"])


def test_resume_with_workers_matches_single_process_loading(tmp_path: Path) -> None:
    reference = _train(tmp_path / "ref", _config(epochs=1))
    _train(tmp_path / "workers", _config(epochs=1, max_steps=1, num_workers=2))
    resumed = _train(tmp_path / "workers", _config(epochs=1, num_workers=2), resume=True)
    _assert_same_state(reference, resumed)


def test_non_finite_step_is_skipped_counted_and_logged(tmp_path: Path) -> None:
    dataset = TinyDataset(poison=frozenset({5}))
    trainer = _train(tmp_path, _config(), dataset=dataset)
    # Item 5 is in exactly one step per epoch.
    assert trainer.progress.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in trainer.raw_model.parameters())
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    skipped = [record for record in records if record["kind"] == "skipped_step"]
    assert len(skipped) == 3
    assert skipped[0]["total"] == "nan"
    assert records[-1]["kind"] == "eval"


def test_skipped_step_leaves_weights_and_optimizer_untouched(tmp_path: Path) -> None:
    dataset = TinyDataset(size=8, poison=frozenset(range(8)))
    torch.manual_seed(123)
    model = TinyGroundingModel()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    trainer = Trainer(model, _config(epochs=1), dataset, collate_tiny, tmp_path, progress_bar=False)
    trainer.fit()
    assert trainer.progress.skipped_steps == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert trainer.optimizer.state_dict()["state"] == {}


@pytest.mark.parametrize("grad_clip", [0.05, 100.0])  # the norm is above / below the limit
def test_update_matches_clip_grad_norm_and_plain_adamw(tmp_path: Path, grad_clip: float) -> None:
    # The guarded update (norm, conditional rescale, fused AdamW) against the textbook sequence.
    torch.manual_seed(123)
    model = TinyGroundingModel()
    reference = TinyGroundingModel()
    reference.load_state_dict(model.state_dict())
    config = _config(grad_clip=grad_clip)
    trainer = Trainer(model, config, TinyDataset(), collate_tiny, tmp_path, progress_bar=False)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=config.lr, betas=config.betas, eps=config.eps,
                                  weight_decay=config.weight_decay, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            p.grad = torch.randn(p.shape, generator=generator)
            q.grad = p.grad.clone()
        norm, stepped = trainer._guarded_update(1.0)
        expected_norm = torch.nn.utils.clip_grad_norm_(list(reference.parameters()), grad_clip)
        optimizer.step()
        assert stepped and norm == pytest.approx(float(expected_norm), rel=1e-6)
        assert (norm > grad_clip) == (grad_clip < 1)
        for p, q in zip(model.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_trains_with_finite_losses(tmp_path: Path) -> None:
    trainer = _train(tmp_path, _config(precision="bf16", epochs=1))
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    totals = [record["total"] for record in records if record["kind"] == "train"]
    assert len(totals) == 3 and all(isinstance(value, float) for value in totals)
    assert trainer.progress.skipped_steps == 0
    assert all(p.dtype == torch.float32 for p in trainer.raw_model.parameters())


def test_fp16_on_cpu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fp16"):
        Trainer(TinyGroundingModel(), _config(precision="fp16"), TinyDataset(), collate_tiny, tmp_path)


def test_run_writes_config_last_and_best(tmp_path: Path) -> None:
    trainer = _train(tmp_path, _config())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == trainer.config
    best = load_checkpoint(tmp_path / "best.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert "optimizer" not in best and "optimizer" in last
    assert best["best"]["epoch"] == trainer.best.epoch
    assert last["progress"]["epoch"] == 3
    with pytest.raises(CheckpointError, match="weights only"):
        Trainer(TinyGroundingModel(), _config(), TinyDataset(), collate_tiny, tmp_path).fit(resume=tmp_path / "best.pt")


def test_resume_refuses_a_changed_batch_size(tmp_path: Path) -> None:
    _train(tmp_path, _config(max_steps=2))
    with pytest.raises(ConfigError, match="batch_size"):
        _train(tmp_path, _config(batch_size=4), resume=True)


def test_tensorboard_event_files_mirror_the_logged_values(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    _train(tmp_path, _config(epochs=1, tensorboard=True))
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    assert {"train/total", "train/lr", "eval/MR-full-mAP"} <= set(accumulator.Tags()["scalars"])
    assert len(accumulator.Scalars("train/total")) == 3
