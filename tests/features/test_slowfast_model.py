"""The SlowFast R50 8×8 module: shapes, pathway structure, and equality with pytorchvideo's reference model.

pytorchvideo (0.1.5, PyPI) builds the same network (``create_slowfast``) and is the reference here. Its package
``__init__`` imports ``torchvision.ops.RoIAlign`` for the detection head only; torchvision is not installed (and
never needed by vtgkit), so the import runs with a placeholder ``torchvision.ops`` module that the SlowFast
classification model never touches. Install: ``pip install --no-deps pytorchvideo==0.1.5 fvcore iopath
portalocker yacs termcolor tabulate``.
"""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import pytest
import torch
from tests.features.slowfast_helpers import R50, R50_SMALL_INPUT, TINY, random_state

from vtgkit.features.slowfast.key_table import pytorchvideo_table
from vtgkit.features.slowfast.model import SlowFast, SlowFastConfig
from vtgkit.features.slowfast.sampling import slow_pathway_indices

TINY_SMALL_INPUT = replace(TINY, crop_size=64, num_frames=8)


def _model(config: SlowFastConfig, seed: int = 0) -> SlowFast:
    model = SlowFast(config)
    model.load_state_dict(random_state(config, seed))
    return model


def _inputs(config: SlowFastConfig, batch: int = 1, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    fast = torch.randn(batch, 3, config.num_frames, config.crop_size, config.crop_size, generator=generator)
    return fast[:, :, slow_pathway_indices(config.num_frames, config.alpha)], fast


def _create_reference(**kwargs: object) -> torch.nn.Module:
    pytest.importorskip("pytorchvideo", reason="pytorchvideo (the reference SlowFast) is not installed")
    pytest.importorskip("fvcore", reason="fvcore (pytorchvideo's dependency) is not installed")
    placeholder = {}
    if "torchvision" not in sys.modules:
        torchvision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (), {})  # only the detection head would use it
        torchvision.ops = ops
        placeholder = {"torchvision": torchvision, "torchvision.ops": ops}
    sys.modules.update(placeholder)
    try:
        from pytorchvideo.models.slowfast import create_slowfast
    except ImportError as error:
        pytest.skip(f"pytorchvideo does not import here: {error}")
    finally:
        for name in placeholder:
            sys.modules.pop(name, None)
    return create_slowfast(model_depth=50, **kwargs).eval()


def _reference_features(config: SlowFastConfig, state: dict[str, torch.Tensor], slow: torch.Tensor,
                        fast: torch.Tensor) -> torch.Tensor:
    pools = ((config.slow_frames, config.crop_size // 32, config.crop_size // 32),
             (config.num_frames, config.crop_size // 32, config.crop_size // 32))
    reference = _create_reference(head_pool_kernel_sizes=pools)
    inverse = {ours: name for name, ours in pytorchvideo_table(list(state)).items()}
    missing, unexpected = reference.load_state_dict({inverse[k]: v for k, v in state.items()}, strict=False)
    assert not unexpected
    assert all(key.endswith("num_batches_tracked") or key.startswith("blocks.6.") for key in missing)
    with torch.inference_mode():
        x = [slow, fast]
        for block in reference.blocks[:6]:  # stem, res2-5 with fusions, pool+concat; blocks[6] is the classifier
            x = block(x)
    return x.flatten(1)


def test_r50_matches_pytorchvideo_on_random_weights() -> None:
    torch.manual_seed(0)
    state = random_state(R50_SMALL_INPUT, seed=3)
    slow, fast = _inputs(R50_SMALL_INPUT, batch=2)
    model = SlowFast(R50_SMALL_INPUT)
    model.load_state_dict(state)
    with torch.inference_mode():
        ours = model(slow, fast)
    expected = _reference_features(R50_SMALL_INPUT, state, slow, fast)
    assert ours.shape == (2, 2304)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-5 * float(expected.abs().max().clamp(min=1)))


@pytest.mark.slow
def test_r50_matches_pytorchvideo_at_full_size() -> None:
    state = random_state(R50, seed=4)
    slow, fast = _inputs(R50)
    model = SlowFast(R50)
    model.load_state_dict(state)
    with torch.inference_mode():
        ours = model(slow, fast)
    expected = _reference_features(R50, state, slow, fast)
    assert torch.allclose(ours, expected, rtol=0, atol=1e-5 * float(expected.abs().max().clamp(min=1)))


def test_r50_parameter_shapes_follow_pyslowfast() -> None:
    state = SlowFast(R50).state_dict()
    assert len(state) == 550  # 110 convs/BNs: PySlowFast's model_state without BN counters and the classifier
    assert state["s1.pathway0_stem.conv.weight"].shape == (64, 3, 1, 7, 7)
    assert state["s1.pathway1_stem.conv.weight"].shape == (8, 3, 5, 7, 7)
    assert state["s1_fuse.conv_f2s.weight"].shape == (16, 8, 7, 1, 1)
    assert state["s2.pathway0_res0.branch1.weight"].shape == (256, 80, 1, 1, 1)  # 64 slow + 16 fused
    assert state["s4.pathway0_res0.branch2.a.weight"].shape == (256, 640, 3, 1, 1)  # slow res4: temporal kernel 3
    assert state["s3.pathway0_res0.branch2.a.weight"].shape == (128, 320, 1, 1, 1)  # slow res3: kernel 1
    assert state["s5.pathway1_res2.branch2.c_bn.running_var"].shape == (256,)
    assert "s5_fuse.conv_f2s.weight" not in state  # no lateral connection after res5
    assert R50.feature_dim == 2304


def test_fast_half_ignores_the_slow_input_and_slow_half_sees_the_fast_one() -> None:
    # The lateral connections go fast → slow only (SlowFast paper §3.3; FuseFastToSlow).
    model = _model(TINY_SMALL_INPUT)
    slow, fast = _inputs(TINY_SMALL_INPUT)
    slow_width = TINY.width * 32
    with torch.inference_mode():
        base = model(slow, fast)
        other_slow = model(torch.randn_like(slow), fast)
        other_fast = model(slow, torch.randn_like(fast))
    assert torch.equal(base[:, slow_width:], other_slow[:, slow_width:])
    assert not torch.allclose(base[:, :slow_width], other_slow[:, :slow_width])
    assert not torch.allclose(base[:, :slow_width], other_fast[:, :slow_width])


def test_clips_are_independent_of_the_batch() -> None:
    model = _model(TINY_SMALL_INPUT)
    slow, fast = _inputs(TINY_SMALL_INPUT, batch=3)
    with torch.inference_mode():
        together = model(slow, fast)
        alone = torch.cat([model(slow[i : i + 1], fast[i : i + 1]) for i in range(3)])
    assert together.shape == (3, TINY_SMALL_INPUT.feature_dim)
    assert torch.allclose(together, alone, atol=1e-5)


def test_stem_by_hand() -> None:
    # conv (bias-free) → inference BN → ReLU → 1×3×3 max-pool, stride 1×2×2, on the fast pathway's 5×7×7 stem.
    model = _model(TINY)
    stem = model.s1.pathway1_stem
    _slow, fast = _inputs(TINY)
    bn = stem.bn
    expected = torch.nn.functional.conv3d(fast, stem.conv.weight, stride=(1, 2, 2), padding=(2, 3, 3))
    scale = bn.weight / torch.sqrt(bn.running_var + 1e-5)
    expected = (expected - bn.running_mean.view(1, -1, 1, 1, 1)) * scale.view(1, -1, 1, 1, 1) + bn.bias.view(
        1, -1, 1, 1, 1)
    expected = torch.nn.functional.max_pool3d(expected.clamp(min=0), (1, 3, 3), (1, 2, 2), (0, 1, 1))
    with torch.inference_mode():
        assert torch.allclose(stem(fast), expected, atol=1e-5)
    assert expected.shape == (1, TINY.fast_width, 32, 56, 56)


def test_wrong_input_size_is_refused() -> None:
    model = _model(replace(TINY, crop_size=224))
    slow, fast = _inputs(replace(TINY, crop_size=96))
    with pytest.raises(ValueError, match="head pools"):
        model(slow, fast)
