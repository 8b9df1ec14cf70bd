"""Where a recipe's data lives on disk and how it is read and scored: the ``TrainingData`` of every recipe.

Layouts under ``data_root`` (annotation file names can be changed with ``train_annotations=`` /
``eval_annotations=`` / ``test_annotations=`` / ``splits_file=``, relative to ``data_root`` or absolute):

* R²-Tuning (spec r2-tuning.md §2.1, §8.1): ``clip_b32_vid_k4/`` + ``clip_b32_txt_k4/`` (names follow the model's
  CLIP and K) and the benchmark's official annotation files; TVSum / YouTube Highlights read ``tvsum_anno.json`` /
  ``youtube_anno.json`` with the per-domain ``train`` / ``val`` lists of ``tvsum_splits.json`` /
  ``youtube_splits.json`` (FlashVTG's jsonl files work too, with ``eval_annotations=``).
* FlashVTG (spec flashvtg.md §1.1, §7, §8): the feature folders of the official script (e.g.
  ``slowfast_features/`` + ``clip_features/`` + ``clip_text_features/``) and the annotation files of its ``data/``
  folder under their official names (``highlight_{train,val}_release.jsonl``, ...); TVSum / YouTube-HL rows are
  restricted to the recipe's domain.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from vtgkit.errors import ConfigError
from vtgkit.evaluation.postprocess import PostprocessConfig, postprocess_config
from vtgkit.train import distributed
from vtgkit.train.config import TrainConfig
from vtgkit.train.runner import AnnotationSplit, DataSource, TrainingData, flashvtg_source, r2tuning_source

# Official FlashVTG annotation files (spec flashvtg.md §7), per model preset: (train, evaluation).
FLASHVTG_ANNOTATIONS: dict[str, tuple[str, str]] = {
    "qvhighlights": ("highlight_train_release.jsonl", "highlight_val_release.jsonl"),
    # qv_internvideo2/train.sh: the train file without qids 611 and 1265 (their IV2 features are missing).
    "qvhighlights_internvideo2": ("highlight_train_release_IV2.jsonl", "highlight_val_release.jsonl"),
    "charades_sta": ("charades_sta_train_tvr_format.jsonl", "charades_sta_test_tvr_format.jsonl"),
    "charades_sta_internvideo2": ("charades_sta_train_tvr_format.jsonl", "charades_sta_test_tvr_format.jsonl"),
    "tacos": ("train.jsonl", "test.jsonl"),  # the scripts evaluate TACoS on its test split
    "tvsum": ("tvsum_train.jsonl", "tvsum_val.jsonl"),
    "youtube_highlights": ("youtube_train.jsonl", "youtube_valid.jsonl"),
}

# spec flashvtg.md §5: which saliency labels each benchmark's dataset draws.
FLASHVTG_LABEL_KINDS = {"qvhighlights": "qvhighlights", "charades_sta": "windows", "tacos": "windows",
                        "tvsum": "tvsum", "youtube_highlights": "youtube"}

# spec flashvtg.md §6.3: only these dset_names clamp predicted times to [0, 150] before rounding.
_FLASHVTG_MAX_TIMESTAMP = {"hl": 150.0, "charadesSTA": 150.0}

_GLOVE_NEEDED = ("recipe {recipe}: FlashVTG's Charades-STA VGG script embeds each query with GloVe 6B-300d word "
                 "vectors (torchtext; unknown words map to an appended zero vector, spec flashvtg.md §1.3), which "
                 "vtgkit does not ship. Train it with the official code, or use flashvtg-charades (SlowFast+CLIP) / "
                 "flashvtg-charades_internvideo2")


def training_data(config: TrainConfig, output: Path) -> TrainingData:
    """The ``TrainingData`` of ``config``: SynthVTG (built under ``output`` on first use) or a benchmark root."""
    if config.dataset == "synthvtg":
        return synthvtg_training_data(config, output)
    if config.model == "flashvtg" and config.model_preset == "charades_sta_vgg":
        raise ConfigError(_GLOVE_NEEDED.format(recipe=config.recipe))
    from vtgkit.data import get_benchmark

    benchmark = get_benchmark(config.dataset)
    if not config.data_root:
        raise ConfigError(f"recipe {config.recipe}: set data_root=PATH (the folder with {benchmark.name}'s "
                          "annotation files and feature folders; see `vtgkit train --help`)")
    root = Path(config.data_root)
    if not root.is_dir():
        raise ConfigError(f"recipe {config.recipe}: data_root {root} is not a folder")
    if config.model == "flashvtg":
        return flashvtg_training_data(config, root)
    if config.model == "r2tuning":
        return r2tuning_training_data(config, root)
    raise ConfigError(f"recipe {config.recipe}: no data pipeline for model {config.model!r}")


def annotation_domain(dataset: str, domain: str) -> str:
    """The ``domain`` value of the annotation files for a recipe's domain name.

    TVSum categories are upper-case codes in the files (``BK``); R²-Tuning's YouTube recipes use short names
    (``gym``) for the domains the files spell out (``gymnastics``).
    """
    if dataset == "tvsum":
        return domain.upper()
    if dataset == "youtube_highlights":
        from vtgkit.models.r2tuning.config import YOUTUBE_DOMAINS

        return YOUTUBE_DOMAINS.get(domain, domain)
    return domain


def _annotation_file(root: Path, given: str, default: str, key: str) -> Path:
    path = Path(given or default)
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise ConfigError(f"annotation file not found: {path} (the recipe reads {default!r} under data_root; "
                          f"set {key}=PATH for another file)")
    return path


# ------------------------------------------------------------------------------------------------ FlashVTG
def flashvtg_training_data(config: TrainConfig, root: Path) -> TrainingData:
    """FlashVTG on an official feature folder: its layout, labels, post-processing and evaluator (spec §1, §5, §6)."""
    from vtgkit.data import get_benchmark
    from vtgkit.data.flashvtg_features import FlashVTGFeatureReader, get_flashvtg_layout
    from vtgkit.models import create_config
    from vtgkit.train.flashvtg_options import official_options

    preset = config.model_preset or "qvhighlights"
    if preset not in FLASHVTG_ANNOTATIONS:
        raise ConfigError(f"recipe {config.recipe}: FlashVTG preset {preset!r} has no official data layout; "
                          f"known: {sorted(FLASHVTG_ANNOTATIONS)}")
    benchmark = get_benchmark(config.dataset)
    model_config = create_config("flashvtg", preset, **config.model_overrides)
    # The model's length caps and clip length are the dataset's (one option set drives both in the official code).
    layout = dataclasses.replace(get_flashvtg_layout(preset), max_video_len=model_config.max_video_len,
                                 max_query_len=model_config.max_query_len, clip_len=model_config.clip_len)
    reader = FlashVTGFeatureReader(root, layout)
    train_name, eval_name = FLASHVTG_ANNOTATIONS[preset]
    domain = annotation_domain(benchmark.name, config.domain) if config.domain else None
    if not benchmark.has_moments and domain is None:
        raise ConfigError(f"recipe {config.recipe}: {benchmark.name} trains one model per domain; set domain=NAME")
    train_file = _annotation_file(root, config.train_annotations, train_name, "train_annotations")
    eval_file = _annotation_file(root, config.eval_annotations, eval_name, "eval_annotations")
    test_file = (_annotation_file(root, config.test_annotations, eval_name, "test_annotations")
                 if config.test_annotations else None)
    split = (lambda path: AnnotationSplit(path, domain)) if domain else (lambda path: path)
    source = flashvtg_source(benchmark, reader, FLASHVTG_LABEL_KINDS[benchmark.name], config.seed)
    if benchmark.has_moments:
        postprocess = PostprocessConfig("flashvtg", unit=model_config.clip_len, decimals=4,
                                        max_timestamp=_FLASHVTG_MAX_TIMESTAMP.get(model_config.dataset_name))
    else:
        # TVSum / YouTube-HL are scored on the model's raw saliency_scores (compute_hl_results), not on the
        # 4-decimal submission values; "r2tuning" post-processing leaves saliency untouched (windows are unused).
        postprocess = PostprocessConfig("r2tuning")
    return TrainingData(
        source=_checked_flashvtg_source(source, model_config, root, layout),
        train_file=split(train_file),
        eval_file=split(eval_file),
        test_file=split(test_file) if test_file else None,
        postprocess=postprocess,
        evaluator_dataset=benchmark.name,
        evaluator_protocol="flashvtg",
        keep_saliency=benchmark.name not in ("charades_sta", "tacos"),
        checkpoint_extras={"opt": official_options(model_config, layout)},
    )


def _checked_flashvtg_source(source: DataSource, model_config: Any, root: Path, layout: Any) -> DataSource:
    """``source`` whose built items are checked against the model's input widths (a clear error, not a matmul)."""

    def build(samples: list, with_targets: bool) -> Any:
        items = source.build(samples, with_targets)
        if items:
            video_dim, query_dim = int(items[0].video.shape[-1]), int(items[0].query.shape[-1])
            if (video_dim, query_dim) != (model_config.video_dim, model_config.query_dim):
                raise ConfigError(
                    f"{root}: the features give video width {video_dim} ({' + '.join(layout.video_dirs)} + 2 TEF) "
                    f"and query width {query_dim} ({layout.text_dir}), but the model expects "
                    f"{model_config.video_dim} and {model_config.query_dim}; set model_overrides.video_dim / "
                    "model_overrides.query_dim, or use the recipe's official features")
        return items

    return dataclasses.replace(source, build=build)


# ------------------------------------------------------------------------------------------------ R²-Tuning
def r2tuning_training_data(config: TrainConfig, root: Path) -> TrainingData:
    """R²-Tuning on its official CLIP cache (spec r2-tuning.md §2.1, §8): moment benchmarks or one HD domain."""
    from vtgkit.data import R2TuningFeatureReader, get_benchmark
    from vtgkit.errors import FeatureFileNotFoundError
    from vtgkit.models import create_config

    benchmark = get_benchmark(config.dataset)
    model_config = create_config("r2tuning", config.model_preset, **config.model_overrides)
    reader = R2TuningFeatureReader(root, arch=model_config.clip_arch, num_layers=model_config.num_layers)
    for folder in (reader.video_dir, reader.query_dir):
        if not folder.is_dir():
            raise FeatureFileNotFoundError(f"feature folder not found: {folder} (R2-Tuning reads "
                                           f"{reader.video_dir.name}/ and {reader.query_dir.name}/ under {root})")
    files = benchmark.annotation_files
    source = r2tuning_source(benchmark, reader)
    if benchmark.has_moments:
        if config.domain is not None:
            raise ConfigError(f"recipe {config.recipe}: domain= applies to TVSum / YouTube Highlights only")
        for key, split in (("train_split", config.train_split), ("eval_split", config.eval_split)):
            if split not in files:
                raise ConfigError(f"{key}={split!r}: {benchmark.name} has splits {sorted(files)}")
        train_file = _annotation_file(root, config.train_annotations, files[config.train_split], "train_annotations")
        eval_file = _annotation_file(root, config.eval_annotations, files[config.eval_split], "eval_annotations")
        test_file = (_annotation_file(root, config.test_annotations, "", "test_annotations")
                     if config.test_annotations else None)
        return TrainingData(source=source, train_file=train_file, eval_file=eval_file, test_file=test_file,
                            postprocess=postprocess_config("r2tuning", benchmark.name),
                            evaluator_dataset=benchmark.name)
    if not config.domain:
        raise ConfigError(f"recipe {config.recipe}: {benchmark.name} trains one model per domain; set domain=NAME")
    domain = annotation_domain(benchmark.name, config.domain)
    train_file = _annotation_file(root, config.train_annotations, files["all"], "train_annotations")
    if train_file.suffix == ".json":
        # The official object holds every video; the split table picks the domain's train / val videos (spec §8.1).
        default_splits = f"{benchmark.name.split('_')[0]}_splits.json"
        splits = _annotation_file(root, config.splits_file, default_splits, "splits_file")
        eval_file = _annotation_file(root, config.eval_annotations, str(train_file), "eval_annotations")
        train_ref = AnnotationSplit(train_file, domain, config.train_split, splits)
        eval_ref = AnnotationSplit(eval_file, domain, config.eval_split, splits)
    else:  # FlashVTG-style per-split jsonl files: rows of the domain
        if not config.eval_annotations:
            raise ConfigError(f"recipe {config.recipe}: {train_file.name} is a per-split file; set "
                              "eval_annotations=PATH (e.g. tvsum_val.jsonl / youtube_valid.jsonl)")
        eval_file = _annotation_file(root, config.eval_annotations, "", "eval_annotations")
        train_ref, eval_ref = AnnotationSplit(train_file, domain), AnnotationSplit(eval_file, domain)
    return TrainingData(source=source, train_file=train_ref, eval_file=eval_ref, test_file=None,
                        postprocess=PostprocessConfig("r2tuning"), evaluator_dataset=benchmark.name)


# ------------------------------------------------------------------------------------------------ SynthVTG
def synthvtg_training_data(config: TrainConfig, output: Path) -> TrainingData:
    """SynthVTG (ours): generated under ``data_root`` (default ``output/synthvtg``) on first use."""
    from vtgkit.synth import pipeline

    root = Path(config.data_root) if config.data_root else output / "synthvtg"
    # Under torchrun every process gets here: the first builds the folder, the others then find it complete.
    context = distributed.init_distributed("cpu" if not torch.cuda.is_available() else None)
    with distributed.main_process_first(context):
        summary = pipeline.prepare_synthvtg(root, seed=config.seed)
    if context.is_main:
        print(f"SynthVTG data in {root}: {summary['splits']}")
    benchmark = pipeline.SYNTHVTG_BENCHMARK
    extras: dict[str, Any] = {}
    if config.model == "flashvtg":
        from vtgkit.models import create_config
        from vtgkit.train.flashvtg_options import official_options

        reader = pipeline.synthvtg_flashvtg_reader(root)
        source = flashvtg_source(benchmark, reader, "qvhighlights", config.seed)
        postprocess = PostprocessConfig("flashvtg", unit=2.0, decimals=4)
        model_config = create_config("flashvtg", config.model_preset, **config.model_overrides)
        extras["opt"] = official_options(model_config, reader.layout)  # `vtgkit predict --dataset qvhighlights`
    else:
        source = r2tuning_source(benchmark, pipeline.synthvtg_feature_reader(root))
        postprocess = PostprocessConfig("r2tuning", unit=benchmark.unit, nms_method="normal", nms_threshold=0.7)
    files = benchmark.annotation_files
    return TrainingData(
        source=source,
        train_file=root / files[config.train_split],
        eval_file=root / files[config.eval_split],
        test_file=root / files["test"],
        postprocess=postprocess,
        evaluator_dataset="qvhighlights",  # QVHighlights-format files, QVHighlights metrics
        # SynthVTG has no window longer than 30 s; the moment_detr evaluator crashes on an empty length bucket,
        # R2-Tuning's evaluator (same metrics) falls back to the full set (spec r2-tuning.md §9).
        evaluator_protocol="r2tuning",
        checkpoint_extras=extras,
    )
