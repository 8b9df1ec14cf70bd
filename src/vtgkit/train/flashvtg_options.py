"""FlashVTG training options in the official ``opt`` layout, stored in vtgkit's FlashVTG checkpoints.

``vtgkit predict --model flashvtg`` rebuilds a model from a checkpoint's ``opt`` (spec flashvtg.md §9: the official
``model_best.ckpt`` carries the argparse options, with ``cfg.model`` from data/MR.py or HD.py). Writing the same
entries into our ``best.pt`` / ``last.pt`` lets the trained weights go through that path unchanged: the options
name the dataset (``dset_name``), the feature folders and every architecture setting.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from vtgkit.data.flashvtg_features import FlashVTGFeatureLayout
from vtgkit.models.flashvtg.config import FlashVTGConfig, config_from_options

logger = logging.getLogger(__name__)

# Fields the official options cannot express; they only change training (dropout) or the attention-mask layout.
_NOT_IN_OPTIONS = ("dummy_encoder_dropout", "official_attention_mask")


def official_options(config: FlashVTGConfig, layout: FlashVTGFeatureLayout) -> dict[str, Any]:
    """The official option names and values for ``config`` trained on ``layout``'s feature folders.

    ``v_feat_dim`` already includes the 2 TEF dims and ``use_tef`` says so (as in the options saved inside an
    official checkpoint); ``cfg.model.loss_cfg.loss_reg`` is None for the highlight-only (HD.py) configs.
    Settings that do not survive the round trip through :func:`config_from_options` are logged.
    """
    options: dict[str, Any] = {
        "dset_name": config.dataset_name,
        "ctx_mode": "video_tef",
        "use_tef": True,
        "v_feat_dim": config.video_dim,
        "t_feat_dim": config.query_dim,
        "v_feat_dirs": list(layout.video_dirs),
        "t_feat_dir": layout.text_dir,
        "hidden_dim": config.hidden_dim,
        "nheads": config.num_heads,
        "dim_feedforward": config.feedforward_dim,
        "dropout": config.dropout,
        "input_dropout": config.input_dropout,
        "n_input_proj": config.num_input_proj,
        "num_dummies": config.num_dummies,
        "dummy_layers": config.num_dummy_layers,
        "t2v_layers": config.num_t2v_layers,
        "enc_layers": config.num_encoder_layers,
        "max_q_l": config.max_query_len,
        "max_v_l": config.max_video_len,
        "clip_length": config.clip_len,
        "kernel_size": config.kernel_size,
        "num_conv_layers": config.num_conv_layers,
        "num_mlp_layers": config.num_mlp_layers,
        "use_neg": config.use_negatives,
        "saliency_margin": config.saliency_margin,
        "lw_cls": config.loss_cls_weight,
        "lw_reg": config.loss_reg_weight,
        "lw_sal": config.loss_sal_weight,
        "lw_saliency": config.loss_saliency_weight,
        "label_loss_coef": config.loss_label_weight,
        "lw_wattn": config.attention_loss_weight,
        "config": "data/HD.py" if config.highlight_only else "data/MR.py",
        "cfg": {
            "model": {
                "strides": list(config.strides),
                "buffer_size": config.buffer_size,
                "max_num_moment": config.max_num_moment,
                "loss_cfg": {"loss_reg": None if config.highlight_only else "L1Loss",
                             "sample_radius": config.sample_radius},
            }
        },
    }
    rebuilt = config_from_options(options, "vtgkit training options")
    lost = [item.name for item in dataclasses.fields(config)
            if getattr(rebuilt, item.name) != getattr(config, item.name) and item.name not in _NOT_IN_OPTIONS]
    if lost:
        logger.warning("FlashVTG settings %s are not expressible in the official options; a model rebuilt from "
                       "the checkpoint's 'opt' (vtgkit predict) uses %s", lost,
                       {name: getattr(rebuilt, name) for name in lost})
    return options
