"""R²-Tuning configuration: defaults = the official QVHighlights configuration (spec r2-tuning.md §1).

``PRESETS`` holds one model config per official config file, made with ``dataclasses.replace``;
``TRAINING_PRESETS`` holds the matching optimisation settings (spec §1.2, §7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from vtgkit.errors import ConfigError

# (video width Dv, text width Dq, tokens per frame P) per CLIP architecture, as the official code lists them.
# spec §1.1: ViT-L/14 is listed with 50 tokens per frame (should be 257 at 224 px); kept for cached-feature parity.
CLIP_ARCHS: dict[str, tuple[int, int, int]] = {
    "ViT-B/32": (768, 512, 50),
    "ViT-B/16": (768, 512, 197),
    "ViT-L/14": (1024, 768, 50),
    "ViT-L/14-336px": (1024, 768, 577),
}


@dataclass(frozen=True)
class R2TuningConfig:
    """Model and loss settings. Field defaults reproduce ``configs/qvhighlights/r2_tuning_qvhighlights.py``."""

    clip_arch: str = "ViT-B/32"
    video_dims: int = 768  # Dv: CLIP visual width
    query_dims: int = 512  # Dq: CLIP text width
    tokens_per_frame: int = 50  # P: CLS + patches
    num_layers: int = 4  # K: last CLIP layers used by the R² block (the paper's number of refined layers)
    hidden_dims: int = 256  # D
    strides: tuple[int, ...] = (1, 2, 4, 8)
    buffer_size: int = 1024  # max points per pyramid level, i.e. the longest supported video in clips
    max_num_moment: int = 50
    merge_cls_sal: bool = True  # saliency = mapped class score × cosine (False: class score alone)
    use_coord_head: bool = True  # False for TVSum / YouTube Highlights (no boundaries)

    # R² block (spec §3.1)
    adapter_dropout: float = 0.5
    use_tef: bool = True  # append (start, end) of each clip to every visual token
    num_heads: int = 8
    ffn_ratio: int = 4
    attention_dropout: float = 0.0
    drop_path: float = 0.1
    head_kernel_size: int = 3

    # Ablation switches; defaults are the official behaviour.
    recurrent_gate: bool = True  # mix each step with the previous step's output through sigmoid(gate)
    query_modulated_pooling: bool = True  # False: the clip feature is the mapped CLS token alone
    layer_order: Literal["deep_to_shallow", "shallow_to_deep"] = "deep_to_shallow"  # spec §15.4

    # Losses (spec §6)
    sample_radius: float = 1.5
    loss_cls: Literal["focal", "dynamic_bce"] = "focal"
    loss_cls_weight: float = 1.0
    loss_reg_weight: float = 0.2  # 0 disables the term (no coord head implies no regression loss)
    loss_sal_weight: float = 0.1
    loss_sal_directions: tuple[str, ...] = ("row", "col")
    loss_video_cal_weight: float = 0.1  # 0 disables the video-level calibration loss
    loss_layer_cal_weight: float = 0.1  # 0 disables the layer-wise calibration loss
    temperature: float = 0.07
    max_scale: float = 100.0

    # Eval-mode batching (not an official option): when True, a padded batch in eval mode gives for each sample
    # exactly what that sample alone gives (tef / positional encoding / pyramid levels per true length, padded
    # query tokens out of the spatial max-pool). Training always uses the official padded semantics (spec §6.6).
    eval_per_sample: bool = True

    def __post_init__(self) -> None:
        if self.num_layers < 1:
            raise ConfigError(f"R2TuningConfig.num_layers must be >= 1; got {self.num_layers}")
        if self.hidden_dims % self.num_heads:
            raise ConfigError(
                f"R2TuningConfig.hidden_dims ({self.hidden_dims}) must be divisible by num_heads ({self.num_heads})"
            )
        if not self.strides or any(s < 1 or s & (s - 1) for s in self.strides) or list(self.strides) != sorted(
            set(self.strides)
        ):
            raise ConfigError(f"R2TuningConfig.strides must be increasing powers of two; got {self.strides}")
        if self.layer_order not in ("deep_to_shallow", "shallow_to_deep"):
            raise ConfigError(f"R2TuningConfig.layer_order must be 'deep_to_shallow' or 'shallow_to_deep'; "
                              f"got {self.layer_order!r}")
        if self.loss_cls not in ("focal", "dynamic_bce"):
            raise ConfigError(f"R2TuningConfig.loss_cls must be 'focal' or 'dynamic_bce'; got {self.loss_cls!r}")
        if not set(self.loss_sal_directions) <= {"row", "col"}:
            raise ConfigError(f"R2TuningConfig.loss_sal_directions must be a subset of ('row', 'col'); "
                              f"got {self.loss_sal_directions}")

    @property
    def video_in_dims(self) -> int:
        """Width of the visual tokens entering video_map (Dv, + 2 with the temporal encoding)."""
        return self.video_dims + (2 if self.use_tef else 0)

    @property
    def saliency_log_scale(self) -> float:
        """ln(1 / temperature): the SampledNCE buffer value (spec §6.4)."""
        return math.log(1 / self.temperature)


@dataclass(frozen=True)
class R2TuningTrainingConfig:
    """Optimisation settings of an official config (spec §1.2 and §7; ``schedules/default.py``)."""

    batch_size: int = 128
    epochs: int = 30
    lr: float = 5e-4
    lr_milestones: tuple[int, ...] = (20,)  # epoch indices where lr is multiplied by lr_gamma; () = constant
    lr_gamma: float = 0.1
    warmup_iters: int = 500  # linear warmup over iterations, starting at warmup_ratio · lr
    warmup_ratio: float = 0.001
    weight_decay: float = 1e-4  # AdamW, on every learnable parameter (no exclusions)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip_norm: float = 35.0  # global L2 norm
    train_repeat: int = 1  # the QVHighlights train set is wrapped in RepeatDataset ×4
    min_video_len: float = 5.0  # training annotations with duration < 5 s are dropped (-1: keep all)
    max_saliency: float = 12.0
    eval_batch_size: int = 1
    num_workers: int = 4
    seed: int | None = None


_QV = R2TuningConfig()

# spec §1.2: TVSum / YouTube Highlights share these model overrides.
_HIGHLIGHT = replace(
    _QV,
    strides=(1,),
    use_tef=False,
    merge_cls_sal=False,
    use_coord_head=False,
    loss_cls="dynamic_bce",
    loss_reg_weight=0.0,
    loss_sal_directions=("row",),
)
_HIGHLIGHT_TRAINING = R2TuningTrainingConfig(
    batch_size=4, epochs=200, lr=5e-4, lr_milestones=(), warmup_iters=50
)

YOUTUBE_DOMAINS: dict[str, str] = {
    "dog": "dog", "gym": "gymnastics", "par": "parkour", "ska": "skating", "ski": "skiing", "sur": "surfing",
}
TVSUM_DOMAINS: tuple[str, ...] = ("BK", "BT", "DS", "FM", "GA", "MS", "PK", "PR", "VT", "VU")

PRESETS: dict[str, R2TuningConfig] = {
    "qvhighlights": _QV,
    "charades": replace(_QV, adapter_dropout=0.35, loss_sal_weight=0.01),
    "ego4d": replace(_QV, adapter_dropout=0.3),
    "tacos": replace(_QV, loss_sal_weight=0.05),
    **{f"youtube_{short}": _HIGHLIGHT for short in YOUTUBE_DOMAINS},
    **{f"tvsum_{code.lower()}": _HIGHLIGHT for code in TVSUM_DOMAINS},
}

TRAINING_PRESETS: dict[str, R2TuningTrainingConfig] = {
    "qvhighlights": R2TuningTrainingConfig(train_repeat=4),
    "charades": R2TuningTrainingConfig(batch_size=32, epochs=50, lr=2.5e-4, lr_milestones=(30,)),
    "ego4d": R2TuningTrainingConfig(batch_size=32, epochs=30, lr=2.5e-4, lr_milestones=(20,)),
    "tacos": R2TuningTrainingConfig(batch_size=32, epochs=100, lr=2.5e-4, lr_milestones=(50,)),
    **{f"youtube_{short}": _HIGHLIGHT_TRAINING for short in YOUTUBE_DOMAINS},
    **{f"tvsum_{code.lower()}": replace(_HIGHLIGHT_TRAINING, epochs=500) for code in TVSUM_DOMAINS},
}


def get_preset(name: str, **overrides: object) -> R2TuningConfig:
    """The config of an official preset, with field overrides. Raises ConfigError on unknown names/fields."""
    if name not in PRESETS:
        raise ConfigError(f"unknown R2-Tuning preset {name!r}; choose one of {sorted(PRESETS)}")
    fields = R2TuningConfig.__dataclass_fields__
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown R2TuningConfig field(s) {unknown}; valid fields: {sorted(fields)}")
    return replace(PRESETS[name], **overrides)


__all__ = ["CLIP_ARCHS", "PRESETS", "TRAINING_PRESETS", "R2TuningConfig", "R2TuningTrainingConfig", "get_preset"]
