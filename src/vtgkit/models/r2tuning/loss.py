"""R²-Tuning training criterion (spec r2-tuning.md §6): weights the shared loss functions from the config."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vtgkit.models.r2tuning.config import R2TuningConfig
from vtgkit.nn.losses import dynamic_bce_loss, info_nce_loss, masked_l1_loss, sampled_nce_loss, sigmoid_focal_loss
from vtgkit.nn.targets import assign_batch_targets
from vtgkit.structures import Batch


class R2TuningLoss(nn.Module):
    """Returns the weighted terms ``loss_cls``, ``loss_reg``, ``loss_sal``, ``loss_video_cal``, ``loss_layer_cal``
    (the official log keys; a term with weight 0 is left out) and their sum ``total``.

    ``saliency_log_scale`` is the official persistent buffer ``loss._loss_sal.scale`` = ln(1 / 0.07) (spec §6.4).
    """

    def __init__(self, config: R2TuningConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("saliency_log_scale", torch.tensor([config.saliency_log_scale], dtype=torch.float32))

    def targets(self, extras: dict[str, Any], batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Point targets (spec §6.1). Returns cls_target (B, N), reg_target (B, N, 2)."""
        if batch.boundaries is None:
            raise ValueError("R2TuningLoss needs batch.boundaries (B, W, 2) seconds for the point targets")
        return assign_batch_targets(
            extras["points"], batch.boundaries.float(), batch.fps.float(), self.config.sample_radius
        )

    def forward(self, extras: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        """Args:
            extras: ``GroundingOutput.extras`` of the training forward: out_class (B, N, 1), out_coord (B, N, 2) or
                None, points (N, 4), point_mask (B, N), video_emb (B, T, D), query_emb (B, 1, D),
                layer_video_cls K × (B, T, D), layer_query_emb (K, B, 1, D).
            batch: needs boundaries (focal loss), saliency (B, T) and pos_clip (B, 1).
        """
        config = self.config
        if batch.saliency is None or batch.pos_clip is None:
            raise ValueError("R2TuningLoss needs batch.saliency (B, T) and batch.pos_clip (B, 1)")
        losses: dict[str, torch.Tensor] = {}
        logits = extras["out_class"][..., 0]  # (B, N)
        point_mask = extras["point_mask"]
        saliency = batch.saliency.float()
        if config.loss_cls == "focal":
            cls_target, reg_target = self.targets(extras, batch)
            losses["loss_cls"] = config.loss_cls_weight * sigmoid_focal_loss(logits, cls_target, point_mask)
            if config.loss_reg_weight > 0 and extras["out_coord"] is not None:
                reg_mask = cls_target.unsqueeze(-1).repeat(1, 1, 2)  # spec §6.3: divisor 2 × positives
                losses["loss_reg"] = config.loss_reg_weight * masked_l1_loss(extras["out_coord"], reg_target, reg_mask)
        else:
            # spec §6.2: TVSum / YouTube use the saliency vector itself as soft targets (strides (1,): N = T).
            losses["loss_cls"] = config.loss_cls_weight * dynamic_bce_loss(logits, saliency, point_mask)

        pos_clip = batch.pos_clip.reshape(-1).long()  # (B,)
        scale = self.saliency_log_scale.exp().clamp(max=config.max_scale)
        if config.loss_sal_weight > 0:
            losses["loss_sal"] = config.loss_sal_weight * sampled_nce_loss(
                extras["video_emb"], extras["query_emb"], batch.video_mask, saliency, pos_clip, scale,
                row="row" in config.loss_sal_directions, col="col" in config.loss_sal_directions,
            )
        if config.loss_video_cal_weight > 0 or config.loss_layer_cal_weight > 0:
            batch_index = torch.arange(pos_clip.numel(), device=pos_clip.device)
            # spec §6.5, §15.8: mapped CLS token at the positive clip vs the pooled mapped query, per layer.
            video_cal = torch.stack([cls[batch_index, pos_clip] for cls in extras["layer_video_cls"]])  # (K, B, D)
            query_cal = extras["layer_query_emb"][:, :, 0]  # (K, B, D)
            if config.loss_video_cal_weight > 0:
                losses["loss_video_cal"] = config.loss_video_cal_weight * info_nce_loss(video_cal, query_cal, scale)
            if config.loss_layer_cal_weight > 0:
                losses["loss_layer_cal"] = config.loss_layer_cal_weight * info_nce_loss(
                    video_cal.transpose(0, 1), query_cal.transpose(0, 1), scale
                )
        losses["total"] = torch.stack(list(losses.values())).sum()
        return losses
