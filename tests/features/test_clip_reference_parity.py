"""vtgkit's CLIP and tokenizer against the reference ``clip`` package (PyPI ``openai-clip``) on random weights.

The package's ``__init__`` imports torchvision and pkg_resources, which do not import beside this torch, so the
tests load its ``model.py`` and ``simple_tokenizer.py`` straight from the installed files (neither imports
torchvision). Install it without dependencies: ``pip install --no-deps openai-clip==1.0.1``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from vtgkit.features.clip_model import CLIPConfig, build_clip
from vtgkit.features.tokenizer import CLIPTokenizer

TOLERANCE = 1e-5


def _reference_module(name: str) -> ModuleType:
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("reference package `clip` (pip install --no-deps openai-clip) is not installed")
    path = Path(spec.submodule_search_locations[0]) / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"reference file {path} not found")
    module_spec = importlib.util.spec_from_file_location(f"_reference_clip_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _reference_model(config: CLIPConfig, seed: int) -> torch.nn.Module:
    reference = _reference_module("model")
    model = reference.CLIP(config.embed_dim, config.image_resolution, config.vision_layers, config.vision_width,
                           config.vision_patch_size, config.context_length, config.vocab_size,
                           config.transformer_width, config.transformer_heads, config.transformer_layers)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every parameter random, LayerNorm weights around 1
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1 + 0.2 * noise if ".ln_" in name or name.startswith("ln_") else 0.05 * noise)
    return model.eval()


def _reference_hidden_states(blocks: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[input, block 1 .. N] of a sequence-first resblock stack, as (B, N+1, L, D)."""
    states = [x]
    for block in blocks:
        states.append(block(states[-1]))
    return torch.stack([state.permute(1, 0, 2) for state in states], dim=1)


@pytest.mark.parametrize(
    "config",
    [
        CLIPConfig(embed_dim=32, image_resolution=64, vision_layers=3, vision_width=128, vision_patch_size=16,
                   context_length=77, vocab_size=5000, transformer_width=64, transformer_heads=1,
                   transformer_layers=2),
        CLIPConfig(embed_dim=24, image_resolution=56, vision_layers=2, vision_width=64, vision_patch_size=14,
                   context_length=20, vocab_size=1000, transformer_width=128, transformer_heads=2,
                   transformer_layers=3),
    ],
    ids=["patch16", "patch14"],
)
def test_clip_matches_reference_package(config: CLIPConfig) -> None:
    reference = _reference_model(config, seed=3)
    ours = build_clip(reference.state_dict())
    assert ours.config == config
    images = torch.randn(3, 3, config.image_resolution, config.image_resolution)
    tokens = torch.randint(1, config.vocab_size - 2, (2, config.context_length))
    tokens[0, 7], tokens[0, 8:] = config.vocab_size - 1, 0  # EOT (highest id) then padding
    tokens[1, -1] = config.vocab_size - 1
    with torch.no_grad():
        visual = reference.visual
        x = visual.conv1(images).flatten(2).permute(0, 2, 1)
        cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
        expected_image_layers = _reference_hidden_states(visual.transformer.resblocks, x.permute(1, 0, 2))
        t = (reference.token_embedding(tokens) + reference.positional_embedding).permute(1, 0, 2)
        expected_text_layers = _reference_hidden_states(reference.transformer.resblocks, t)
        depth_v, depth_t = config.vision_layers + 1, config.transformer_layers + 1
        checks = {
            "image layers": (ours.encode_image_layers(images, depth_v), expected_image_layers),
            "image last 2": (ours.encode_image_layers(images, 2), expected_image_layers[:, -2:]),
            "image embedding": (ours.encode_image(images), reference.encode_image(images)),
            "text layers": (ours.encode_text_layers(tokens, depth_t), expected_text_layers),
            "text embedding": (ours.encode_text(tokens), reference.encode_text(tokens)),
        }
    for name, (got, want) in checks.items():
        assert got.shape == want.shape, name
        assert (got - want).abs().max().item() <= TOLERANCE, name


def test_tokenizer_matches_reference_package() -> None:
    reference = _reference_module("simple_tokenizer").SimpleTokenizer()
    ours = CLIPTokenizer()
    texts = ["A person opens the fridge.", "  MULTIPLE   spaces\tand\nnewlines &amp; HTML &lt;b&gt;  ",
             "Un café à Zürich, 東京タワー 🎬 straße!", "What's up?! -- it's 3.14% @home #42", "", "ALL CAPS",
             "naïve façade Ærøskøbing can't won't I'll we'd they're", "x" * 300]
    for text in texts:
        assert ours.encode(text) == reference.encode(text), text
