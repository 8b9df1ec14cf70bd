"""R²-Tuning: Efficient Image-to-Video Transfer Learning for Video Temporal Grounding (Liu et al., ECCV 2024).

Official implementation: https://github.com/yeliudev/R2-Tuning at commit 03fbcf68 (BSD-3-Clause licence; released
checkpoints under the same terms). Behaviour follows /work/shared/spec/r2-tuning.md; section numbers in comments
point there.

Letters: B batch, T clips, L query tokens, K CLIP layers, P tokens per frame, D hidden width (256), N points.

Inputs are cached CLIP features (``Batch.video`` (B, T, K, P, Dv), ``Batch.query`` (B, L, K, Dq), zero padding and
explicit masks, equivalent to the official +inf padding, spec §2.2–2.3).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vtgkit.models.r2tuning.blocks import R2Block, R2BlockOutput
from vtgkit.models.r2tuning.config import R2TuningConfig
from vtgkit.models.r2tuning.loss import R2TuningLoss
from vtgkit.nn.conv_inference import heads_fast, heads_supported, pyramid_fast
from vtgkit.nn.core_split import in_split_scope, split_scope
from vtgkit.nn.heads import ConvHead
from vtgkit.nn.points import PointGenerator
from vtgkit.nn.pooling import AdaPooling
from vtgkit.nn.pyramid import ConvPyramid, pyramid_level_lengths
from vtgkit.structures import Batch, GroundingOutput


class R2Tuning(nn.Module):
    """R² block on frozen CLIP tokens → temporal pyramid → shared class / boundary heads.

    Eval-mode batches: with ``config.eval_per_sample`` (default) each sample of a padded batch gives what it gives
    alone (the official code only supports batch size 1 at inference). Training (and ``official_padding=True``)
    reproduces the official padded semantics that the losses were computed with (spec §6.6).
    """

    def __init__(self, config: R2TuningConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or R2TuningConfig()
        dims = config.hidden_dims
        self.fast_inference = True  # eval + no autograd: use the folded / oneDNN forms (see R2Block.*_fast)
        self.fused_training = True  # with autograd: fused token MLP + folded key projection (R2Block.forward)
        self.coef = nn.Parameter(torch.ones(len(config.strides)))  # per-level multiplier of exp(coord head), §3.5
        self.adapter = R2Block(config)
        self.pyramid = ConvPyramid(dims, config.strides)
        self.generator = PointGenerator(config.strides, config.buffer_size)
        self.pooling = AdaPooling(dims)
        self.class_head = ConvHead(dims, 1, kernel_size=config.head_kernel_size)
        self.coord_head = ConvHead(dims, 2, kernel_size=config.head_kernel_size) if config.use_coord_head else None
        self.criterion = R2TuningLoss(config)
        self.adapter.reset_parameters()

    # ------------------------------------------------------------------ inputs
    def _check_batch(self, batch: Batch) -> None:
        config = self.config
        video, query = batch.video, batch.query
        if video.dim() != 5 or video.shape[3:] != (config.tokens_per_frame, config.video_dims):
            raise ValueError(
                f"R2Tuning expects batch.video of shape (B, T, K, {config.tokens_per_frame}, {config.video_dims}) "
                f"(cached CLIP {config.clip_arch} tokens); got {tuple(video.shape)}"
            )
        if query.dim() != 4 or query.size(-1) != config.query_dims:
            raise ValueError(f"R2Tuning expects batch.query of shape (B, L, K, {config.query_dims}); "
                             f"got {tuple(query.shape)}")
        if video.size(2) < config.num_layers or query.size(2) < config.num_layers:
            raise ValueError(f"R2Tuning uses the last {config.num_layers} CLIP layers but the batch stores "
                             f"{video.size(2)} video / {query.size(2)} query layers")
        if batch.video_mask.shape != video.shape[:2] or batch.query_mask.shape != query.shape[:2]:
            raise ValueError(
                f"mask shapes {tuple(batch.video_mask.shape)} / {tuple(batch.query_mask.shape)} do not match "
                f"video {tuple(video.shape[:2])} / query {tuple(query.shape[:2])}"
            )

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch, official_padding: bool | None = None) -> GroundingOutput:
        """Run the model on a batch of cached features.

        Args:
            batch: see the module docstring.
            official_padding: force (True) or disable (False) the official padded semantics; default: on in
                training mode, and in eval mode unless ``config.eval_per_sample``.

        Returns:
            GroundingOutput with saliency (B, T) (0 beyond each length), boundaries (B, N, 3) [start_s, end_s, score]
            best first (top ``max_num_moment`` per sample, before clamping / NMS; absent without a coord head),
            boundary_mask (B, N), and in ``extras`` what :meth:`compute_losses` needs.
        """
        self._check_batch(batch)
        config = self.config
        if official_padding is None:
            official_padding = self.training or not config.eval_per_sample
        video_mask = batch.video_mask
        query_mask = batch.query_mask
        batch_size, num_clips = video_mask.shape
        lengths = None if official_padding else [int(n) for n in video_mask.sum(dim=1).tolist()]
        fast = self.fast_inference and not self.training and not torch.is_grad_enabled()
        if fast and not in_split_scope():
            with split_scope() as split:  # the whole forward with one intra-op thread, the R² block split on two
                if split:
                    return self.forward(batch, official_padding)

        fused = self.fused_training and torch.is_grad_enabled() and not fast
        adapter_out = self.adapter(batch.video, batch.query, video_mask, query_mask, lengths, fast, fused)
        video_emb = adapter_out.video  # (B, T, D)
        # spec §3.2: video_emb is now ReLU'd in place. The GEMM forms (stride-2 convolutions as GEMMs on row pairs,
        # the heads once over all levels) serve inference and the fused training path alike: the many small
        # convolutions cost ~1.5× their GEMMs forward and backward (R²-Tuning B=8, T=75, one core: ~85 → ~59 ms).
        gemm = fast or fused
        pyramid = functools.partial(pyramid_fast, self.pyramid) if gemm else self.pyramid
        levels, level_masks = pyramid(video_emb, video_mask)
        padded_lengths = pyramid_level_lengths(num_clips, config.strides)
        if lengths is None:
            sample_level_lengths = [padded_lengths] * batch_size
        else:
            sample_level_lengths = [pyramid_level_lengths(n, config.strides) for n in lengths]
            level_masks = self._per_sample_level_masks(levels, sample_level_lengths, video_mask.dtype)
        points = self.generator(padded_lengths)  # (N, 4)
        with torch.autocast(device_type=video_emb.device.type, enabled=False):
            # spec §3.5: heads, pooling and everything after the pyramid run in float32 without autocast.
            # Per-sample semantics: the heads zero rows beyond each sample's level length, so their zero padding
            # matches a lone sample.
            head_masks = None if lengths is None else level_masks
            query_emb, layer_query_emb, out_class, out_coord = self._heads(adapter_out, levels, head_masks, query_mask,
                                                                           gemm)
        extras: dict[str, Any] = {
            "out_class": out_class,  # (B, N, 1) logits
            "out_coord": out_coord,  # (B, N, 2) distances in strides, or None
            "points": points,
            "point_mask": torch.cat(level_masks, dim=1),  # (B, N)
            "video_emb": video_emb,  # (B, T, D) ReLU(R² block output)
            "query_emb": query_emb,  # (B, 1, D)
            "layer_video_cls": adapter_out.layer_video_cls,
            "layer_query_emb": layer_query_emb,  # (K, B, 1, D)
            "adapter_query": adapter_out.query,  # (B, L, D)
            "level_lengths": sample_level_lengths,
        }
        with torch.no_grad():
            saliency, boundaries, boundary_mask = self._decode(
                extras, padded_lengths, sample_level_lengths, lengths or [num_clips] * batch_size, batch.fps
            )
        return GroundingOutput(saliency=saliency, boundaries=boundaries, boundary_mask=boundary_mask, extras=extras)

    def _heads(
        self,
        adapter_out: R2BlockOutput,
        levels: list[torch.Tensor],
        level_masks: list[torch.Tensor] | None,
        query_mask: torch.Tensor,
        gemm: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # The K layers' poolings as one batch of K·B rows (each row's softmax and sum are unchanged).
        num_layers = len(adapter_out.layer_query)
        layer_query = torch.stack(adapter_out.layer_query).float().flatten(0, 1)  # (K·B, L, D)
        layer_query_emb = self.pooling(layer_query, query_mask.repeat(num_layers, 1)).unflatten(0, (num_layers, -1))
        if adapter_out.query is adapter_out.layer_query[-1]:  # the last step's tokens: that pooling is done
            query_emb = layer_query_emb[-1]  # (B, 1, D)
        else:
            query_emb = self.pooling(adapter_out.query.float(), query_mask)
        heads = [self.class_head] + ([] if self.coord_head is None else [self.coord_head])
        if gemm and all(heads_supported(head) for head in heads):  # every level in one GEMM per conv
            outputs = heads_fast(heads, [level.float() for level in levels], level_masks)
            if self.coord_head is None:
                return query_emb, layer_query_emb, outputs[0], None
            coef = torch.cat([self.coef[index].expand(level.size(1)) for index, level in enumerate(levels)])
            return query_emb, layer_query_emb, outputs[0], outputs[1].exp() * coef[:, None]
        masks = level_masks if level_masks is not None else [None] * len(levels)
        out_class = torch.cat(
            [self.class_head(level.float(), mask) for level, mask in zip(levels, masks, strict=True)], dim=1
        )  # (B, N, 1)
        out_coord = None
        if self.coord_head is not None:
            out_coord = torch.cat(
                [self.coord_head(level.float(), mask).exp() * self.coef[index]
                 for index, (level, mask) in enumerate(zip(levels, masks, strict=True))], dim=1
            )  # (B, N, 2)
        return query_emb, layer_query_emb, out_class, out_coord

    @staticmethod
    def _per_sample_level_masks(
        levels: list[torch.Tensor], sample_level_lengths: list[list[int]], dtype: torch.dtype
    ) -> list[torch.Tensor]:
        masks = []
        for index, level in enumerate(levels):
            valid = torch.tensor([lens[index] for lens in sample_level_lengths], device=level.device)  # (B,)
            positions = torch.arange(level.size(1), device=level.device)
            masks.append((positions[None, :] < valid[:, None]).to(dtype))  # (B, n_l)
        return masks

    # ------------------------------------------------------------------ decoding (spec §4)
    def _decode(
        self,
        extras: dict[str, Any],
        padded_lengths: list[int],
        sample_level_lengths: list[list[int]],
        lengths: list[int],
        fps: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        scores = extras["out_class"][..., 0].sigmoid()  # (B, N)
        cosine = F.cosine_similarity(extras["video_emb"], extras["query_emb"], dim=-1)  # (B, T)
        offsets = [0]
        for n in padded_lengths[:-1]:
            offsets.append(offsets[-1] + n)
        saliency = scores.new_zeros(cosine.shape)
        rows: list[torch.Tensor] = []
        for b, (length, level_lengths) in enumerate(zip(lengths, sample_level_lengths, strict=True)):
            if length == 0:
                rows.append(scores.new_zeros(0, 3))
                continue
            index = torch.cat([torch.arange(offsets[level], offsets[level] + n, device=scores.device)
                               for level, n in enumerate(level_lengths) if n > 0])  # this sample's points
            saliency[b, :length] = self._map_saliency(scores[b], offsets, level_lengths, length, cosine[b, :length])
            if extras["out_coord"] is not None:
                rows.append(self._boundaries(scores[b, index], extras["out_coord"][b, index],
                                             extras["points"][index], float(fps[b])))
        if extras["out_coord"] is None:
            return saliency, None, None
        num_rows = max(r.size(0) for r in rows)
        boundaries = scores.new_zeros(len(rows), num_rows, 3)
        boundary_mask = torch.zeros(len(rows), num_rows, dtype=torch.bool, device=scores.device)
        for b, r in enumerate(rows):
            boundaries[b, : r.size(0)] = r
            boundary_mask[b, : r.size(0)] = True
        return saliency, boundaries, boundary_mask

    def _map_saliency(
        self, scores: torch.Tensor, offsets: list[int], level_lengths: list[int], length: int, cosine: torch.Tensor
    ) -> torch.Tensor:
        """Per-clip saliency of one sample (spec §4): every level's scores repeat-interleaved ⌊T / n_l⌋ times,
        padded with the last value, maximum over levels; × cosine when merge_cls_sal. Returns (T,)."""
        mapped = []
        for offset, n in zip(offsets, level_lengths, strict=True):
            if n == 0:
                continue
            repeated = scores[offset: offset + n].repeat_interleave(length // n)
            if repeated.numel() < length:
                repeated = torch.cat((repeated, repeated[-1:].expand(length - repeated.numel())))
            mapped.append(repeated)
        saliency = torch.stack(mapped).amax(dim=0)
        return saliency * cosine if self.config.merge_cls_sal else saliency

    def _boundaries(self, scores: torch.Tensor, coord: torch.Tensor, points: torch.Tensor, fps: float) -> torch.Tensor:
        """Rows [start_s, end_s, score] sorted by score (torch.sort, descending, spec §4, §13), top max_num_moment.
        No clamping: starts may be negative and ends beyond the video."""
        position, stride = points[:, 0], points[:, 3]
        start = (position - coord[:, 0] * stride) / fps
        end = (position + coord[:, 1] * stride) / fps
        rows = torch.stack((start, end, scores), dim=1)  # (N, 3)
        _, order = scores.sort(descending=True)
        return rows[order[: self.config.max_num_moment]]

    # ------------------------------------------------------------------ losses
    def compute_losses(self, output: GroundingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted loss terms and ``total`` (spec §6) from a forward's extras and the batch targets."""
        return self.criterion(output.extras, batch)

    def num_learnable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
