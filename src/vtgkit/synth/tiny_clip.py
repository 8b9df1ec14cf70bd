"""A tiny CLIP ViT with random, frozen weights: SynthVTG's feature extractor.

Same architecture and code as the real extractor (``vtgkit.features.clip_model``), only small: 64-px frames in
16-px patches give 17 tokens per frame (CLS + 4×4), width 64, 4 blocks per tower. Training cost grows with tokens
per frame (issue probe: 50 tokens stalled, 17 learned), so this keeps the full video → features → training path
quick on 2 cores. Weights follow OpenAI CLIP's initialisation scheme from a seed; the features module's
``build_clip`` loads them back from the safetensors file written next to the features.
"""

from __future__ import annotations

import torch
from torch import nn

from vtgkit.features.clip_model import CLIP, CLIPConfig

TINY_CLIP_ARCH = "ViT-Tiny/16"  # names the feature folders: clip_tiny16_{vid,txt}_k4
TINY_CLIP_CONFIG = CLIPConfig(
    embed_dim=64,
    image_resolution=64,
    vision_layers=4,
    vision_width=64,
    vision_patch_size=16,
    context_length=77,
    vocab_size=49408,  # the real BPE vocabulary, so the real tokenizer is used
    transformer_width=64,
    transformer_heads=1,  # width // 64, the OpenAI rule build_clip applies
    transformer_layers=4,
)


def build_tiny_clip(seed: int = 0, config: CLIPConfig = TINY_CLIP_CONFIG) -> CLIP:
    """A frozen eval-mode CLIP with random weights drawn (OpenAI's init scheme) from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    model = CLIP(config)

    def normal(parameter: torch.Tensor, std: float) -> None:
        with torch.no_grad():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)

    for tower, width, layers in ((model.visual.transformer, config.vision_width, config.vision_layers),
                                 (model.transformer, config.transformer_width, config.transformer_layers)):
        attn_std, proj_std, fc_std = width**-0.5, width**-0.5 * (2 * layers) ** -0.5, (2 * width) ** -0.5
        for block in tower.resblocks:
            normal(block.attn.in_proj_weight, attn_std)
            nn.init.zeros_(block.attn.in_proj_bias)
            normal(block.attn.out_proj.weight, proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            normal(block.mlp.c_fc.weight, fc_std)
            nn.init.zeros_(block.mlp.c_fc.bias)
            normal(block.mlp.c_proj.weight, proj_std)
            nn.init.zeros_(block.mlp.c_proj.bias)
    visual_scale = config.vision_width**-0.5
    fan_in = 3 * config.vision_patch_size**2
    normal(model.visual.conv1.weight, fan_in**-0.5)
    normal(model.visual.class_embedding, visual_scale)
    normal(model.visual.positional_embedding, visual_scale)
    normal(model.visual.proj, visual_scale)
    normal(model.token_embedding.weight, 0.02)
    normal(model.positional_embedding, 0.01)
    normal(model.text_projection, config.transformer_width**-0.5)
    with torch.no_grad():
        model.logit_scale.fill_(torch.tensor(1 / 0.07).log().item())
    model.eval()
    model.requires_grad_(False)
    return model
