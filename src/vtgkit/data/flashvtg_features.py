"""Official FlashVTG feature layouts and preprocessing (spec flashvtg.md §1, §8).

A data root holds one folder per feature kind, e.g. for QVHighlights SlowFast+CLIP::

    <root>/slowfast_features/<vid>.npz   key "features" (n, 2304), float16 in the public release
    <root>/clip_features/<vid>.npz       key "features" (n, 512)
    <root>/clip_text_features/qid<qid>.npz   key "last_hidden_state" (L, 512)

Per video: each folder's rows are cut to ``max_video_len``, cast to float32 and L2-normalised (``x / (‖x‖ + 1e-5)``);
the folders are cut to the shortest, concatenated, and TEF ``[i/T, i/T + 1/T]`` is appended. Per query: the first
``max_query_len`` tokens of ``last_hidden_state``, float32, L2-normalised — except TVSum / YouTube Highlights, whose
text is used raw.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vtgkit.errors import ConfigError, FeatureError, FeatureFileNotFoundError

L2_EPS = 1e-5


@dataclass(frozen=True)
class FlashVTGFeatureLayout:
    """Folder names and preprocessing rules of one official FlashVTG configuration.

    Attributes:
        video_dirs: feature folders under the data root, in concatenation order.
        text_dir: text feature folder under the data root.
        text_file: file stem pattern of a query's text features (``{qid}`` is replaced).
        video_lookup: ``"default"`` (npz → pt → npy), ``"tvsum"`` (``_rgb``+``_opt`` npy → npy → npz) or
            ``"youtube"`` (npz → npy), as the official dataset tries them.
        normalize_text: L2-normalise and cut text tokens (False for TVSum / YouTube Highlights: raw).
        max_video_len: rows kept per video folder (-1: all).
        max_query_len: tokens kept (-1: 100, the official default).
        clip_len: seconds per clip.
    """

    video_dirs: tuple[str, ...] = ("slowfast_features", "clip_features")
    text_dir: str = "clip_text_features"
    text_file: str = "qid{qid}"
    video_lookup: str = "default"
    normalize_text: bool = True
    max_video_len: int = 75
    max_query_len: int = 40
    clip_len: float = 2.0


_QV = FlashVTGFeatureLayout()
FLASHVTG_LAYOUTS: dict[str, FlashVTGFeatureLayout] = {
    "qvhighlights": _QV,
    "qvhighlights_internvideo2": dataclasses.replace(
        _QV, video_dirs=("qvhighlight_6b",), text_dir="qvhighlight_llama_text_feature"
    ),
    "charades_sta": dataclasses.replace(_QV, max_video_len=-1, max_query_len=32, clip_len=1.0),
    "charades_sta_internvideo2": dataclasses.replace(
        _QV, video_dirs=("charade_sta_6b",), text_dir="charade_sta_llama_text_feature", max_video_len=-1,
        max_query_len=23, clip_len=1.0,
    ),
    "tacos": dataclasses.replace(_QV, text_file="{qid}", max_video_len=-1, max_query_len=-1),
    "tvsum": dataclasses.replace(
        _QV, video_dirs=("vid_slowfast", "vid_clip"), text_dir="txt_clip", text_file="{qid}", video_lookup="tvsum",
        normalize_text=False, max_video_len=1000, max_query_len=-1,
    ),
    # spec §1.1: YouTube Highlights concatenates CLIP first, then SlowFast.
    "youtube_highlights": dataclasses.replace(
        _QV, video_dirs=("vid_clip", "vid_slowfast"), text_dir="txt_clip", text_file="{qid}", video_lookup="youtube",
        normalize_text=False, max_video_len=1000, max_query_len=-1, clip_len=1.0,
    ),
}


def get_flashvtg_layout(name: str) -> FlashVTGFeatureLayout:
    """The feature layout of an official FlashVTG configuration (see :data:`FLASHVTG_LAYOUTS`)."""
    if name not in FLASHVTG_LAYOUTS:
        raise ConfigError(f"unknown FlashVTG feature layout {name!r}; known: {sorted(FLASHVTG_LAYOUTS)}")
    return FLASHVTG_LAYOUTS[name]


def l2_normalize_rows(rows: np.ndarray) -> np.ndarray:
    """``x / (‖x‖₂ + 1e-5)`` per row, in float32 numpy as the official loader computes it."""
    return rows / (np.linalg.norm(rows, axis=-1, keepdims=True) + L2_EPS)


def temporal_endpoint_features(num_clips: int) -> np.ndarray:
    """TEF (spec §1.2 step 3): row i = [i/T, i/T + 1/T], float32, computed like the official torch code."""
    start = torch.arange(0, num_clips, 1.0) / num_clips
    return torch.stack([start, start + 1.0 / num_clips], dim=1).numpy()


def preprocess_video_rows(per_dir: list[np.ndarray], max_video_len: int = -1) -> np.ndarray:
    """The official per-video preprocessing (spec §1.2) of raw feature rows, one (n_i, D_i) array per folder in
    concatenation order: each cut to ``max_video_len`` rows (-1: all), float32, L2-normalised; all cut to the
    shortest; concatenated; TEF appended. Returns (T, ΣD + 2) float32."""
    limit = None if max_video_len < 0 else max_video_len
    normalised = [l2_normalize_rows(np.asarray(rows, dtype=np.float32)[:limit]) for rows in per_dir]
    length = min(len(rows) for rows in normalised)  # spec §1.2 step 2: some extractors give one row more
    video = np.concatenate([rows[:length] for rows in normalised], axis=1)
    return np.concatenate([video, temporal_endpoint_features(length)], axis=1)


def preprocess_query_tokens(tokens: np.ndarray, layout: FlashVTGFeatureLayout) -> np.ndarray:
    """The official per-query preprocessing (spec §1.3) of ``last_hidden_state`` rows (L, Dq): float32; the first
    ``max_query_len`` tokens (-1: 100) L2-normalised, except TVSum / YouTube Highlights, whose text is used raw."""
    tokens = np.asarray(tokens, dtype=np.float32)
    if not layout.normalize_text:
        return tokens  # spec §1.3: TVSum / YouTube Highlights use last_hidden_state raw, uncut
    limit = 100 if layout.max_query_len < 0 else layout.max_query_len
    return l2_normalize_rows(tokens[:limit])


def _load_array(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix == ".npz":
            with np.load(path) as archive:
                if key not in archive.files:
                    raise FeatureError(f"{path}: no key {key!r}; found keys {archive.files}")
                return np.asarray(archive[key])
        if path.suffix == ".pt":
            return torch.load(path, map_location="cpu", weights_only=True).float().numpy()
        return np.load(path, allow_pickle=False)
    except FeatureError:
        raise
    except Exception as error:  # truncated / not an array file
        raise FeatureError(f"{path}: cannot read features ({type(error).__name__}: {error})") from None


def _check_rows(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if array.ndim != 2 or array.shape[0] == 0:
        raise FeatureError(f"{path}: {what} must be a non-empty (rows, dims) array; found shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise FeatureError(f"{path}: {what} must be floating point; found {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise FeatureError(f"{path}: {what} holds non-finite values")
    return array


def _check_id(key: str, kind: str) -> str:
    # Ids become file names: refuse anything that would leave the feature folder.
    if not key or "/" in key or "\\" in key or key in {".", ".."}:
        raise FeatureError(f"{kind} id {key!r} cannot name a feature file (empty, or contains a path separator)")
    return key


class FlashVTGFeatureReader:
    """Reads and preprocesses features of the official FlashVTG layout under ``root``.

    Args:
        root: the data root holding the feature folders.
        layout: folder names and rules (:data:`FLASHVTG_LAYOUTS`).
        video_dim: width every preprocessed video must have (ΣD + 2 TEF, the model's ``video_dim``); None: any.
        query_dim: width of the text tokens (the model's ``query_dim``); None: any.
    """

    def __init__(self, root: str | Path, layout: FlashVTGFeatureLayout = _QV, *, video_dim: int | None = None,
                 query_dim: int | None = None) -> None:
        self.root = Path(root)
        self.layout = layout
        self.video_dim = video_dim
        self.query_dim = query_dim
        for folder in (*layout.video_dirs, layout.text_dir):
            if not (self.root / folder).is_dir():
                raise FeatureFileNotFoundError(
                    f"{self.root / folder}: feature folder not found (layout expects {list(layout.video_dirs)} and "
                    f"{layout.text_dir!r} under {self.root})"
                )

    def _first_existing(self, candidates: list[tuple[Path, ...]], what: str) -> tuple[Path, ...]:
        for paths in candidates:
            if all(path.is_file() for path in paths):
                return paths
        tried = ", ".join(" + ".join(str(p) for p in paths) for paths in candidates)
        raise FeatureFileNotFoundError(f"{what}: no feature file found; tried {tried}")

    def _read_video_dir(self, folder: Path, vid: str) -> np.ndarray:
        lookup = self.layout.video_lookup
        npz, npy, pt = folder / f"{vid}.npz", folder / f"{vid}.npy", folder / f"{vid}.pt"
        if lookup == "tvsum":
            candidates = [(folder / f"{vid}_rgb.npy", folder / f"{vid}_opt.npy"), (npy,), (npz,)]
        elif lookup == "youtube":
            candidates = [(npz,), (npy,)]
        else:
            candidates = [(npz,), (pt,), (npy,)]
        paths = self._first_existing(candidates, f"video {vid!r} in {folder}")
        limit = None if self.layout.max_video_len < 0 else self.layout.max_video_len
        parts = [_check_rows(_load_array(p, "features"), p, "video features")[:limit] for p in paths]
        # TVSum: RGB and optical-flow halves are concatenated along features.
        if len({len(part) for part in parts}) > 1:
            raise FeatureError(f"video {vid!r}: {' and '.join(str(p) for p in paths)} must have the same number of "
                               f"rows (clips); found {[len(part) for part in parts]}")
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    def read_video(self, vid: str) -> np.ndarray:
        """Preprocessed video features (T, ΣD + 2) float32: normalised folders, cut to the shortest, plus TEF."""
        _check_id(vid, "video")
        # Rows are already cut to max_video_len (float32, checked) by _read_video_dir.
        per_dir = [self._read_video_dir(self.root / folder, vid) for folder in self.layout.video_dirs]
        video = preprocess_video_rows(per_dir)
        if self.video_dim is not None and video.shape[1] != self.video_dim:
            widths = " + ".join(f"{rows.shape[1]} ({folder})" for rows, folder in zip(per_dir, self.layout.video_dirs,
                                                                                    strict=True))
            raise FeatureError(f"video {vid!r} under {self.root}: feature widths {widths} + 2 (TEF) = "
                               f"{video.shape[1]}; the model expects {self.video_dim}")
        return video

    def read_query(self, qid: int | str) -> np.ndarray:
        """Preprocessed text token features (L, Dq) float32."""
        folder = self.root / self.layout.text_dir
        stem = _check_id(self.layout.text_file.format(qid=qid), "query")
        candidates = [(folder / f"{stem}.npz",)]
        if self.layout.text_file.startswith("qid"):  # QV / Charades also accept a .pt tensor
            candidates.append((folder / f"{stem}.pt",))
        (path,) = self._first_existing(candidates, f"query {qid!r}")
        tokens = _check_rows(_load_array(path, "last_hidden_state"), path, "text features")
        if self.query_dim is not None and tokens.shape[1] != self.query_dim:
            raise FeatureError(f"{path}: text features of width {tokens.shape[1]}; the model expects "
                               f"(tokens, {self.query_dim})")
        return preprocess_query_tokens(tokens, self.layout)
