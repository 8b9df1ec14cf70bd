"""CLIP weight files: the OpenAI download registry (URL + sha256), a cache folder, and loaders for every format.

Formats read: OpenAI's TorchScript ``.pt`` (tensors only, never executed: :mod:`torchscript_archive`), a plain
``torch.save`` state dict (``weights_only=True``), open_clip safetensors (same key names as OpenAI) and Hugging Face
``transformers`` CLIP safetensors (converted by the key table below).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.features.clip_model import CLIP, build_clip
from vtgkit.features.torchscript_archive import is_torchscript_archive, read_torchscript_tensors
from vtgkit.features.weight_download import download_to

# OpenAI's published files; the sha256 is part of each URL (as in the openai `clip` package).
_OPENAI_BASE = "https://openaipublic.azureedge.net/clip/models"
CLIP_WEIGHTS: dict[str, tuple[str, str]] = {
    "ViT-B/32": ("ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
    "ViT-B/16": ("ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"),
    "ViT-L/14": ("ViT-L-14.pt", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"),
    "ViT-L/14@336px": ("ViT-L-14-336px.pt", "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"),
}
# The official R²-Tuning flag spells the last one "ViT-L/14-336px".
_ALIASES = {"ViT-L/14-336px": "ViT-L/14@336px"}


def weights_url(arch: str) -> tuple[str, str]:
    """(url, sha256) of OpenAI's weights for ``arch``."""
    arch = _ALIASES.get(arch, arch)
    if arch not in CLIP_WEIGHTS:
        raise ConfigError(f"unknown CLIP arch {arch!r}; known: {', '.join(CLIP_WEIGHTS)}")
    name, sha256 = CLIP_WEIGHTS[arch]
    return f"{_OPENAI_BASE}/{sha256}/{name}", sha256


def cache_dir() -> Path:
    """``$VTGKIT_CACHE/clip`` or ``~/.cache/vtgkit/clip``."""
    root = os.environ.get("VTGKIT_CACHE") or Path.home() / ".cache" / "vtgkit"
    return Path(root) / "clip"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_weights(arch: str, directory: Path | None = None) -> Path:
    """The cached file of ``arch``, downloaded (sha256-verified, atomically) when absent.

    Raises:
        CheckpointError: offline or failed download (naming the URL and where to place the file by hand), or a
            sha256 mismatch.
    """
    url, sha256 = weights_url(arch)
    directory = directory or cache_dir()
    target = directory / url.rsplit("/", 1)[1]
    if target.exists():
        if _sha256(target) != sha256:
            raise CheckpointError(f"{target}: sha256 differs from {sha256} (corrupt or partial file: delete it)")
        return target
    return download_to(url, target, sha256, what=f"CLIP {arch} weights",
                       manual_hint="e.g. --clip-weights /path/ViT-B-32.pt")


def _convert_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``CLIPModel`` keys → OpenAI keys (q/k/v projections concatenated, projections transposed)."""
    top = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
        "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
        "vision_model.post_layernorm.weight": "visual.ln_post.weight",
        "vision_model.post_layernorm.bias": "visual.ln_post.bias",
        "logit_scale": "logit_scale",
    }
    inner = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.t().contiguous()
        elif key == "visual_projection.weight":
            out["visual.proj"] = value.t().contiguous()
        elif ".encoder.layers." in key:
            tower, rest = key.split(".encoder.layers.")
            index, name = rest.split(".", 1)
            prefix = ("visual." if tower == "vision_model" else "") + f"transformer.resblocks.{index}."
            if name.startswith("self_attn.") and name.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                kind = name.rsplit(".", 1)[1]
                if name.startswith("self_attn.q_proj"):
                    parts = [state[key.replace("q_proj", p)] for p in ("q_proj", "k_proj", "v_proj")]
                    out[prefix + f"attn.in_proj_{kind}"] = torch.cat(parts)
                continue
            for old, new in inner.items():
                if name.startswith(old + "."):
                    out[prefix + new + name[len(old):]] = value
                    break
            else:
                raise CheckpointError(f"Hugging Face CLIP key {key!r} has no OpenAI counterpart")
        elif key.endswith("position_ids"):
            continue
        else:
            raise CheckpointError(f"Hugging Face CLIP key {key!r} has no OpenAI counterpart")
    return out


def read_clip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """OpenAI-named CLIP tensors from any supported file (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: CLIP weight file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: unreadable safetensors file: {error}") from error
    elif is_torchscript_archive(path):
        state = read_torchscript_tensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling errors come in many types
            raise CheckpointError(f"{path}: cannot read as a state dict with weights_only=True: {error}") from error
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    if any(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    if any(key.startswith("vision_model.") for key in state):
        state = _convert_transformers(state)
    return state


def load_clip(weights: str | Path, dtype: torch.dtype = torch.float32) -> CLIP:
    """A frozen CLIP from a file path or an OpenAI arch name (``ViT-B/32``; downloaded into the cache)."""
    candidate = Path(weights)
    if candidate.is_file():
        return build_clip(read_clip_state_dict(candidate), dtype)
    if str(weights) in CLIP_WEIGHTS or str(weights) in _ALIASES:
        return build_clip(read_clip_state_dict(download_weights(str(weights))), dtype)
    raise CheckpointError(f"CLIP weights {weights!s}: neither a file nor a known arch ({', '.join(CLIP_WEIGHTS)})")
