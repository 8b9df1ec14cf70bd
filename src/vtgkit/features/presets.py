"""Extraction presets: one per official feature set of the six benchmarks and both methods, plus folder naming.

R²-Tuning caches (spec r2-tuning.md §2.1, §10): ``frames_<size>_<fps>fps/<vid>.npy``, ``clip_<tag>_vid_k<K>/<vid>.npy``
(T, K, P, D) float16 and ``clip_<tag>_txt_k<K>/<qid>.npy`` (L, K, D) float16, where ``tag`` is the arch without
"ViT-", lower-cased, "/" removed, "-"→"_" (``b32``, ``b16``, ``l14``, ``l14_336px``). The official tools derive the
video folder from the frames folder's parent, not from the fps; vtgkit appends ``_<fps>fps`` to the video folder
when ``--fps`` differs from the preset's rate, so two rates never share a folder (the oracle's convention).

FlashVTG caches (spec flashvtg.md §1.1, §8): pooled CLIP image embeddings per clip in ``<dir>/<vid>.npz`` key
``features`` and text in ``qid<qid>.npz`` / ``<qid>.npz`` with ``last_hidden_state`` and ``pooler_output``.
The released SlowFast+CLIP features come from HERO_Video_Feature_Extractor (Moment-DETR README): its CLIP path runs
the same ffmpeg ``fps=1/clip_len → scale → crop`` chain as R²-Tuning's frame-extraction tool (plus a higher rate for
videos shorter than one interval, :func:`vtgkit.features.slowfast.sampling.hero_clip_rate`), and its SlowFast path
writes ``<slowfast_dir>/<vid>.npz`` key ``features`` (n, 2304) float16 (:mod:`vtgkit.features.slowfast`), one row per
``clip_len`` seconds. Not bit for bit: HERO ran on CUDA, CLIP in float16 (``clip.load`` on a GPU keeps the fp16
weights) and SlowFast in float32 with cuDNN; vtgkit computes both in float32 on the CPU, so values agree to about
float16 precision (not checked against files made by HERO: none are available here).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vtgkit.errors import ConfigError
from vtgkit.features.decoding import format_fps

SAMPLERS = ("fps-filter", "frame-stride")


@dataclass(frozen=True)
class ExtractionPreset:
    """Everything that decides what ``vtgkit extract`` writes.

    Attributes:
        layout: ``"r2tuning"`` (per-layer tokens) or ``"flashvtg"`` (pooled embeddings).
        fps: sampling rate; None = per video from the annotations (YouTube Highlights: one frame per label).
        sampler: ``"fps-filter"`` (frame-extraction tool) or ``"frame-stride"`` (single-video inference tool).
        num_layers: K, the last K of (layers + 1) hidden states kept (R²-Tuning).
        clip_video_dir / clip_text_dir / slowfast_dir: FlashVTG folder names.
        query_file: file name pattern of a query's features (``{qid}``).
        clip_len: FlashVTG seconds per clip (spec flashvtg.md §1.1), the SlowFast clip length.
    """

    name: str
    layout: str
    arch: str = "ViT-B/32"
    fps: float | None = 0.5
    sampler: str = "fps-filter"
    num_layers: int = 4
    clip_video_dir: str = ""
    clip_text_dir: str = ""
    slowfast_dir: str | None = None
    query_file: str = "{qid}.npy"
    clip_len: float | None = None

    @property
    def frame_size(self) -> int:
        return 336 if "336" in self.arch else 224

    @property
    def arch_tag(self) -> str:
        """``ViT-B/32`` → ``b32``; ``ViT-L/14@336px`` → ``l14_336px`` (official ``arch[4:]`` rule)."""
        return self.arch[4:].lower().replace("/", "").replace("-", "_").replace("@", "_")

    def frames_dir(self, fps: float | None) -> str:
        rate = "auto" if fps is None else f"{format_fps(fps)}fps"
        return f"frames_{self.frame_size}_{rate}"

    def video_dir(self, fps: float | None) -> str:
        if self.layout == "flashvtg":
            return self.clip_video_dir
        base = f"clip_{self.arch_tag}_vid_k{self.num_layers}"
        if fps is not None and (self.fps is None or float(fps) != float(self.fps)):
            base += f"_{format_fps(fps)}fps"
        return base

    def text_dir(self) -> str:
        if self.layout == "flashvtg":
            return self.clip_text_dir
        return f"clip_{self.arch_tag}_txt_k{self.num_layers}"


def _r2(name: str, fps: float | None, **kwargs: object) -> ExtractionPreset:
    return ExtractionPreset(name=name, layout="r2tuning", fps=fps, **kwargs)


def _flash(name: str, clip_len: float, video: str, text: str, slowfast: str, query_file: str) -> ExtractionPreset:
    return ExtractionPreset(name=name, layout="flashvtg", fps=1.0 / clip_len, clip_video_dir=video,
                            clip_text_dir=text, slowfast_dir=slowfast, query_file=query_file, clip_len=clip_len)


PRESETS: dict[str, ExtractionPreset] = {
    preset.name: preset
    for preset in (
        _r2("r2tuning-qvhighlights", 0.5),
        _r2("r2tuning-charades", 1.0),
        # TACoS: the official video files are named <vid>-cam-002.*, so file stems already carry the suffix that
        # extract_feat.py appends to annotation vids (spec r2-tuning.md §2.1).
        _r2("r2tuning-tacos", 0.5),
        _r2("r2tuning-ego4d", 0.5),
        _r2("r2tuning-youtube", None),  # spec §10.1: per-video rate = len(match) / (frames / fps)
        _r2("r2tuning-tvsum", 0.5),
        _r2("r2tuning-single-video", 0.5, sampler="frame-stride"),  # spec §14.1 (tools/inference.py)
        _flash("flashvtg-qvhighlights", 2, "clip_features", "clip_text_features", "slowfast_features", "qid{qid}.npz"),
        _flash("flashvtg-charades", 1, "clip_features", "clip_text_features", "slowfast_features", "qid{qid}.npz"),
        _flash("flashvtg-tacos", 2, "clip_features", "clip_text_features", "slowfast_features", "{qid}.npz"),
        _flash("flashvtg-tvsum", 2, "vid_clip", "txt_clip", "vid_slowfast", "{qid}.npz"),
        _flash("flashvtg-youtube", 1, "vid_clip", "txt_clip", "vid_slowfast", "{qid}.npz"),
    )
}


def get_preset(name: str, **overrides: object) -> ExtractionPreset:
    """The named preset with explicit overrides (``arch``, ``num_layers``, ``sampler``); unknown names raise."""
    if name not in PRESETS:
        raise ConfigError(f"unknown extraction preset {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if overrides.get("sampler", preset.sampler) not in SAMPLERS:
        raise ConfigError(f"unknown sampler {overrides['sampler']!r}; known: {', '.join(SAMPLERS)}")
    return replace(preset, **overrides)
