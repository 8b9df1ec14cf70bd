"""SlowFast ResNet-50 8×8 as a frozen feature extractor: the 2304-d clip features of the Moment-DETR family.

Paper: Feichtenhofer, Fan, Malik, He, "SlowFast Networks for Video Recognition" (ICCV 2019). Reference code:
facebookresearch/SlowFast (``slowfast/models/video_model_builder.py`` ``SlowFastModel``, ``resnet_helper.py``,
``stem_helper.py``), as vendored by linjieli222/HERO_Video_Feature_Extractor (``slowfast/``), whose
``extract_feature/extract.py`` made the released QVHighlights ``slowfast_features`` (Moment-DETR README). Weights:
PySlowFast model zoo, Kinetics-400 ``SLOWFAST_8x8_R50`` (Apache-2.0 code; weights released with the model zoo).

Parameter names are PySlowFast's own (``s1.pathway0_stem.conv.weight``, ``s2.pathway1_res0.branch2.a_bn.running_mean``,
``s3_fuse.conv_f2s.weight``, ...), so that its ``.pyth`` checkpoints load by name and the Caffe2/pytorchvideo tables in
:mod:`vtgkit.features.slowfast.key_table` map onto them. The classification head is not built: the feature is the
head's input, i.e. each pathway's stage-5 map average-pooled over (T, H, W) and concatenated, slow first
(2048 + 256 = 2304 for R50; HERO's ``ResNetBasicHead(last_fc=True)`` returns exactly this).

Shapes: B clips; the fast pathway sees T = 32 frames, the slow one T/α = 8; S = 224 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SlowFastConfig:
    """PySlowFast's ``SLOWFAST_8x8_R50`` configuration (defaults) and scaled-down variants for tests.

    Attributes:
        stage_blocks: bottleneck blocks in res2..res5 (R50: 3, 4, 6, 3).
        width: slow stem channels (``RESNET.WIDTH_PER_GROUP``); stage k has inner width ``width·2^k``, output ×4.
        beta_inv: slow/fast channel ratio (``SLOWFAST.BETA_INV``).
        alpha: fast/slow frame ratio (``SLOWFAST.ALPHA``): the temporal stride of the fusion convolutions.
        fusion_ratio: fusion conv output channels / fast channels (``FUSION_CONV_CHANNEL_RATIO``).
        fusion_kernel: temporal kernel of the fusion convs (``FUSION_KERNEL_SZ``).
        slow_kernels / fast_kernels: temporal kernels of the stem and of every block's first conv in res2..res5.
        num_frames: fast-pathway frames per clip (``DATA.NUM_FRAMES``).
        crop_size: input side in pixels; with the frame count it fixes the head's pooling window.
    """

    stage_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    beta_inv: int = 8
    alpha: int = 4
    fusion_ratio: int = 2
    fusion_kernel: int = 7
    slow_kernels: tuple[int, int, int, int, int] = (1, 1, 1, 3, 3)
    fast_kernels: tuple[int, int, int, int, int] = (5, 3, 3, 3, 3)
    num_frames: int = 32
    crop_size: int = 224

    @property
    def fast_width(self) -> int:
        return self.width // self.beta_inv

    @property
    def feature_dim(self) -> int:
        """Slow res5 channels + fast res5 channels (2048 + 256 for R50)."""
        return self.width * 32 + self.fast_width * 32

    @property
    def slow_frames(self) -> int:
        return self.num_frames // self.alpha


def _conv(channels_in: int, channels_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
          padding: tuple[int, int, int] = (0, 0, 0)) -> nn.Conv3d:
    return nn.Conv3d(channels_in, channels_out, kernel, stride=stride, padding=padding, bias=False)


class FrozenBatchNorm3d(nn.Module):
    """Inference-mode BatchNorm3d (eps 1e-5, PySlowFast's ``BN.EPSILON``) without the ``num_batches_tracked`` counter.

    It calls the same ``F.batch_norm`` as ``nn.BatchNorm3d`` in eval mode, so the numbers are identical.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Stem(nn.Module):
    """Conv (t×7×7, stride 1×2×2) → BN → ReLU → max-pool 1×3×3 stride 1×2×2 (``ResNetBasicStem``)."""

    def __init__(self, channels_out: int, temporal_kernel: int) -> None:
        super().__init__()
        self.conv = _conv(3, channels_out, (temporal_kernel, 7, 7), (1, 2, 2), (temporal_kernel // 2, 3, 3))
        self.bn = FrozenBatchNorm3d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        return F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))


class Bottleneck(nn.Module):
    """a: t×1×1 conv, b: 1×3×3 conv with the spatial stride (``STRIDE_1X1 = False``), c: 1×1×1 conv; BN after each."""

    def __init__(self, channels_in: int, inner: int, channels_out: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        self.a = _conv(channels_in, inner, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0))
        self.a_bn = FrozenBatchNorm3d(inner)
        self.b = _conv(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.b_bn = FrozenBatchNorm3d(inner)
        self.c = _conv(inner, channels_out, (1, 1, 1))
        self.c_bn = FrozenBatchNorm3d(channels_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a_bn(self.a(x)))
        x = F.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """``relu(shortcut(x) + branch2(x))``; the shortcut is a strided 1×1×1 conv + BN when the shape changes."""

    def __init__(self, channels_in: int, inner: int, channels_out: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        if channels_in != channels_out or stride != 1:
            self.branch1 = _conv(channels_in, channels_out, (1, 1, 1), (1, stride, stride))
            self.branch1_bn = FrozenBatchNorm3d(channels_out)
        else:
            self.branch1 = None
        self.branch2 = Bottleneck(channels_in, inner, channels_out, temporal_kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else self.branch1_bn(self.branch1(x))
        return F.relu(shortcut + self.branch2(x))


class FuseFastToSlow(nn.Module):
    """Lateral connection: fast map → conv (k×1×1, temporal stride α) → BN → ReLU, concatenated to the slow map."""

    def __init__(self, fast_channels: int, config: SlowFastConfig) -> None:
        super().__init__()
        kernel = config.fusion_kernel
        self.conv_f2s = _conv(fast_channels, fast_channels * config.fusion_ratio, (kernel, 1, 1), (config.alpha, 1, 1),
                              (kernel // 2, 0, 0))
        self.bn = FrozenBatchNorm3d(fast_channels * config.fusion_ratio)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, F.relu(self.bn(self.conv_f2s(fast)))], dim=1)


class TwoPathways(nn.Module):
    """Holds ``pathway0_<kind>…`` (slow) and ``pathway1_<kind>…`` (fast) children under PySlowFast's names."""

    def __init__(self, slow: list[nn.Module], fast: list[nn.Module], kind: str) -> None:
        super().__init__()
        self.depth = len(slow)
        for pathway, modules in enumerate((slow, fast)):
            for index, module in enumerate(modules):
                name = f"pathway{pathway}_{kind}" if kind == "stem" else f"pathway{pathway}_{kind}{index}"
                self.add_module(name, module)
        self.kind = kind

    def _run(self, pathway: int, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "stem":
            return getattr(self, f"pathway{pathway}_stem")(x)
        for index in range(self.depth):
            x = getattr(self, f"pathway{pathway}_{self.kind}{index}")(x)
        return x

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(0, slow), self._run(1, fast)


class SlowFast(nn.Module):
    """Frozen SlowFast backbone; ``forward(slow, fast)`` returns the pooled clip features (B, feature_dim)."""

    def __init__(self, config: SlowFastConfig = SlowFastConfig()) -> None:
        super().__init__()
        self.config = config
        width, fast_width = config.width, config.fast_width
        self.s1 = TwoPathways([Stem(width, config.slow_kernels[0])], [Stem(fast_width, config.fast_kernels[0])], "stem")
        self.s1_fuse = FuseFastToSlow(fast_width, config)
        slow_in = width + fast_width * config.fusion_ratio
        fast_in = fast_width
        for stage, blocks in enumerate(config.stage_blocks):
            inner, out = width * 2**stage, width * 4 * 2**stage
            stride = 1 if stage == 0 else 2
            slow = [ResBlock(slow_in if i == 0 else out, inner, out, config.slow_kernels[stage + 1],
                             stride if i == 0 else 1) for i in range(blocks)]
            fast_inner, fast_out = inner // config.beta_inv, out // config.beta_inv
            fast = [ResBlock(fast_in if i == 0 else fast_out, fast_inner, fast_out, config.fast_kernels[stage + 1],
                             stride if i == 0 else 1) for i in range(blocks)]
            self.add_module(f"s{stage + 2}", TwoPathways(slow, fast, "res"))
            if stage < 3:
                self.add_module(f"s{stage + 2}_fuse", FuseFastToSlow(fast_out, config))
            slow_in, fast_in = out + fast_out * config.fusion_ratio, fast_out
        self.eval()

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        """Normalised clips: slow (B, 3, T/α, S, S) and fast (B, 3, T, S, S) → features (B, feature_dim)."""
        slow, fast = self.s1(slow, fast)
        slow = self.s1_fuse(slow, fast)
        # PySlowFast's pathway pools after res2 have kernel 1×1×1 for SlowFast (``_POOL1``): identities, omitted.
        for stage in range(2, 6):
            slow, fast = getattr(self, f"s{stage}")(slow, fast)
            if stage < 5:
                slow = getattr(self, f"s{stage}_fuse")(slow, fast)
        return torch.cat([self._pool(slow, self.config.slow_frames), self._pool(fast, self.config.num_frames)], dim=1)

    def _pool(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        # The head's AvgPool3d window is fixed by the config (T, S/32, S/32) with stride 1: on the configured input it
        # covers the whole map, so the output is one vector per clip. Another input size would give a grid.
        window = (frames, self.config.crop_size // 32, self.config.crop_size // 32)
        if tuple(x.shape[2:]) != window:
            raise ValueError(f"SlowFast res5 map is {tuple(x.shape[2:])}, the head pools {window}: feed "
                             f"{self.config.num_frames} frames of {self.config.crop_size}² pixels")
        return F.avg_pool3d(x, window, stride=1).flatten(1)  # (B, C)
