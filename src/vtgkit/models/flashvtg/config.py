"""FlashVTG configuration: one frozen dataclass, defaults = QVHighlights SlowFast+CLIP (spec flashvtg.md §7).

Every official training script is a preset made with ``dataclasses.replace``; :func:`config_from_options` reads a
configuration from the training options (``opt``) stored in an official checkpoint or its ``opt.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vtgkit.errors import ConfigError


@dataclass(frozen=True)
class FlashVTGConfig:
    """Hyper-parameters of FlashVTG (official option names in comments)."""

    video_dim: int = 2818  # v_feat_dim after +2 for TEF
    query_dim: int = 512  # t_feat_dim
    hidden_dim: int = 256  # hidden_dim
    num_heads: int = 8  # nheads
    feedforward_dim: int = 1024  # dim_feedforward
    dropout: float = 0.1  # dropout (attention, FFN, DropPath)
    dummy_encoder_dropout: float = 0.1  # hard-coded 0.1 in the official txtproj_encoder (spec §3.2), not --dropout
    input_dropout: float = 0.5  # input_dropout
    num_input_proj: int = 2  # n_input_proj
    num_dummies: int = 40  # num_dummies
    num_dummy_layers: int = 2  # dummy_layers
    num_t2v_layers: int = 6  # t2v_layers
    num_encoder_layers: int = 3  # enc_layers
    max_query_len: int = 40  # max_q_l (-1 -> 100); rows of the unused text position table
    max_video_len: int = 75  # max_v_l (-1 -> no limit); dataset-side cap
    clip_len: float = 2.0  # clip_length, seconds per clip
    strides: tuple[int, ...] = (1, 2, 4, 8)  # cfg.model.strides
    buffer_size: int = 1024  # cfg.model.buffer_size (point generator cache)
    max_num_moment: int = 50  # cfg.model.max_num_moment
    kernel_size: int = 5  # kernel_size of the ASR ConfidenceScorers
    num_conv_layers: int = 1  # num_conv_layers
    num_mlp_layers: int = 5  # num_mlp_layers
    # Spec §3.4: the official per-head mask is assigned to item (b*H+h) mod B. True reproduces it (parity);
    # False gives every head of item b its own mask.
    official_attention_mask: bool = True
    # losses (spec §4, §7)
    highlight_only: bool = False  # HD configs (data/HD.py): DynamicBCE on saliency, no regression, NCE rows only
    use_negatives: bool = True  # use_neg
    dataset_name: str = "hl"  # dset_name: video identity for negative pairs, youtube_uni neg weight
    sample_radius: float = 1.5  # loss_cfg.sample_radius
    saliency_margin: float = 0.2  # saliency_margin
    loss_cls_weight: float = 5.0  # lw_cls
    loss_reg_weight: float = 1.0  # lw_reg
    loss_sal_weight: float = 0.1  # lw_sal
    loss_saliency_weight: float = 0.8  # lw_saliency
    loss_label_weight: float = 4.0  # label_loss_coef
    attention_loss_weight: float = 1.0  # lw_wattn

    def __post_init__(self) -> None:
        if self.hidden_dim % self.num_heads:
            raise ConfigError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads {self.num_heads}")
        if list(self.strides) != sorted(set(self.strides)) or self.strides[0] != 1:
            raise ConfigError(f"strides must be increasing and start at 1; got {self.strides}")
        if any(s != 2**i for i, s in enumerate(self.strides)):
            raise ConfigError(f"strides must be consecutive powers of two (1, 2, 4, ...); got {self.strides}")
        if self.num_input_proj < 1:
            raise ConfigError(f"num_input_proj must be >= 1; got {self.num_input_proj}")

    @property
    def text_position_rows(self) -> int:
        """Rows of the (unused) text position table: max_q_l, with -1 meaning 100 (spec §1.5)."""
        return 100 if self.max_query_len < 0 else self.max_query_len


_BASE = FlashVTGConfig()
_HD = dict(strides=(1,), buffer_size=2048, highlight_only=True, max_video_len=1000, max_query_len=-1)

PRESETS: dict[str, FlashVTGConfig] = {
    "qvhighlights": _BASE,
    "qvhighlights_internvideo2": dataclasses.replace(
        _BASE, video_dim=770, query_dim=4096, strides=(1, 2, 4, 8, 16), dataset_name="qv_internvideo2",
        loss_label_weight=0.0,
    ),
    "charades_sta": dataclasses.replace(
        _BASE, clip_len=1.0, max_video_len=-1, max_query_len=32, dataset_name="charadesSTA", loss_sal_weight=0.01,
        loss_label_weight=0.1,
    ),
    "charades_sta_vgg": dataclasses.replace(
        _BASE, video_dim=4098, query_dim=300, clip_len=0.166666, max_video_len=-1, max_query_len=-1,
        dataset_name="charadesSTA", kernel_size=3, num_conv_layers=2, loss_sal_weight=0.01, loss_label_weight=0.1,
    ),
    "charades_sta_internvideo2": dataclasses.replace(
        _BASE, video_dim=770, query_dim=4096, clip_len=1.0, max_video_len=-1, max_query_len=23,
        dataset_name="charadesSTA", kernel_size=7, num_conv_layers=2, num_mlp_layers=3, loss_sal_weight=0.01,
        loss_label_weight=0.1,
    ),
    "tacos": dataclasses.replace(
        _BASE, max_video_len=-1, max_query_len=-1, dataset_name="tacos", num_t2v_layers=8, num_dummy_layers=3,
        num_dummies=35, num_conv_layers=2, dropout=0.0, loss_sal_weight=0.05,
    ),
    # TVSum: the script's kernel/conv/MLP settings are not passed, so the argparse defaults 3/3/3 apply (spec §7).
    "tvsum": dataclasses.replace(
        _BASE, **_HD, dataset_name="tvsum", num_t2v_layers=2, num_dummies=3, kernel_size=3, num_conv_layers=3,
        num_mlp_layers=3, loss_sal_weight=0.1, loss_label_weight=4.0,
    ),
    "youtube_highlights": dataclasses.replace(
        _BASE, **_HD, clip_len=1.0, dataset_name="youtube_uni", num_t2v_layers=2, num_dummies=1, kernel_size=5,
        num_conv_layers=2, num_mlp_layers=3, loss_cls_weight=0.6, loss_sal_weight=0.5, loss_saliency_weight=0.7,
        loss_label_weight=5.0,
    ),
}


def _model_cfg(options: Mapping[str, Any]) -> Mapping[str, Any]:
    cfg = options.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        return cfg["model"]
    return {}


def config_from_options(options: Mapping[str, Any], source: str = "training options") -> FlashVTGConfig:
    """Build a :class:`FlashVTGConfig` from the official training options.

    Args:
        options: ``vars(ckpt["opt"])`` of an official checkpoint (``v_feat_dim`` already includes TEF, ``use_tef``
            set, ``cfg`` holding the nncore model config) or the ``opt.json`` saved beside it (``v_feat_dim``
            before the +2, no ``cfg``: the model config then follows ``config`` = data/MR.py, MR_16.py or HD.py).
        source: name of the file the options came from, for error messages.
    """
    required = ("v_feat_dim", "t_feat_dim", "hidden_dim", "nheads", "num_dummies", "t2v_layers", "enc_layers",
                "dummy_layers", "dim_feedforward", "kernel_size", "num_conv_layers", "num_mlp_layers", "clip_length")
    missing = [key for key in required if key not in options]
    if missing:
        raise ConfigError(f"{source}: FlashVTG options lack {missing}; is this a FlashVTG checkpoint?")
    video_dim = int(options["v_feat_dim"])
    # The training script adds 2 TEF dims after writing opt.json and sets use_tef (spec §1.1).
    if "tef" in str(options.get("ctx_mode", "video_tef")) and "use_tef" not in options:
        video_dim += 2
    model_cfg = _model_cfg(options)
    config_file = str(options.get("config", "data/MR.py"))
    highlight_only = model_cfg.get("loss_cfg", {}).get("loss_reg", "absent") is None if model_cfg else (
        config_file.endswith("HD.py"))
    default_strides = (1,) if highlight_only else (1, 2, 4, 8, 16) if config_file.endswith("MR_16.py") else (1, 2, 4, 8)
    weights = {
        "loss_cls_weight": options.get("lw_cls", 5.0),
        "loss_reg_weight": options.get("lw_reg", 1.0),
        "loss_sal_weight": options.get("lw_sal", 0.1),
        "loss_saliency_weight": options.get("lw_saliency", 0.8),
        "loss_label_weight": options.get("label_loss_coef", 4.0),
        "attention_loss_weight": options.get("lw_wattn", 1.0),
    }
    return FlashVTGConfig(
        video_dim=video_dim,
        query_dim=int(options["t_feat_dim"]),
        hidden_dim=int(options["hidden_dim"]),
        num_heads=int(options["nheads"]),
        feedforward_dim=int(options["dim_feedforward"]),
        dropout=float(options.get("dropout", 0.1)),
        input_dropout=float(options.get("input_dropout", 0.5)),
        num_input_proj=int(options.get("n_input_proj", 2)),
        num_dummies=int(options["num_dummies"]),
        num_dummy_layers=int(options["dummy_layers"]),
        num_t2v_layers=int(options["t2v_layers"]),
        num_encoder_layers=int(options["enc_layers"]),
        max_query_len=int(options.get("max_q_l", 40)),
        max_video_len=int(options.get("max_v_l", 75)),
        clip_len=float(options["clip_length"]),
        strides=tuple(int(s) for s in model_cfg.get("strides", default_strides)),
        buffer_size=int(model_cfg.get("buffer_size", 2048 if highlight_only else 1024)),
        max_num_moment=int(model_cfg.get("max_num_moment", 50)),
        kernel_size=int(options["kernel_size"]),
        num_conv_layers=int(options["num_conv_layers"]),
        num_mlp_layers=int(options["num_mlp_layers"]),
        highlight_only=bool(highlight_only),
        use_negatives=bool(options.get("use_neg", True)),
        dataset_name=str(options.get("dset_name", "hl")),
        sample_radius=float(model_cfg.get("loss_cfg", {}).get("sample_radius", 1.5)),
        saliency_margin=float(options.get("saliency_margin", 0.2)),
        **{key: float(value) for key, value in weights.items()},
    )
