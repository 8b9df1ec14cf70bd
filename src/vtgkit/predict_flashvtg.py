"""FlashVTG's plug-in for ``vtgkit predict`` (the ``"flashvtg"`` entry of ``vtgkit.predict.PREDICTORS``).

Reproduces the official evaluation path (spec flashvtg.md §6): batch size 1 by default, eval mode, the model's top
``max_num_moment`` windows, FlashVTG's post-processing (clamp to the duration, 4 decimals, clamp to [0, 150] for
QVHighlights / Charades-STA, rounding to the clip length) and normal NMS at IoU 0.7 with suppressed windows kept at
score 0 (``--no-nms``: the list before NMS). Feature folder names, clip length and length caps come from the
checkpoint's training options; the benchmark follows the checkpoint's ``dset_name``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vtgkit.data.benchmarks import Benchmark
from vtgkit.data.flashvtg_batches import FlashVTGItem, build_flashvtg_items, collate_flashvtg
from vtgkit.data.flashvtg_features import FlashVTGFeatureLayout, FlashVTGFeatureReader, get_flashvtg_layout
from vtgkit.errors import ConfigError
from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_config
from vtgkit.models.flashvtg import FlashVTG
from vtgkit.models.flashvtg.convert import load_official_checkpoint, refuse_other_model
from vtgkit.models.restricted_unpickler import load_restricted_checkpoint, namespace_to_dict
from vtgkit.structures import Batch, GroundingSample


@dataclass(frozen=True)
class FlashVTGDatasetName:
    """An official ``dset_name``: the vtgkit benchmark it belongs to and its feature layout."""

    benchmark: str
    layout: str


DATASET_NAMES: dict[str, FlashVTGDatasetName] = {
    "hl": FlashVTGDatasetName("qvhighlights", "qvhighlights"),
    "qv_internvideo2": FlashVTGDatasetName("qvhighlights", "qvhighlights_internvideo2"),
    "charadesSTA": FlashVTGDatasetName("charades_sta", "charades_sta"),
    "tacos": FlashVTGDatasetName("tacos", "tacos"),
    "tvsum": FlashVTGDatasetName("tvsum", "tvsum"),
    "youtube_uni": FlashVTGDatasetName("youtube_highlights", "youtube_highlights"),
}


def _dataset_name(dset_name: str) -> FlashVTGDatasetName:
    if dset_name not in DATASET_NAMES:
        raise ConfigError(f"unknown FlashVTG dset_name {dset_name!r}; known: {sorted(DATASET_NAMES)}")
    return DATASET_NAMES[dset_name]


def flashvtg_benchmark_name(checkpoint: str | Path) -> str:
    """The vtgkit benchmark an official checkpoint was trained on (from its ``opt.dset_name``)."""
    checkpoint = Path(checkpoint)
    loaded = load_restricted_checkpoint(checkpoint)
    refuse_other_model(loaded, checkpoint)
    options = namespace_to_dict(loaded["opt"]) if isinstance(loaded, dict) and "opt" in loaded else {}
    if "dset_name" not in options:
        raise ConfigError(f"{checkpoint}: no training options with 'dset_name'; pass --dataset")
    return _dataset_name(str(options["dset_name"])).benchmark


def feature_layout(model: FlashVTG) -> FlashVTGFeatureLayout:
    """The preset layout of the model's dataset, with folder names and caps from its training options."""
    config, options = model.config, getattr(model, "official_options", {}) or {}
    layout = get_flashvtg_layout(_dataset_name(config.dataset_name).layout)
    changes: dict[str, Any] = {
        "max_video_len": config.max_video_len, "max_query_len": config.max_query_len, "clip_len": config.clip_len,
    }
    video_dirs = options.get("v_feat_dirs")
    if isinstance(video_dirs, list | tuple) and video_dirs:
        # The options hold the authors' paths; the folder names are what the data root must contain.
        changes["video_dirs"] = tuple(Path(str(d).rstrip("/")).name for d in video_dirs)
    if options.get("t_feat_dir"):
        changes["text_dir"] = Path(str(options["t_feat_dir"]).rstrip("/")).name
    if any("vgg" in folder for folder in changes.get("video_dirs", layout.video_dirs)):
        raise ConfigError("Charades-STA VGG checkpoints embed queries with GloVe vectors, which vtgkit does not ship")
    return dataclasses.replace(layout, **changes)


def load_flashvtg(checkpoint: Path, benchmark: Benchmark) -> FlashVTG:
    """Load an official checkpoint and check it was trained on ``benchmark``."""
    loaded = load_official_checkpoint(checkpoint)
    expected = _dataset_name(loaded.config.dataset_name).benchmark
    if expected != benchmark.name:
        raise ConfigError(
            f"{checkpoint} was trained on {loaded.config.dataset_name!r} ({expected}); got --dataset {benchmark.name}"
        )
    return loaded.model


class FlashVTGPredictionDataset(Dataset):
    """Reads one (video, query) pair per index, so a bad feature file fails only its own query."""

    def __init__(self, samples: Sequence[GroundingSample], reader: FlashVTGFeatureReader) -> None:
        self.samples = list(samples)
        self.reader = reader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> FlashVTGItem:
        (item,) = build_flashvtg_items([self.samples[index]], self.reader)
        return item


def flashvtg_dataset(samples: list[GroundingSample], data_root: Path, benchmark: Benchmark,
                     model: FlashVTG) -> Dataset:
    reader = FlashVTGFeatureReader(data_root, feature_layout(model), video_dim=model.config.video_dim,
                                   query_dim=model.config.query_dim)
    return FlashVTGPredictionDataset(samples, reader)


def collate_flashvtg_items(items: list[FlashVTGItem]) -> Batch:
    return collate_flashvtg(items)


# spec flashvtg.md §6 step 3: only these dset_names clamp times to [0, 150]; qv_internvideo2, tacos, ... only round.
_CLAMPED_DATASET_NAMES = {"hl", "charadesSTA"}


def flashvtg_postprocess(benchmark_name: str, model: FlashVTG) -> PostprocessConfig:
    """FlashVTG's post-processing with NMS 0.7 (the ``_nms_thd_0.7`` file); ``--no-nms`` turns NMS off.

    The clamp to [0, 150] follows the checkpoint's ``dset_name``, not the benchmark: QVHighlights with InternVideo2
    features (``qv_internvideo2``) is rounded only.
    """
    config = postprocess_config("flashvtg", benchmark_name, with_nms=True)
    if model.config.dataset_name not in _CLAMPED_DATASET_NAMES:
        config = dataclasses.replace(config, max_timestamp=None)
    return config
