"""Official per-benchmark settings of R²-Tuning (spec r2-tuning.md §1.2, §2.1, §5, §8).

Everything that differs between benchmarks — clip rate, rounding unit, NMS, feature folder and file names, the
annotation parser, the training filter — is looked up here by name, so generic code never branches on a dataset
name (the official ``if 'tacos' in label_path``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtgkit.data.charades_sta import load_charades_sta
from vtgkit.data.ego4d_nlq import load_ego4d_nlq
from vtgkit.data.qvhighlights import load_qvhighlights
from vtgkit.data.tacos import load_tacos, tacos_feature_video_id
from vtgkit.data.tvsum import align_tvsum_length, load_tvsum, load_tvsum_jsonl, tvsum_positive_clips
from vtgkit.data.youtube_highlights import (
    check_youtube_length,
    load_youtube_highlights,
    load_youtube_highlights_jsonl,
    youtube_feature_fps,
    youtube_positive_clips,
)
from vtgkit.errors import ConfigError
from vtgkit.structures import GroundingSample


def _video_id(sample: GroundingSample) -> str:
    return sample.vid


def _query_id(sample: GroundingSample) -> str:
    return str(sample.qid)


@dataclass(frozen=True)
class Benchmark:
    """Settings of one benchmark as the official R²-Tuning configs use them.

    Attributes:
        fps: clips per second of the cached features; None when it differs per video (``sample_fps`` decides).
        unit: predicted windows are rounded to multiples of this many seconds (None: no rounding).
        nms: ``"normal"`` (threshold ``nms_threshold``), ``"linear"`` or None (highlight-only benchmarks).
        min_video_len: training annotations shorter than this many seconds are dropped (evaluation keeps all).
        has_moments: whether annotations hold ground-truth windows and models predict windows.
        annotation_files: the official file name of each split under ``data/<name>/``.
    """

    name: str
    load_jsonl: Callable[[str | Path], list[GroundingSample]]
    load_json: Callable[[str | Path], list[GroundingSample]] | None
    fps: float | None
    unit: float | None
    nms: str | None
    nms_threshold: float | None
    min_video_len: float | None
    has_moments: bool
    annotation_files: dict[str, str]
    max_saliency: float = 12.0
    feature_video_id: Callable[[GroundingSample], str] = _video_id
    feature_query_id: Callable[[GroundingSample], str] = _query_id
    per_video_fps: Callable[[GroundingSample], float] | None = None
    # Highlight-only benchmarks (TVSum, YouTube): how feature and annotation lengths are reconciled
    # (num_feature_clips, num_annotated_clips, where) -> clips kept, and which clips may be drawn as pos_clip.
    align_clip_count: Callable[[int, int, str], int] | None = None
    positive_clips: Callable[[np.ndarray], list[int]] | None = None

    def sample_fps(self, sample: GroundingSample) -> float:
        """Clips per second of ``sample``'s features."""
        if self.fps is not None:
            return self.fps
        if self.per_video_fps is None:
            raise ConfigError(f"benchmark {self.name!r} has neither a fixed fps nor a per-video rule")
        return self.per_video_fps(sample)

    def load(self, path: str | Path) -> list[GroundingSample]:
        """Parse an annotation file of this benchmark: JSON lines, or the official JSON object where one exists."""
        if Path(path).suffix == ".json":
            if self.load_json is None:
                raise ConfigError(f"{path}: {self.name} annotations are JSON lines (.jsonl), not a .json object")
            return self.load_json(path)
        return self.load_jsonl(path)


BENCHMARKS: dict[str, Benchmark] = {
    "qvhighlights": Benchmark(
        name="qvhighlights", load_jsonl=load_qvhighlights, load_json=None,
        fps=0.5, unit=2.0, nms="normal", nms_threshold=0.7, min_video_len=5.0, has_moments=True,
        annotation_files={"train": "qvhighlights_train.jsonl", "val": "qvhighlights_val.jsonl",
                          "test": "qvhighlights_test.jsonl"},
    ),
    "charades_sta": Benchmark(
        name="charades_sta", load_jsonl=load_charades_sta, load_json=None,
        fps=1.0, unit=0.1, nms="linear", nms_threshold=None, min_video_len=5.0, has_moments=True,
        # spec r2-tuning.md §8.1: the test split is R²-Tuning's validation set
        annotation_files={"train": "charades_train.jsonl", "val": "charades_test.jsonl"},
    ),
    "tacos": Benchmark(
        name="tacos", load_jsonl=load_tacos, load_json=None,
        fps=0.5, unit=None, nms="linear", nms_threshold=None, min_video_len=5.0, has_moments=True,
        annotation_files={"train": "train.jsonl", "val": "test.jsonl"},  # spec §8.1: test used as val
        feature_video_id=tacos_feature_video_id,
    ),
    "ego4d_nlq": Benchmark(
        name="ego4d_nlq", load_jsonl=load_ego4d_nlq, load_json=None,
        fps=0.5, unit=None, nms="linear", nms_threshold=None, min_video_len=5.0, has_moments=True,
        annotation_files={"train": "nlq_train.jsonl", "val": "nlq_val.jsonl"},
    ),
    "youtube_highlights": Benchmark(
        name="youtube_highlights", load_jsonl=load_youtube_highlights_jsonl, load_json=load_youtube_highlights,
        fps=None, unit=None, nms=None, nms_threshold=None, min_video_len=None, has_moments=False,
        annotation_files={"all": "youtube_anno.json"},
        feature_query_id=_video_id,  # spec §2.1: one query per video, its file named after the video
        per_video_fps=youtube_feature_fps,
        align_clip_count=check_youtube_length,
        positive_clips=youtube_positive_clips,
    ),
    "tvsum": Benchmark(
        name="tvsum", load_jsonl=load_tvsum_jsonl, load_json=load_tvsum,
        fps=0.5, unit=None, nms=None, nms_threshold=None, min_video_len=None, has_moments=False,
        annotation_files={"all": "tvsum_anno.json"},
        feature_query_id=_video_id,
        align_clip_count=align_tvsum_length,
        positive_clips=tvsum_positive_clips,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def clip_arch_tag(arch: str) -> str:
    """Short CLIP name used in feature folder names: ``ViT-B/32`` -> ``b32``, ``ViT-L/14-336px`` -> ``l14_336px``."""
    if not arch.startswith("ViT-"):
        raise ConfigError(f"unknown CLIP architecture {arch!r}; expected a name like 'ViT-B/32'")
    return arch.removeprefix("ViT-").lower().replace("/", "").replace("-", "_")


def feature_folder_names(arch: str = "ViT-B/32", num_layers: int = 4) -> tuple[str, str]:
    """``(video folder, query folder)`` of the official cache, e.g. ``("clip_b32_vid_k4", "clip_b32_txt_k4")``."""
    tag = clip_arch_tag(arch)
    return f"clip_{tag}_vid_k{num_layers}", f"clip_{tag}_txt_k{num_layers}"
