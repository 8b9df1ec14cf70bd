"""FlashVTG training criterion: five weighted terms (spec flashvtg.md §4).

``loss_cls`` (focal), ``loss_reg`` (L1) and ``loss_sal`` (SampledNCE) are R²-Tuning's BundleLoss terms and come
from :mod:`vtgkit.nn`; ``loss_label`` (clip-aware score loss) and ``loss_saliency`` (inherited from CG-DETR) are
FlashVTG's own and live here.

Batch fields used: ``boundaries`` (B, W, 2) seconds with +inf padding rows, ``fps`` (B,), ``saliency`` (B, T) =
``saliency_all_labels``, ``video_mask``; ``extras["saliency_pos_labels"]`` and ``extras["saliency_neg_labels"]``
(B, P) clip indices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.models.flashvtg.config import FlashVTGConfig
from vtgkit.nn.losses import dynamic_bce_loss, masked_l1_loss, sampled_nce_loss, sigmoid_focal_loss
from vtgkit.nn.targets import assign_batch_targets
from vtgkit.structures import Batch, GroundingOutput

RANK_TAU = 0.5  # temperature of the rank-contrastive term (CG-DETR)
NCE_TEMPERATURE, NCE_MAX_SCALE = 0.07, 100.0


def rank_contrastive_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CG-DETR rank-contrastive saliency loss (spec §4.6), reductions over dim 1.

    Args:
        scores: (R, T') clip scores; labels: (R, T') saliency labels; mask: (R, T') 1 valid / 0 padding.
            The official single-false-negative branch passes (1, R, T') tensors, so the "row" reductions act on a
            singleton axis; this function reproduces that when given such tensors (spec §4.6 step 3).
    """
    scores = mask * scores + (1.0 - mask) * -1e3
    total = scores.new_zeros(())
    for rank in range(1, 12):
        keep = ~(labels > 100)  # the official "drop" mask never triggers for labels <= 12
        positive = labels >= rank
        if not bool(positive.any()):
            continue
        row_has_positive = positive.sum(dim=1) > 0
        current = scores * keep / RANK_TAU + ~keep * -1e3
        logits = current - current.max(dim=1, keepdim=True)[0]
        log_prob = logits - torch.log(logits.exp().sum(1, keepdim=True) + 1e-6)
        mean_log_prob = (positive * log_prob * mask).sum(1) / (positive.sum(1) + 1e-6)
        total = total + (-mean_log_prob * row_has_positive).mean()
    return total / 12


def margin_loss(scores: torch.Tensor, pos_idx: torch.Tensor, neg_idx: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge between positive and negative clip pairs: Σ max(0, δ + s_neg − s_pos) / (B·P) · 2 (spec §4.6)."""
    rows = torch.arange(scores.shape[0], device=scores.device)[:, None]
    pos, neg = scores[rows, pos_idx], scores[rows, neg_idx]  # (B, P)
    return torch.clamp(margin + neg - pos, min=0).sum() / (pos.shape[0] * pos.shape[1]) * 2


def negative_pair_loss(probabilities: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean_b Σ_t −log(1 − p) · mask: pushes a video's scores for another video's query towards 0."""
    return (-torch.log(1.0 - probabilities) * mask).sum(dim=1).mean()


def clip_aware_score_loss(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """MSE between min–max normalised labels and stride-1 logits, both normalised over the whole batch tensor,
    padding included (spec §4.5).

    Args:
        labels: (B, T) saliency labels; logits: (B, N, 1) candidate logits (the first T are the stride-1 level).
    """
    scores = logits[:, : labels.shape[1], 0]

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return (x - x.min()) / (x.max() - x.min())

    return F.mse_loss(normalise(labels), normalise(scores))


def _false_negative_rank(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, false: torch.Tensor):
    if int(false.sum()) == 1:
        # spec §4.6 step 3: with one false negative the official tensors carry an extra leading axis.
        return rank_contrastive_loss(scores[false][None], labels[false][None], mask[false][None])
    return rank_contrastive_loss(scores[false], labels[false], mask[false])


class FlashVTGLoss(nn.Module):
    """Weights the five FlashVTG terms from the config; ``forward`` returns weighted terms plus ``"total"``."""

    def __init__(self, config: FlashVTGConfig) -> None:
        super().__init__()
        self.config = config
        # float32 exp(log(1/0.07)) clamped, as the official buffer (spec §4.4)
        self.nce_scale = float(torch.tensor([math.log(1 / NCE_TEMPERATURE)]).exp().clamp(max=NCE_MAX_SCALE))

    @property
    def weights(self) -> dict[str, float]:
        c = self.config
        weights = {"loss_cls": c.loss_cls_weight, "loss_reg": c.loss_reg_weight, "loss_sal": c.loss_sal_weight,
                   "loss_saliency": c.loss_saliency_weight, "loss_label": c.loss_label_weight}
        if c.highlight_only:
            del weights["loss_reg"]  # spec §4.7: HD configs have no regression loss
        return weights

    def forward(self, output: GroundingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        terms = self.terms(output, batch)
        weighted = {key: value * self.weights[key] for key, value in terms.items()}
        weighted["total"] = sum(weighted.values())
        return weighted

    def terms(self, output: GroundingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """The unweighted terms (the values the official SetCriterion logs)."""
        extras = output.extras
        if "video_emb" not in extras:
            raise ValueError("FlashVTG losses need a training-mode forward (model.train()) output")
        for field in ("saliency", "boundaries"):
            if getattr(batch, field) is None and not (field == "boundaries" and self.config.highlight_only):
                raise ValueError(f"FlashVTG losses need Batch.{field}")
        for key in ("saliency_pos_labels", "saliency_neg_labels"):
            if key not in batch.extras:
                raise ValueError(f"FlashVTG losses need Batch.extras[{key!r}] (B, pairs) clip indices")
        labels = batch.saliency.float()  # (B, T)
        video_mask = extras["video_msk"]
        logits = extras["out_class"]  # (B, N, 1)
        pos_idx = batch.extras["saliency_pos_labels"].long()
        terms: dict[str, torch.Tensor] = {}
        if self.config.highlight_only:
            terms["loss_cls"] = dynamic_bce_loss(logits[..., 0], labels, video_mask)
        else:
            level_mask = torch.cat(extras["pymid_msk"], dim=1)  # (B, N)
            cls_target, reg_target = assign_batch_targets(
                extras["point"], batch.boundaries.float(), batch.fps.float(), self.config.sample_radius
            )
            terms["loss_cls"] = sigmoid_focal_loss(logits[..., 0], cls_target, level_mask)
            terms["loss_reg"] = masked_l1_loss(
                extras["out_coord"], reg_target, cls_target.unsqueeze(-1).repeat(1, 1, 2)
            )
        terms["loss_sal"] = sampled_nce_loss(
            extras["video_emb"], extras["query_emb"], video_mask, labels, pos_idx[:, 0], self.nce_scale,
            row=True, col=not self.config.highlight_only,
        )
        terms["loss_saliency"] = self.saliency_loss(extras, labels, video_mask, batch)
        terms["loss_label"] = clip_aware_score_loss(labels, logits)
        return terms

    def saliency_loss(
        self, extras: dict, labels: torch.Tensor, mask: torch.Tensor, batch: Batch
    ) -> torch.Tensor:
        """CG-DETR's saliency composite on the saliency scores and on the text-attention mass (spec §4.6)."""
        scores, attention = extras["saliency_scores"], extras["t2vattnvalues"]
        pos_idx = batch.extras["saliency_pos_labels"].long()
        neg_idx = batch.extras["saliency_neg_labels"].long()
        mask = mask.to(scores.dtype)
        margin = self.config.saliency_margin
        bce = F.binary_cross_entropy(attention.reshape(-1), labels.clamp(0, 1).reshape(-1))
        neg_weight = 0.0 if self.config.dataset_name == "youtube_uni" else 1.0  # spec §4.6 step 4
        scores_neg = extras.get("saliency_scores_neg")
        if scores_neg is None:
            main = margin_loss(scores, pos_idx, neg_idx, margin) + rank_contrastive_loss(scores, labels, mask)
            attn = (rank_contrastive_loss(attention, labels, mask) + bce
                    + margin_loss(attention, pos_idx, neg_idx, margin))
            return main + self.config.attention_loss_weight * attn
        real = extras["real_neg_mask"].bool()
        attention_neg = extras["t2vattnvalues_neg"]
        real_mask = mask[real]
        pair_mask = real_mask.repeat(1, 2)
        pair_labels = torch.cat([labels[real], torch.zeros_like(labels)[real]], dim=1)
        rank = rank_contrastive_loss(torch.cat([scores[real], scores_neg], dim=1), pair_labels, pair_mask)
        false = ~real
        if bool(false.any()):
            rank = rank + _false_negative_rank(scores, labels, mask, false)
        neg = negative_pair_loss(torch.sigmoid(scores_neg), real_mask)
        main = margin_loss(scores, pos_idx, neg_idx, margin) + rank + neg * neg_weight
        # spec §4.6 step 5: the official false-negative term on the attention is added to the already-used `rank`
        # variable, so it has no effect and is not computed here.
        rank_attn = rank_contrastive_loss(torch.cat([attention[real], attention_neg], dim=1), pair_labels, pair_mask)
        neg_attn = negative_pair_loss(attention_neg, real_mask)
        attn = rank_attn + bce + neg_attn * neg_weight + margin_loss(attention, pos_idx, neg_idx, margin)
        return main + self.config.attention_loss_weight * attn
