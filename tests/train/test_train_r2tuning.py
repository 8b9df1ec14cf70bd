"""The real R²-Tuning model (tiny dimensions) through the data layer's collation and the training loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vtgkit.data import GroundingItem, collate_grounding
from vtgkit.models.checkpoint_io import load_vtgkit_checkpoint
from vtgkit.structures import GroundingSample
from vtgkit.train.config import TrainConfig
from vtgkit.train.loop import Trainer

TINY = {"video_dims": 12, "query_dims": 10, "tokens_per_frame": 5, "num_layers": 2, "hidden_dims": 16,
        "num_heads": 4}


class RandomGroundingItems(torch.utils.data.Dataset):
    """Items in the R²-Tuning cached-feature layout with one window and saliency on it."""

    def __init__(self, size: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.items = []
        for index in range(size):
            clips, tokens = 6 + index % 3, 3 + index % 2
            start = index % 3
            saliency = torch.zeros(clips)
            saliency[start : start + 3] = 1.0
            sample = GroundingSample(qid=index, vid=f"v{index}", query="q", duration=2.0 * clips,
                                     windows=[(2.0 * start, 2.0 * (start + 3))])
            self.items.append(GroundingItem(
                sample=sample,
                video=torch.randn(clips, 2, 5, 12, generator=generator).half(),
                query=torch.randn(tokens, 2, 10, generator=generator).half(),
                fps=0.5,
                boundaries=torch.tensor([[2.0 * start, 2.0 * (start + 3)]]),
                saliency=saliency,
                pos_clip=start + 1,
            ))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> GroundingItem:
        return self.items[index]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_r2tuning_trains_and_exports_a_predict_checkpoint(tmp_path: Path, precision: str) -> None:
    from vtgkit.models import create_model

    torch.manual_seed(0)
    model = create_model("r2tuning", "qvhighlights", **TINY)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    config = TrainConfig(recipe="tiny-r2", model="r2tuning", epochs=2, batch_size=4, micro_batch_size=2, lr=1e-3,
                         warmup_iters=1, precision=precision, log_every_steps=1)
    trainer = Trainer(model, config, RandomGroundingItems(), collate_grounding, tmp_path, progress_bar=False)
    result = trainer.fit()
    assert result.global_step == 4 and result.skipped_steps == 0
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    terms = {"loss_cls", "loss_reg", "loss_sal", "loss_video_cal", "loss_layer_cal", "total"}
    assert terms <= set(records[0])
    changed = [key for key, value in model.state_dict().items() if not torch.equal(value, before[key])]
    assert changed, "no parameter moved"
    name, model_config, state_dict = load_vtgkit_checkpoint(tmp_path / "last.safetensors")
    assert name == "r2tuning" and model_config["hidden_dims"] == 16
    assert all(torch.equal(state_dict[key], value) for key, value in model.state_dict().items())
