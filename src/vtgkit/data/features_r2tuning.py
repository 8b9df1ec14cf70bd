"""Reader of R²-Tuning's cached CLIP features (spec r2-tuning.md §2.1).

Layout under a dataset root::

    <root>/clip_<tag>_vid_k<K>/<video id>.npy   (T, K, P, Dv) float16: last K CLIP visual blocks, all P tokens
    <root>/clip_<tag>_txt_k<K>/<query id>.npy   (L, K, Dq)    float16: last K CLIP text blocks, real tokens only

Shapes are read from each file (only K is fixed by the folder name), so other CLIP sizes work unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtgkit.data.benchmarks import feature_folder_names
from vtgkit.errors import FeatureError, FeatureFileNotFoundError

VIDEO_AXES = "(T clips, K layers, P tokens, Dv width)"
QUERY_AXES = "(L tokens, K layers, Dq width)"


def _check_key(key: str, kind: str) -> str:
    # Ids become file names: refuse anything that would leave the feature folder.
    if not key or "/" in key or "\\" in key or key in {".", ".."}:
        raise FeatureError(f"{kind} id {key!r} cannot name a feature file (empty, or contains a path separator)")
    return key


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file; memory-maps it, so no data is read but a truncated file is caught."""
    array = load_npy(path, mmap=True)
    return tuple(int(x) for x in array.shape), array.dtype


def load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    """Load a ``.npy`` file (memory-mapped when ``mmap``) and turn every numpy failure into a ``FeatureError``."""
    if not path.is_file():
        raise FeatureFileNotFoundError(f"feature file not found: {path}")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        # np.load reports a file shorter than its header promises as a ValueError (mmap length / reshape).
        raise FeatureError(f"{path}: cannot read the array, the file is truncated or not a .npy file ({error})") \
            from None
    if not isinstance(array, np.ndarray):
        raise FeatureError(f"{path}: expected one array (.npy), got {type(array).__name__}")
    return array


_EXPONENT_MASKS = {np.dtype(np.float16): (np.uint16, 0x7C00), np.dtype(np.float32): (np.uint32, 0x7F800000)}


def _all_finite(array: np.ndarray) -> bool:
    """Whether no entry is NaN or inf. For float16/32 tests the exponent bits (all ones = NaN/inf) on an integer
    view: about twice as fast as ``np.isfinite`` on float16, which converts every value."""
    if array.dtype in _EXPONENT_MASKS:
        unsigned, mask = _EXPONENT_MASKS[array.dtype]
        return not np.any((array.view(unsigned) & mask) == mask)
    return bool(np.isfinite(array).all())


class R2TuningFeatureReader:
    """Reads and validates the official cache of one dataset root.

    Args:
        root: the dataset folder holding ``clip_<tag>_vid_k<K>`` and ``clip_<tag>_txt_k<K>``.
        arch: CLIP architecture the cache was extracted with (names the folders).
        num_layers: K, the number of stored CLIP layers (names the folders; files must agree).
        dtype: the stored dtype every file must have.
        mmap: memory-map files instead of reading them at once (the data is copied when validated).
        video_tokens: (P, Dv) every video file must end with, e.g. the model's ``(tokens_per_frame, video_dims)``;
            None reads them from each file.
        query_dims: Dq every query file must end with; None reads it from each file.
    """

    def __init__(self, root: str | Path, arch: str = "ViT-B/32", num_layers: int = 4,
                 dtype: np.dtype | type = np.float16, mmap: bool = True,
                 video_tokens: tuple[int, int] | None = None, query_dims: int | None = None) -> None:
        self.root = Path(root)
        # Checked per file, so a cache of another CLIP fails its own queries with the file named, not the model.
        self.video_tail = tuple(video_tokens) if video_tokens is not None else None
        self.query_tail = (query_dims,) if query_dims is not None else None
        video_folder, query_folder = feature_folder_names(arch, num_layers)
        self.video_dir = self.root / video_folder
        self.query_dir = self.root / query_folder
        self.num_layers = num_layers
        self.dtype = np.dtype(dtype)
        self.mmap = mmap

    def video_path(self, video_id: str) -> Path:
        return self.video_dir / f"{_check_key(video_id, 'video')}.npy"

    def query_path(self, query_id: str) -> Path:
        return self.query_dir / f"{_check_key(query_id, 'query')}.npy"

    def video_shape(self, video_id: str) -> tuple[int, ...]:
        """Validated shape (T, K, P, Dv) read from the file header only."""
        path = self.video_path(video_id)
        shape, dtype = read_npy_header(path)
        self._check_layout(path, shape, dtype, ndim=4, axes=VIDEO_AXES, tail=self.video_tail)
        return shape

    def query_shape(self, query_id: str) -> tuple[int, ...]:
        """Validated shape (L, K, Dq) read from the file header only."""
        path = self.query_path(query_id)
        shape, dtype = read_npy_header(path)
        self._check_layout(path, shape, dtype, ndim=3, axes=QUERY_AXES, tail=self.query_tail)
        return shape

    def read_video(self, video_id: str) -> np.ndarray:
        """Video features (T, K, P, Dv) in the stored dtype, checked for shape, dtype and finiteness."""
        return self._read(self.video_path(video_id), ndim=4, axes=VIDEO_AXES, tail=self.video_tail)

    def read_query(self, query_id: str) -> np.ndarray:
        """Query features (L, K, Dq) in the stored dtype, checked for shape, dtype and finiteness."""
        return self._read(self.query_path(query_id), ndim=3, axes=QUERY_AXES, tail=self.query_tail)

    def _read(self, path: Path, *, ndim: int, axes: str, tail: tuple[int, ...] | None) -> np.ndarray:
        array = load_npy(path, mmap=self.mmap)
        self._check_layout(path, array.shape, array.dtype, ndim=ndim, axes=axes, tail=tail)
        try:
            array = np.array(array)  # an owned, writable copy (reads the memory map)
        except (ValueError, OSError) as error:
            raise FeatureError(f"{path}: cannot read the array data ({error})") from None
        if not _all_finite(array):
            bad = np.argwhere(~np.isfinite(array))
            raise FeatureError(f"{path}: expected finite values; found {len(bad)} NaN/inf entries "
                               f"(first at index {tuple(int(i) for i in bad[0])})")
        return array

    def _check_layout(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, *, ndim: int, axes: str,
                      tail: tuple[int, ...] | None = None) -> None:
        if len(shape) != ndim:
            raise FeatureError(f"{path}: expected a {ndim}-d array {axes}; got shape {tuple(shape)}")
        if shape[1] != self.num_layers:
            raise FeatureError(f"{path}: expected K = {self.num_layers} stored layers on axis 1 (the folder name "
                               f"says k{self.num_layers}) {axes}; got shape {tuple(shape)}")
        if any(size == 0 for size in shape):
            raise FeatureError(f"{path}: expected non-empty axes {axes}; got shape {tuple(shape)}")
        if dtype != self.dtype:
            raise FeatureError(f"{path}: expected dtype {self.dtype}; got {dtype}")
        if tail is not None and tuple(shape[2:]) != tail:
            raise FeatureError(f"{path}: expected trailing axes {tail} {axes} (what the model was built for); got "
                               f"shape {tuple(shape)}. Were these features extracted with another CLIP?")
