"""A tiny model and dataset with the agreed grounding interface, for testing the training loop on its own.

The model has dropout (so exact resume must restore RNG state) and a batch-level loss term (so equivalence
tests see cross-sample coupling like the real contrastive losses). ``poison`` items produce a non-finite loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from vtgkit.structures import Batch, GroundingOutput

DIM = 6
CLIPS = 5
TOKENS = 3


class TinyGroundingModel(nn.Module):
    def __init__(self, dropout: float = 0.3, batch_term: bool = True) -> None:
        super().__init__()
        self.batch_term = batch_term
        self.video_proj = nn.Linear(DIM, 8)
        self.query_proj = nn.Linear(DIM, 8)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8, 1)

    def forward(self, batch: Batch) -> GroundingOutput:
        video = self.dropout(torch.relu(self.video_proj(batch.video.float())))  # (B, T, 8)
        mask = batch.query_mask.float().unsqueeze(-1)
        query = (self.query_proj(batch.query.float()) * mask).sum(1) / mask.sum(1)  # (B, 8)
        fused = video * query.unsqueeze(1)
        saliency = self.head(fused).squeeze(-1)  # (B, T)
        return GroundingOutput(saliency=saliency, extras={"query": query})

    def compute_losses(self, output: GroundingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        saliency = output.saliency.float()
        loss_sal = ((saliency - batch.saliency) ** 2 * batch.video_mask).sum() / batch.video_mask.sum()
        query = output.extras["query"].float()
        # Batch-level term: every sample's query against the batch mean (couples samples like InfoNCE does).
        loss_batch = 0.1 * (query - query.mean(0, keepdim=True)).pow(2).mean() * float(self.batch_term)
        if "poison" in batch.extras and bool(batch.extras["poison"].any()):
            loss_sal = loss_sal * torch.tensor(float("nan"))
        return {"loss_sal": loss_sal, "loss_batch": loss_batch, "total": loss_sal + loss_batch}


class TinyDataset(Dataset):
    """``size`` random items; item ``i`` is poisoned when ``i`` is in ``poison``."""

    def __init__(self, size: int = 24, poison: frozenset[int] = frozenset(), seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.video = torch.randn(size, CLIPS, DIM, generator=generator)
        self.query = torch.randn(size, TOKENS, DIM, generator=generator)
        self.saliency = torch.rand(size, CLIPS, generator=generator)
        self.poison = poison

    def __len__(self) -> int:
        return self.video.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # A random draw per item, like the official positive-clip draw: must be reproducible across resume.
        noise = 0.01 * torch.randn(CLIPS)
        return {
            "video": self.video[index],
            "query": self.query[index],
            "saliency": self.saliency[index] + noise,
            "poison": torch.tensor(index in self.poison),
        }


def collate_tiny(items: list[dict[str, torch.Tensor]]) -> Batch:
    size = len(items)
    return Batch(
        video=torch.stack([item["video"] for item in items]),
        query=torch.stack([item["query"] for item in items]),
        video_mask=torch.ones(size, CLIPS),
        query_mask=torch.ones(size, TOKENS),
        fps=torch.ones(size),
        saliency=torch.stack([item["saliency"] for item in items]),
        extras={"poison": torch.stack([item["poison"] for item in items])},
    )


def fake_evaluate(model: nn.Module) -> dict[str, float]:
    """A deterministic 'metric' from the weights, so best-checkpoint logic can be tested."""
    return {"MR-full-mAP": float(-sum(p.float().pow(2).sum() for p in model.parameters()))}
