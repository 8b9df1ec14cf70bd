"""CLIP weight files: TorchScript archives read without running code, safetensors, HF naming, download errors."""

from __future__ import annotations

import io
import pickle
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tests.features.conftest import TINY_CLIP, random_clip_state_dict

from vtgkit.errors import CheckpointError
from vtgkit.features import clip_weights
from vtgkit.features.clip_model import build_clip
from vtgkit.features.clip_weights import load_clip, read_clip_state_dict
from vtgkit.features.torchscript_archive import read_torchscript_tensors


def _images() -> torch.Tensor:
    return torch.randn(2, 3, TINY_CLIP.image_resolution, TINY_CLIP.image_resolution)


def test_torchscript_archive_of_a_traced_model_is_read_without_executing(tmp_path: Path) -> None:
    model = build_clip(random_clip_state_dict(TINY_CLIP))
    traced = torch.jit.trace(model.visual.ln_pre, torch.randn(1, 4, TINY_CLIP.vision_width))
    path = tmp_path / "ln.pt"
    torch.jit.save(traced, str(path))
    tensors = read_torchscript_tensors(path)
    assert set(tensors) == {"weight", "bias"}
    assert torch.equal(tensors["weight"], model.visual.ln_pre.weight)
    assert tensors["weight"].dtype == torch.float32  # the oracle test covers OpenAI's fp16 archives


def _archive_with_pickle(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", payload)
        archive.writestr("model/code/__torch__/m.py", "")
    return path


def test_torchscript_archive_with_foreign_global_is_refused(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("executed",))

    path = _archive_with_pickle(tmp_path / "evil.pt", pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(CheckpointError, match=r"__builtin__\.print.*not accept"):
        read_torchscript_tensors(path)


def test_truncated_archive_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    with pytest.raises(CheckpointError, match="cut.pt"):
        read_clip_state_dict(path)


def _reference_outputs(state: dict[str, torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(1)
    return build_clip(state).encode_image_layers(_images(), 2)


def test_torch_save_and_safetensors_files_load_the_same_model(tmp_path: Path) -> None:
    state = random_clip_state_dict(TINY_CLIP)
    expected = _reference_outputs(state)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "open_clip.safetensors"))
    for name in ("wrapped.pt", "open_clip.safetensors"):
        torch.manual_seed(1)
        got = load_clip(tmp_path / name).encode_image_layers(_images(), 2)
        assert torch.equal(got, expected), name


def _to_transformers_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``CLIPModel`` naming written out independently of the converter under test."""
    out = {"logit_scale": state["logit_scale"],
           "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
           "text_model.embeddings.position_ids": torch.arange(TINY_CLIP.context_length)[None],
           "text_model.final_layer_norm.weight": state["ln_final.weight"],
           "text_model.final_layer_norm.bias": state["ln_final.bias"],
           "text_projection.weight": state["text_projection"].t(),
           "visual_projection.weight": state["visual.proj"].t(),
           "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
           "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
           "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
           "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
           "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
           "vision_model.post_layernorm.bias": state["visual.ln_post.bias"]}
    for ours, theirs, layers in (("visual.transformer", "vision_model.encoder", TINY_CLIP.vision_layers),
                                 ("transformer", "text_model.encoder", TINY_CLIP.transformer_layers)):
        for i in range(layers):
            src, dst = f"{ours}.resblocks.{i}.", f"{theirs}.layers.{i}."
            for kind in ("weight", "bias"):
                q, k, v = state[f"{src}attn.in_proj_{kind}"].chunk(3)
                out |= {f"{dst}self_attn.q_proj.{kind}": q, f"{dst}self_attn.k_proj.{kind}": k,
                        f"{dst}self_attn.v_proj.{kind}": v,
                        f"{dst}self_attn.out_proj.{kind}": state[f"{src}attn.out_proj.{kind}"],
                        f"{dst}layer_norm1.{kind}": state[f"{src}ln_1.{kind}"],
                        f"{dst}layer_norm2.{kind}": state[f"{src}ln_2.{kind}"],
                        f"{dst}mlp.fc1.{kind}": state[f"{src}mlp.c_fc.{kind}"],
                        f"{dst}mlp.fc2.{kind}": state[f"{src}mlp.c_proj.{kind}"]}
    return {k: v.contiguous() for k, v in out.items()}


def test_transformers_safetensors_are_converted(tmp_path: Path) -> None:
    state = random_clip_state_dict(TINY_CLIP)
    save_file(_to_transformers_names(state), str(tmp_path / "model.safetensors"))
    converted = read_clip_state_dict(tmp_path / "model.safetensors")
    assert set(converted) == set(state)
    for key, value in state.items():
        assert torch.equal(converted[key], value), key


def test_wrong_layout_names_missing_keys(tmp_path: Path) -> None:
    state = random_clip_state_dict(TINY_CLIP)
    del state["visual.ln_post.bias"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="visual.ln_post.bias"):
        load_clip(tmp_path / "broken.pt")


def test_offline_download_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> io.BytesIO:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path))
    url, sha256 = clip_weights.weights_url("ViT-B/32")
    assert sha256 in url and url.endswith("ViT-B-32.pt")
    with pytest.raises(CheckpointError, match="cannot download CLIP ViT-B/32.*--clip-weights"):
        load_clip("ViT-B/32")
    assert list((tmp_path / "clip").iterdir()) == []  # no partial download left behind


def test_cached_file_with_wrong_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VTGKIT_CACHE", str(tmp_path))
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "ViT-B-16.pt").write_bytes(b"not the weights")
    with pytest.raises(CheckpointError, match="sha256"):
        load_clip("ViT-B/16")
