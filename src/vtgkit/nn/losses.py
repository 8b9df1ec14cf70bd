"""Loss functions shared by R²-Tuning and FlashVTG: tensors and masks in, a reduced tensor out, no weights.

Formulas follow spec r2-tuning.md §6 (and flashvtg.md §4, which reuses them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, gamma: float = 2.0, alpha: float | None = None
) -> torch.Tensor:
    """Focal loss averaged over the valid points.

    spec §6.2, §15.6: the official configuration has no α (``alpha=None``) and divides by Σ mask, i.e. it averages
    over every valid point, positives and negatives alike.

    Args:
        logits: (...,) raw scores.
        targets: (...,) in [0, 1].
        mask: (...,) 1 valid / 0 padding (any numeric dtype).
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / mask.sum()


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ |pred − target| · mask / Σ mask (spec §6.3: mask repeated over both distance channels, so the divisor is
    2 × positives). No positive gives 0/0 = NaN, as the official code does."""
    mask = mask.to(pred.dtype)
    return ((pred - target).abs() * mask).sum() / mask.sum()


def dynamic_bce_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits against soft targets, summed with ``mask`` as weight and divided by Σ mask (spec §6.2,
    TVSum / YouTube Highlights)."""
    mask = mask.to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets, weight=mask, reduction="sum")
    return loss / mask.sum()


def sampled_nce_loss(
    video_emb: torch.Tensor,
    query_emb: torch.Tensor,
    video_mask: torch.Tensor,
    saliency: torch.Tensor,
    pos_clip: torch.Tensor,
    scale: torch.Tensor | float,
    row: bool = True,
    col: bool = True,
) -> torch.Tensor:
    """Contrastive saliency loss with one sampled positive clip per sample (spec §6.4, §15.7).

    S[b, t] = scale · cos(video_emb[b, t], query_emb[b]); clips more salient than the positive, and padded clips,
    are excluded. Row term: the positive against the other clips of its video. Column term: clip index p_b of
    every sample in the batch, each scored against its own query, with sample b as the positive.

    Args:
        video_emb: (B, T, D).
        query_emb: (B, 1, D).
        video_mask: (B, T) 1/0.
        saliency: (B, T) targets.
        pos_clip: (B,) index of the positive clip of each sample.
        scale: logit scale (already exponentiated and clamped).
    """
    batch_index = torch.arange(video_emb.size(0), device=video_emb.device)
    pos_score = saliency[batch_index, pos_clip].unsqueeze(-1)  # (B, 1)
    allowed = (saliency <= pos_score) & (video_mask > 0)
    sim = F.cosine_similarity(video_emb, query_emb, dim=-1) * scale  # (B, T)
    sim = sim + torch.where(allowed, 0.0, float("-inf"))
    loss = sim.new_zeros(())
    if row:
        loss = loss - F.log_softmax(sim, dim=1)[batch_index, pos_clip].mean()
    if col:
        # Only the B columns at the positive clips enter the loss, so take them before the softmax: the official code
        # normalises every column, and a clip position excluded in every sample (padding, or more salient than each
        # positive) is an all -inf column whose backward is NaN and poisons every gradient although the loss value is
        # finite. Same value, and the same gradient wherever the official one is finite.
        columns = sim.t()[pos_clip]  # (B, B): row b = clip p_b of every sample
        loss = loss - F.log_softmax(columns, dim=1)[batch_index, batch_index].mean()
    return loss


def info_nce_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows (spec §6.5).

    Both inputs are L2-normalised; logits = a·bᵀ · scale per leading index; row i of ``a`` matches row i of ``b``.
    Loss = ½ (CE over rows + CE over columns), each averaged over all rows of all problems.

    Args:
        a, b: (..., N, D); the leading dims index independent N×N problems.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = torch.matmul(a, b.transpose(-1, -2)) * scale  # (..., N, N)
    num = logits.size(-1)
    target = torch.arange(num, device=logits.device).repeat(logits.numel() // (num * num))
    loss_rows = F.cross_entropy(logits.reshape(-1, num), target)
    loss_cols = F.cross_entropy(logits.transpose(-1, -2).reshape(-1, num), target)
    return (loss_rows + loss_cols) / 2
