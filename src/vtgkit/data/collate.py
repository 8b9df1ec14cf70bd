"""Collation of ``GroundingItem``s into a ``Batch`` with the official R²-Tuning semantics (spec r2-tuning.md §2.2).

The official collate pads video/query rows with +inf and derives the masks from finiteness; here padded rows are
zeros and the masks are explicit, which the model treats identically (§2.3 replaces non-finite entries by 0).
``to_official_layout`` renders a batch in the official flat +inf-padded form, e.g. to compare checksums.
"""

from __future__ import annotations

import torch

from vtgkit.data.grounding_dataset import GroundingItem, describe
from vtgkit.errors import FeatureError
from vtgkit.structures import Batch


def _pad_rows(tensors: list[torch.Tensor], value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors of shape (n_i, ...) into (B, max n, ...) padded with ``value``; mask (B, max n) long."""
    length = max(int(t.shape[0]) for t in tensors)
    padded = tensors[0].new_full((len(tensors), length, *tensors[0].shape[1:]), value)
    mask = torch.zeros(len(tensors), length, dtype=torch.long)
    for row, tensor in enumerate(tensors):
        padded[row, : tensor.shape[0]] = tensor
        mask[row, : tensor.shape[0]] = 1
    return padded, mask


def _check_same_layout(items: list[GroundingItem], name: str) -> None:
    first = getattr(items[0], name)
    for item in items[1:]:
        tensor = getattr(item, name)
        if tensor.shape[1:] != first.shape[1:] or tensor.dtype != first.dtype:
            raise FeatureError(
                f"cannot batch {describe(item.sample)} with {describe(items[0].sample)}: {name} features have "
                f"per-step shape {tuple(tensor.shape[1:])} {tensor.dtype} vs {tuple(first.shape[1:])} {first.dtype} "
                "(mixed feature caches?)")


def _all_or_none(items: list[GroundingItem], name: str) -> bool:
    present = [getattr(item, name) is not None for item in items]
    if any(present) and not all(present):
        missing = [describe(item.sample) for item, has in zip(items, present, strict=True) if not has]
        raise ValueError(f"cannot batch items with and without '{name}' targets; missing for {', '.join(missing)}")
    return all(present)


def collate_grounding(items: list[GroundingItem]) -> Batch:
    """Official collation into the R²-Tuning batch layout.

    Returns:
        Batch with video (B, T, K, P, Dv) and query (B, L, K, Dq) in the stored dtype, zero-padded; video_mask (B, T)
        and query_mask (B, L) long 1/0; fps (B,) float32; boundaries (B, W, 2) seconds padded with +inf rows;
        saliency (B, T) float32 padded with 0; pos_clip (B, 1) long. Targets absent from every item are None.
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    _check_same_layout(items, "video")
    _check_same_layout(items, "query")
    video, video_mask = _pad_rows([item.video for item in items], 0.0)  # (B, T, K, P, Dv)
    query, query_mask = _pad_rows([item.query for item in items], 0.0)  # (B, L, K, Dq)
    boundaries = saliency = pos_clip = None
    if _all_or_none(items, "boundaries"):
        boundaries, _ = _pad_rows([item.boundaries for item in items], float("inf"))  # (B, W, 2)
    if _all_or_none(items, "saliency"):
        saliency, _ = _pad_rows([item.saliency for item in items], 0.0)  # (B, T)
    if _all_or_none(items, "pos_clip"):
        pos_clip = torch.tensor([[item.pos_clip] for item in items], dtype=torch.long)  # (B, 1)
    return Batch(
        video=video,
        query=query,
        video_mask=video_mask,
        query_mask=query_mask,
        fps=torch.tensor([item.fps for item in items], dtype=torch.float32),
        boundaries=boundaries,
        saliency=saliency,
        pos_clip=pos_clip,
        samples=[item.sample for item in items],
    )


def to_official_layout(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's features as the official collate produces them: flattened per step and +inf-padded.

    Returns:
        video (B, T, K·P·Dv) and query (B, L, K·Dq) in the stored dtype, padding rows +inf.
    """
    video = batch.video.flatten(2).clone()  # (B, T, K*P*Dv)
    query = batch.query.flatten(2).clone()  # (B, L, K*Dq)
    video[batch.video_mask == 0] = float("inf")
    query[batch.query_mask == 0] = float("inf")
    return video, query
