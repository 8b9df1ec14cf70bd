"""SlowFast weight files: the download registry, a cache folder, and loaders for the released formats.

Formats (detected from the file's bytes, not its suffix: PySlowFast also names torch files ``.pkl``):

* ``torch.save`` files (zip or legacy) — PySlowFast ``.pyth`` checkpoints ``{"model_state": ...}`` or pytorchvideo hub
  files with the same wrapper, or a bare state dict; read with ``torch.load(weights_only=True)``.
* Caffe2 pickles ``{"blobs": {name: ndarray}}`` (``SLOWFAST_8x8_R50.pkl``, what HERO's extractor and hence the
  released QVHighlights features used); read with :func:`vtgkit.safe_pickle.load_numpy_pickle` (numpy only).

Either is mapped onto PySlowFast's names through :mod:`vtgkit.features.slowfast.key_table`; missing keys, unknown keys
and shape mismatches raise :class:`CheckpointError` naming the file and the keys.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vtgkit.errors import CheckpointError
from vtgkit.features.slowfast.key_table import (
    caffe2_table,
    is_ignored_caffe2_blob,
    is_ignored_torch_key,
    pytorchvideo_table,
)
from vtgkit.features.slowfast.model import SlowFast, SlowFastConfig
from vtgkit.features.weight_download import download_to
from vtgkit.safe_pickle import load_numpy_pickle

# name -> (url, sha256). The model zoos publish no checksums: None means the download cannot be verified (the file's
# name and size are recorded in the extraction manifest's settings instead).
SLOWFAST_WEIGHTS: dict[str, tuple[str, str | None]] = {
    # Caffe2 Kinetics-400 weights, the file HERO_Video_Feature_Extractor's README downloads
    "SLOWFAST_8x8_R50.pkl": ("https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl",
                             None),
    # pytorchvideo's PySlowFast-trained Kinetics-400 model (torch format, pytorchvideo names)
    "SLOWFAST_8x8_R50.pyth": ("https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
                              None),
}
DEFAULT_WEIGHTS = "SLOWFAST_8x8_R50.pkl"
# torch's legacy (non-zip) format starts with a pickled magic number (protocol 2, LONG1 of 10 bytes)
_TORCH_LEGACY_HEADER = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def cache_dir() -> Path:
    """``$VTGKIT_CACHE/slowfast`` or ``~/.cache/vtgkit/slowfast``."""
    root = os.environ.get("VTGKIT_CACHE") or Path.home() / ".cache" / "vtgkit"
    return Path(root) / "slowfast"


def download_weights(name: str = DEFAULT_WEIGHTS, directory: Path | None = None) -> Path:
    """The cached file ``name`` (see :data:`SLOWFAST_WEIGHTS`), downloaded atomically when absent.

    Raises:
        CheckpointError: unknown name, offline or failed download (naming the URL and where to put the file by hand),
            or a sha256 mismatch where the sha256 is known.
    """
    if name not in SLOWFAST_WEIGHTS:
        raise CheckpointError(f"unknown SlowFast weights {name!r}; known: {', '.join(SLOWFAST_WEIGHTS)}")
    url, sha256 = SLOWFAST_WEIGHTS[name]
    target = (directory or cache_dir()) / name
    if target.exists():
        return target
    return download_to(url, target, sha256, what="SlowFast weights",
                       manual_hint=f"--slowfast-weights /path/{name}")


def _is_torch_file(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as file:
        return file.read(len(_TORCH_LEGACY_HEADER)) == _TORCH_LEGACY_HEADER


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint with weights_only=True (truncated, or it "
                              f"pickles objects other than tensors): {error}") from None
    if isinstance(state, dict) and isinstance(state.get("model_state"), dict):
        state = state["model_state"]  # PySlowFast / pytorchvideo wrapper (with optimizer_state, epoch, cfg...)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors (or {{'model_state': ...}}), "
                              f"found {type(state).__name__}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _read_caffe2(path: Path) -> dict[str, np.ndarray]:
    data = load_numpy_pickle(path)
    blobs = data.get("blobs") if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise CheckpointError(f"{path}: a Caffe2 weight pickle must be a dict with a 'blobs' dict; found "
                              f"{type(data).__name__} with keys {sorted(data)[:8] if isinstance(data, dict) else []}")
    return blobs


def read_raw_state(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(format, tensors under the file's own names) with the unused entries (classifier, optimiser) dropped."""
    if _is_torch_file(path):
        state = {k: v for k, v in _read_torch(path).items() if not is_ignored_torch_key(k)}
        return ("pytorchvideo" if any(key.startswith("blocks.") for key in state) else "pyslowfast"), state
    blobs = _read_caffe2(path)
    return "caffe2", {k: torch.from_numpy(np.array(v)) for k, v in blobs.items() if not is_ignored_caffe2_blob(k)}


def to_official_names(state: dict[str, torch.Tensor], fmt: str, config: SlowFastConfig,
                      path: Path) -> dict[str, torch.Tensor]:
    """Rename through the key table of ``fmt``; missing or unexpected names raise, listing them."""
    keys = list(SlowFast(config).state_dict())
    if fmt == "caffe2":
        table = caffe2_table(keys, config.stage_blocks)
    elif fmt == "pytorchvideo":
        table = pytorchvideo_table(keys)
    else:
        table = {key: key for key in keys}
    unexpected = sorted(set(state) - set(table))
    missing = sorted(name for name in table if name not in state)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not SlowFast R50 weights in the {fmt} naming ({len(missing)} missing, {len(unexpected)} "
            f"unexpected keys): missing {missing[:6]}, unexpected {unexpected[:6]}"
        )
    return {table[name]: value for name, value in state.items()}


def infer_config(state: dict[str, torch.Tensor], fmt: str, path: Path) -> SlowFastConfig:
    """Channel widths, block counts and temporal kernels read from the tensors (scaled-down test models load too)."""
    readers = {"caffe2": _config_from_caffe2, "pytorchvideo": _config_from_pytorchvideo,
               "pyslowfast": _config_from_official}
    return readers[fmt](state, path)


def _shape(tensors: dict, name: str, path: Path) -> tuple[int, ...]:
    if name not in tensors:
        raise CheckpointError(f"{path}: no tensor {name!r}; not a SlowFast checkpoint?")
    return tuple(tensors[name].shape)


def _build_config(widths: tuple[int, int], fusion: tuple[int, ...], blocks: list[int], slow_kernels: list[int],
                  fast_kernels: list[int], path: Path) -> SlowFastConfig:
    width, fast_width = widths
    if len(blocks) != 4 or not all(blocks) or fast_width == 0 or width % fast_width:
        raise CheckpointError(f"{path}: not a 4-stage two-pathway SlowFast (blocks per stage {blocks}, "
                              f"stem widths {width}/{fast_width})")
    return replace(SlowFastConfig(), stage_blocks=tuple(blocks), width=width, beta_inv=width // fast_width,
                   fusion_ratio=fusion[0] // fusion[1], fusion_kernel=fusion[2], slow_kernels=tuple(slow_kernels),
                   fast_kernels=tuple(fast_kernels))


def _count(names: list[str], pattern: str) -> int:
    return len({match[1] for name in names if (match := re.fullmatch(pattern, name))})


def _config_from_official(state: dict, path: Path) -> SlowFastConfig:
    names = list(state)
    blocks = [_count(names, rf"s{k}\.pathway0_res(\d+)\..*") for k in range(2, 6)]
    stems = [_shape(state, f"s1.pathway{p}_stem.conv.weight", path) for p in (0, 1)]
    kernels = [[stems[p][2]] + [_shape(state, f"s{k}.pathway{p}_res0.branch2.a.weight", path)[2] for k in range(2, 6)]
               for p in (0, 1)]
    return _build_config((stems[0][0], stems[1][0]), _shape(state, "s1_fuse.conv_f2s.weight", path), blocks,
                         kernels[0], kernels[1], path)


def _config_from_pytorchvideo(state: dict, path: Path) -> SlowFastConfig:
    names = list(state)
    blocks = [_count(names, rf"blocks\.{k}\.multipathway_blocks\.0\.res_blocks\.(\d+)\..*") for k in range(1, 5)]
    stems = [_shape(state, f"blocks.0.multipathway_blocks.{p}.conv.weight", path) for p in (0, 1)]
    kernels = [[stems[p][2]] + [_shape(state, f"blocks.{k}.multipathway_blocks.{p}.res_blocks.0.branch2.conv_a.weight",
                                       path)[2] for k in range(1, 5)] for p in (0, 1)]
    fusion = _shape(state, "blocks.0.multipathway_fusion.conv_fast_to_slow.weight", path)
    return _build_config((stems[0][0], stems[1][0]), fusion, blocks, kernels[0], kernels[1], path)


def _config_from_caffe2(blobs: dict, path: Path) -> SlowFastConfig:
    names = list(blobs)
    blocks = [_count(names, rf"res{k}_(\d+)_branch2a_w") for k in range(2, 6)]
    stems = [_shape(blobs, f"{prefix}conv1_w", path) for prefix in ("", "t_")]
    kernels = [[stems[p][2]] + [_shape(blobs, f"{prefix}res{k}_0_branch2a_w", path)[2] for k in range(2, 6)]
               for p, prefix in enumerate(("", "t_"))]
    return _build_config((stems[0][0], stems[1][0]), _shape(blobs, "t_pool1_subsample_w", path), blocks,
                         kernels[0], kernels[1], path)


def load_slowfast(weights: str | Path = DEFAULT_WEIGHTS, alpha: int = 4, num_frames: int = 32) -> SlowFast:
    """A frozen float32 SlowFast from a weight file or a registry name (downloaded into the cache).

    Widths, block counts and temporal kernels are read from the file; ``alpha`` and ``num_frames`` (the 8×8 sampling)
    are not stored in any format and come from the caller.
    """
    path = Path(weights)
    if not path.is_file():
        if str(weights) not in SLOWFAST_WEIGHTS:
            raise CheckpointError(f"SlowFast weights {weights!s}: neither a file nor a known name "
                                  f"({', '.join(SLOWFAST_WEIGHTS)})")
        path = download_weights(str(weights))
    fmt, raw = read_raw_state(path)
    try:
        config = infer_config(raw, fmt, path)
    except CheckpointError:
        config = SlowFastConfig()  # not readable as a SlowFast: the key check below lists what does not fit R50
    config = replace(config, alpha=alpha, num_frames=num_frames)
    state = to_official_names(raw, fmt, config, path)
    model = SlowFast(config)
    expected = model.state_dict()
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{path}: SlowFast tensor {key} has shape {tuple(state[key].shape)}, the "
                                  f"architecture read from the file needs {tuple(value.shape)}")
    model.load_state_dict({key: value.to(torch.float32) for key, value in state.items()})
    model.requires_grad_(False)
    return model.eval()
