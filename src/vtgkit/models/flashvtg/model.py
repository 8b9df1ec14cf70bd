"""FlashVTG: Feature Layering and Adaptive Score Handling Network for Video Temporal Grounding.

Paper: Cao et al., WACV 2025. Official code: github.com/Zhuo-Cao/FlashVTG at commit 25b9591 (reproduced as
described in the project spec ``flashvtg.md``; section numbers in comments refer to it). The official repository is
MIT-licensed (with parts from CG-DETR / Moment-DETR, MIT, and R²-Tuning, BSD-3-Clause, per its licence file as seen in
a public fork); the released checkpoints carry no separate licence statement there.

Letters: B batch, T clips (padded), L query tokens (padded), nd dummy tokens, D hidden size, N candidates
(Σ over pyramid levels of ⌊T / stride⌋).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vtgkit.models.flashvtg.blocks import (
    ConfidenceScorer,
    CrossAttentionEncoder,
    Encoder,
    TextPositionTable,
    Transformer,
    input_projection,
)
from vtgkit.models.flashvtg.config import FlashVTGConfig
from vtgkit.nn.heads import ConvHead
from vtgkit.nn.points import PointGenerator
from vtgkit.nn.pooling import AdaPooling
from vtgkit.nn.positional_encoding import masked_sinusoidal_encoding
from vtgkit.nn.pyramid import ConvPyramid
from vtgkit.structures import Batch, GroundingOutput


def video_identity(vid: str, dataset_name: str) -> str:
    """Identity used to tell real from false negatives (spec §3.13).

    QVHighlights (``hl``) vids are ``{youtube_id}_{start}_{end}``; the official code cuts before the second-to-last
    underscore so two segments of one YouTube video count as the same video. Other datasets use the full vid.
    """
    count = vid.count("_")
    if dataset_name != "hl" or count == 0:
        return vid
    # official find_nth(vid, "_", count - 1); n <= 1 finds the first underscore.
    position = -1
    for _ in range(max(count - 1, 1)):
        position = vid.find("_", position + 1)
    return vid[:position]


class FlashVTG(nn.Module):
    """FlashVTG on pre-extracted video features (+TEF) and text token features.

    ``forward(batch)`` returns a :class:`GroundingOutput`: in eval mode saliency (B, T) and boundaries (B, K, 3)
    [start_s, end_s, score] best first (K ≤ ``max_num_moment``); in training mode the tensors
    :class:`~vtgkit.models.flashvtg.loss.FlashVTGLoss` needs, in ``extras``.
    """

    def __init__(self, config: FlashVTGConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FlashVTGConfig()
        hidden = config.hidden_dim
        # Registration order follows the official state dict (direct parameters first, spec §9).
        self.dummy_rep_token = nn.Parameter(torch.randn(config.num_dummies, hidden))
        self.dummy_rep_pos = nn.Parameter(torch.randn(config.num_dummies, hidden))
        self.transformer = Transformer(
            hidden, config.num_heads, config.feedforward_dim, config.dropout, config.num_t2v_layers,
            config.num_encoder_layers,
        )
        self.txt_position_embed = TextPositionTable(config.text_position_rows, hidden, config.input_dropout)
        self.saliency_proj1 = nn.Linear(hidden, hidden)
        self.saliency_proj2 = nn.Linear(hidden, hidden)
        self.input_txt_proj = input_projection(config.query_dim, hidden, config.num_input_proj, config.input_dropout)
        self.input_vid_proj = input_projection(config.video_dim, hidden, config.num_input_proj, config.input_dropout)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.txtproj_encoder = Encoder(
            config.num_dummy_layers, hidden, config.num_heads, config.feedforward_dim, config.dummy_encoder_dropout
        )
        self.pyramid = ConvPyramid(hidden, config.strides)
        self.pooling = AdaPooling(hidden)
        scorer_args = (hidden, config.kernel_size, config.num_conv_layers, config.num_mlp_layers)
        self.conf_head = ConfidenceScorer(*scorer_args)
        self.class_head = ConfidenceScorer(*scorer_args)
        self.coef = nn.Parameter(torch.ones(len(config.strides)))
        self.coord_head = ConvHead(hidden, 2, kernel_size=3)
        self.generator = PointGenerator(config.strides, config.buffer_size)
        self.x = nn.Parameter(torch.tensor(0.5))  # ASR mixing weight of intra- vs inter-scale logits (spec §3.10)
        self._init_weights()

    def _init_weights(self) -> None:
        """Official initialisation (spec §2); only matters when training from scratch."""
        for parameter in self.transformer.parameters():
            if parameter.dim() > 1:
                nn.init.trunc_normal_(parameter, std=0.02)
        nn.init.normal_(self.token_type_embeddings.weight, std=0.02)
        for layer in self.transformer.t2v_encoder.layers:
            nn.init.zeros_(layer.self_attn.out_proj.bias)

    # ----------------------------------------------------------------------------------------------- encoding
    def encode_dummies(self, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Dummy-token encoder (spec §3.2): text (B, L, D) → dummy tokens (B, nd, D)."""
        batch, num_dummies = text.shape[0], self.config.num_dummies
        tokens = torch.cat([self.dummy_rep_token.expand(batch, -1, -1), text], dim=1)  # (B, nd + L, D)
        pos = torch.cat([self.dummy_rep_pos.expand(batch, -1, -1), torch.zeros_like(text)], dim=1)
        padding = torch.cat([text_mask.new_zeros(batch, num_dummies).bool(), ~text_mask.bool()], dim=1)
        memory = self.txtproj_encoder(tokens.transpose(0, 1), padding, pos.transpose(0, 1))  # (nd + L, B, D)
        return memory[:num_dummies].transpose(0, 1)

    def saliency_head(self, encoded: torch.Tensor) -> torch.Tensor:
        """Highlight scores (spec §3.6): encoded (B, T, D) → (B, T); the mean runs over padded clips too."""
        global_feature = self.saliency_proj2(encoded.mean(1)).unsqueeze(1)  # (B, 1, D)
        return (self.saliency_proj1(encoded) * global_feature).sum(-1) / math.sqrt(self.config.hidden_dim)

    def _attention_to_text(self, attention: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Attention mass each clip gives to real text tokens, clamped to [0, 1] (spec §3.6). Returns (B, T)."""
        mass = (attention[:, :, self.config.num_dummies:] * text_mask[:, None, :].to(attention.dtype)).sum(2)
        return mass.clamp(0, 1)

    def _transformer(
        self, video: torch.Tensor, video_pos: torch.Tensor, video_mask: torch.Tensor, dummies: torch.Tensor,
        text: torch.Tensor, text_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dummy_pos = self.dummy_rep_pos.expand(video.shape[0], -1, -1)
        return self.transformer(
            video, video_pos, video_mask, dummies, dummy_pos, text, text_mask, self.config.official_attention_mask
        )

    # ------------------------------------------------------------------------------------------------ heads
    def score_candidates(self, levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """ASR logits (B, N, 1) and distances (B, N, 2) in stride units for the pyramid levels (spec §3.9–3.10)."""
        intra = torch.cat([self.class_head(level) for level in levels], dim=1)  # per level
        inter = self.conf_head(torch.cat(levels, dim=1))  # once over the concatenation: the conv crosses levels
        logits = self.x * intra + (1 - self.x) * inter
        distances = torch.cat(
            [self.coord_head(level).exp() * self.coef[index] for index, level in enumerate(levels)], dim=1
        )
        return logits, distances

    def decode(self, points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
        """Candidate windows in seconds (spec §3.12): points (N, 4), distances (B, N, 2) → (B, N, 2)."""
        stride, position = points[:, 3, None], points[:, 0, None]
        boundary = torch.stack((-distances[..., 0], distances[..., 1]), dim=-1) * stride + position
        # spec §3.12: divided by the reciprocal of clip_len, as the official code does.
        return boundary / (1 / self.config.clip_len)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, batch: Batch) -> GroundingOutput:
        """Run the model on ``batch.video`` (B, T, video_dim) and ``batch.query`` (B, L, query_dim)."""
        video_mask = batch.video_mask.float()  # (B, T)
        text_mask = batch.query_mask.float()  # (B, L)
        video = self.input_vid_proj(batch.video.float()) + self.token_type_embeddings.weight[1]  # (B, T, D)
        text = self.input_txt_proj(batch.query.float()) + self.token_type_embeddings.weight[0]  # (B, L, D)
        video_pos = masked_sinusoidal_encoding(video_mask, self.config.hidden_dim)  # (B, T, D)
        dummies = self.encode_dummies(text, text_mask)  # (B, nd, D)
        encoded, attention = self._transformer(video, video_pos, video_mask, dummies, text, text_mask)
        saliency = self.saliency_head(encoded)  # (B, T)
        # spec §3.7: level 0 is ReLU(E) in place; a copy keeps E intact for the saliency head's backward pass.
        levels, level_masks = self.pyramid(encoded.clone(), video_mask)
        video_emb = levels[0]  # ReLU(E): also the video side of SampledNCE
        points = self.generator([level.shape[1] for level in levels])  # (N, 4)
        logits, distances = self.score_candidates(levels)
        extras = {
            "saliency_scores": saliency,
            "t2vattnvalues": self._attention_to_text(attention, text_mask),
            "out_class": logits,
            "out_coord": distances,
            "point": points,
        }
        if self.training:
            extras.update(
                video_emb=video_emb,
                query_emb=self.pooling(text, text_mask),
                video_msk=video_mask,
                pymid_msk=level_masks,
            )
            if self.config.use_negatives:
                extras.update(self._negative_pairs(batch, video, video_pos, video_mask, dummies, text, text_mask))
            return GroundingOutput(saliency=saliency, extras=extras)
        boundaries, boundary_mask = self._top_moments(points, logits, distances, level_masks)
        return GroundingOutput(saliency=saliency, boundaries=boundaries, boundary_mask=boundary_mask, extras=extras)

    def _top_moments(
        self, points: torch.Tensor, logits: torch.Tensor, distances: torch.Tensor, level_masks: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sort candidates by confidence and keep ``max_num_moment`` per item (spec §3.12).

        The official code only runs batch size 1. In a batch of unequal lengths, candidates whose clips are all
        padding are ranked last and flagged False in the returned mask (B, K).
        """
        scores = logits[..., 0].sigmoid()  # (B, N)
        windows = self.decode(points, distances)  # (B, N, 2)
        boundaries = torch.cat((windows, scores.unsqueeze(-1)), dim=-1)  # (B, N, 3)
        valid = torch.cat(level_masks, dim=1) > 0  # (B, N): a candidate is valid if any clip it covers is
        ragged = not bool(valid.all())
        ranking = scores.masked_fill(~valid, -1.0) if ragged else scores
        order = ranking.sort(dim=1, descending=True).indices[:, : self.config.max_num_moment]
        top = boundaries.gather(1, order[..., None].expand(-1, -1, 3))
        return top, (valid.gather(1, order) if ragged else None)

    def _negative_pairs(
        self, batch: Batch, video: torch.Tensor, video_pos: torch.Tensor, video_mask: torch.Tensor,
        dummies: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor | None]:
        """Each item against its neighbour's query (item (i+1) mod B) where the videos differ (spec §3.13)."""
        vids = batch.extras.get("vids") or [sample.vid for sample in batch.samples]
        if len(vids) != video.shape[0]:
            raise ValueError(
                f"FlashVTG negative pairs need one vid per item (Batch.extras['vids'] or Batch.samples); "
                f"got {len(vids)} for a batch of {video.shape[0]}"
            )
        identity = [video_identity(vid, self.config.dataset_name) for vid in vids]
        partner = identity[1:] + identity[:1]
        real = torch.tensor([a != b for a, b in zip(identity, partner, strict=True)], device=video.device)
        out: dict[str, torch.Tensor | None] = {"real_neg_mask": real, "saliency_scores_neg": None,
                                               "t2vattnvalues_neg": None}
        if not bool(real.any()):
            return out
        roll = lambda x: torch.roll(x, -1, dims=0)[real]  # noqa: E731 - partner of item i is item i+1
        neg_text_mask = roll(text_mask)
        encoded, attention = self._transformer(
            video[real], video_pos[real], video_mask[real], roll(dummies), roll(text), neg_text_mask
        )
        out["saliency_scores_neg"] = self.saliency_head(encoded)
        out["t2vattnvalues_neg"] = self._attention_to_text(attention, neg_text_mask)
        return out

    def compute_losses(self, output: GroundingOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Weighted loss terms plus ``"total"`` (spec §4); needs a training-mode ``output``."""
        from vtgkit.models.flashvtg.loss import FlashVTGLoss

        return FlashVTGLoss(self.config)(output, batch)


__all__ = ["FlashVTG", "CrossAttentionEncoder", "video_identity"]
