"""Key tables from the released SlowFast weight namings to PySlowFast's (the names :class:`SlowFast` uses).

Three namings exist for the same tensors:

* **PySlowFast** (``.pyth``/``.pkl`` ``torch.save`` files with ``model_state``):
  ``s2.pathway1_res0.branch2.a_bn.weight`` — identical to ours; ``head.projection.*`` (the classifier) and
  ``*.num_batches_tracked`` are not used.
* **Caffe2** (``SLOWFAST_8x8_R50.pkl``, ``{"blobs": {...}}``, the file HERO's extractor loads): ``res2_0_branch2a_w``,
  fast pathway prefixed ``t_``, BN blobs ``_s``/``_b``/``_rm``/``_riv`` (scale, bias, running mean, running variance),
  stem ``conv1_w`` / ``res_conv1_bn_*``, lateral convs ``t_pool1_subsample_*`` and
  ``t_res<k>_<last block>_branch2c_bn_subsample_*``. This is the inverse of PySlowFast's
  ``slowfast/utils/c2_model_loading.py`` regex chain; optimiser blobs (``*momentum*``, ``lr``, ``model_iter``) and the
  classifier (``pred_*``) are skipped, as PySlowFast's loader skips them.
* **pytorchvideo** (``SLOWFAST_8x8_R50.pyth`` of the pytorchvideo hub, ``create_slowfast``):
  ``blocks.<k-1>.multipathway_blocks.<p>.res_blocks.<i>.branch2.conv_a.weight``, fusion
  ``blocks.<k-1>.multipathway_fusion.conv_fast_to_slow``, classifier ``blocks.6.proj``.

Every table is generated from the model's own state-dict keys, so a key that does not fit raises here, by name.
"""

from __future__ import annotations

import re

_BN_C2 = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_STEM = re.compile(r"s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)")
_FUSE = re.compile(r"s(\d)_fuse\.(conv_f2s|bn)\.(\w+)")
_BLOCK = re.compile(r"s(\d)\.pathway(\d)_res(\d+)\.(branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)\.(\w+)")


def _c2_param(kind: str, attribute: str) -> str:
    """``conv`` weight → ``w``; BN attribute → ``bn_<s|b|rm|riv>``."""
    return "w" if kind == "conv" else f"bn_{_BN_C2[attribute]}"


def caffe2_name(key: str, stage_blocks: tuple[int, ...]) -> str:
    """The Caffe2 blob name of one of our keys: ``s2.pathway1_res0.branch2.a.weight`` → ``t_res2_0_branch2a_w``."""
    if match := _STEM.fullmatch(key):
        pathway, kind, attribute = match.groups()
        prefix = "t_" if pathway == "1" else ""
        return prefix + ("conv1_w" if kind == "conv" else f"res_conv1_bn_{_BN_C2[attribute]}")
    if match := _FUSE.fullmatch(key):
        stage, kind, attribute = int(match[1]), match[2], match[3]
        last = stage_blocks[stage - 2] - 1 if stage > 1 else 0  # named after the fast pathway's last block
        base = "t_pool1_subsample" if stage == 1 else f"t_res{stage}_{last}_branch2c_bn_subsample"
        return f"{base}_{_c2_param('conv' if kind == 'conv_f2s' else 'bn', attribute)}"
    if match := _BLOCK.fullmatch(key):
        stage, pathway, block, part, attribute = match.groups()
        prefix = "t_" if pathway == "1" else ""
        branch = part.replace("branch2.", "branch2").removesuffix("_bn")  # branch1 / branch2a
        kind = "bn" if part.endswith("_bn") else "conv"
        return f"{prefix}res{stage}_{block}_{branch}_{_c2_param(kind, attribute)}"
    raise KeyError(f"SlowFast key {key!r} has no Caffe2 counterpart")


def pytorchvideo_name(key: str) -> str:
    """The pytorchvideo ``create_slowfast`` name of one of our keys."""
    if match := _STEM.fullmatch(key):
        pathway, kind, attribute = match.groups()
        return f"blocks.0.multipathway_blocks.{pathway}.{'conv' if kind == 'conv' else 'norm'}.{attribute}"
    if match := _FUSE.fullmatch(key):
        stage, kind, attribute = int(match[1]), match[2], match[3]
        part = "conv_fast_to_slow" if kind == "conv_f2s" else "norm"
        return f"blocks.{stage - 1}.multipathway_fusion.{part}.{attribute}"
    if match := _BLOCK.fullmatch(key):
        stage, pathway, block, part, attribute = match.groups()
        names = {"branch1": "branch1_conv", "branch1_bn": "branch1_norm"}
        for letter in "abc":
            names[f"branch2.{letter}"] = f"branch2.conv_{letter}"
            names[f"branch2.{letter}_bn"] = f"branch2.norm_{letter}"
        return f"blocks.{int(stage) - 1}.multipathway_blocks.{pathway}.res_blocks.{block}.{names[part]}.{attribute}"
    raise KeyError(f"SlowFast key {key!r} has no pytorchvideo counterpart")


def caffe2_table(keys: list[str], stage_blocks: tuple[int, ...]) -> dict[str, str]:
    """Caffe2 blob name → our key, for every key of the model."""
    return {caffe2_name(key, stage_blocks): key for key in keys}


def pytorchvideo_table(keys: list[str]) -> dict[str, str]:
    """pytorchvideo name → our key, for every key of the model."""
    return {pytorchvideo_name(key): key for key in keys}


def is_ignored_caffe2_blob(name: str) -> bool:
    """Blobs PySlowFast's Caffe2 loader skips (optimiser state) plus the classifier, which features do not use."""
    return any(part in name for part in ("momentum", "lr", "model_iter")) or name.startswith("pred_")


def is_ignored_torch_key(key: str) -> bool:
    """BN step counters and the classifier of PySlowFast (``head.``) or pytorchvideo (``blocks.6.``) checkpoints."""
    return key.endswith("num_batches_tracked") or key.startswith(("head.", "blocks.6."))
