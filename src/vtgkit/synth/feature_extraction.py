"""SynthVTG features: decode the MP4s, run the tiny random CLIP, write the caches both models read.

R²-Tuning cache (spec r2-tuning.md §2.1 layout, tiny CLIP): ``clip_tiny16_vid_k4/<vid>.npy`` (T, 4, 17, 64) and
``clip_tiny16_txt_k4/<qid>.npy`` (L, 4, 64), float16, the last 4 blocks before ``ln_post``/``ln_final``.
FlashVTG cache (spec flashvtg.md §8 layout): ``clip_features/<vid>.npz`` key ``features`` (T, 64) projected image
embeddings and ``clip_text_features/qid<qid>.npz`` key ``last_hidden_state`` (L, 64) projected token embeddings.
Frames are decoded with the real extraction decoder (ffmpeg fps filter) at one frame per clip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtgkit.data.benchmarks import feature_folder_names
from vtgkit.errors import VideoError
from vtgkit.features.clip_model import CLIP
from vtgkit.features.decoding import iter_fps_filter_frames
from vtgkit.features.frame_transforms import clip_input_from_uint8
from vtgkit.features.tokenizer import default_tokenizer
from vtgkit.synth.tiny_clip import TINY_CLIP_ARCH

NUM_LAYERS = 4
FLASHVTG_VIDEO_DIR = "clip_features"
FLASHVTG_TEXT_DIR = "clip_text_features"


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Temp name + rename without fsync: thousands of tiny files, and an interrupted extraction is redone anyway
    # (the dataset summary records finished features last, see pipeline.prepare_synthvtg).
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as stream:
        np.save(stream, array)
    temp.replace(path)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as stream:
        np.savez(stream, **arrays)
    temp.replace(path)


def _read_split(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _decode_clips(path: Path, clip_len: float, size: int, expected: int) -> np.ndarray:
    frames = list(iter_fps_filter_frames(path, 1.0 / clip_len, size=size))
    if len(frames) < expected:
        raise VideoError(f"{path}: decoded {len(frames)} clips at {1 / clip_len:g} fps, annotations say {expected}")
    return np.stack(frames[:expected])  # (T, 3, S, S) uint8


@torch.inference_mode()
def extract_synthvtg_features(root: str | Path, clip: CLIP, *, batch_frames: int = 512,
                               batch_queries: int = 256) -> dict[str, int]:
    """Write both caches for every ``synthvtg_*.jsonl`` split under ``root``; returns video / query counts."""
    root = Path(root)
    video_dir_name, text_dir_name = feature_folder_names(TINY_CLIP_ARCH, NUM_LAYERS)
    video_dir, text_dir = root / video_dir_name, root / text_dir_name
    clip_len = json.loads((root / "synthvtg.json").read_text())["scene_config"]["clip_len"]
    size = clip.config.image_resolution
    records = [record for path in sorted(root.glob("synthvtg_*.jsonl")) for record in _read_split(path)]
    videos: dict[str, int] = {}
    for record in records:
        videos[record["vid"]] = round(record["duration"] / clip_len)

    pending: list[tuple[str, np.ndarray]] = []

    def flush() -> None:
        frames = torch.from_numpy(np.concatenate([array for _, array in pending]))
        layers = clip.encode_image_layers(clip_input_from_uint8(frames), NUM_LAYERS)  # (N, K, P, D)
        pooled = clip.visual.ln_post(layers[:, -1, 0]) @ clip.visual.proj  # (N, E): encode_image without rerun
        start = 0
        for vid, array in pending:
            stop = start + len(array)
            _save_npy(video_dir / f"{vid}.npy", layers[start:stop].to(torch.float16).numpy())
            _save_npz(root / FLASHVTG_VIDEO_DIR / f"{vid}.npz", features=pooled[start:stop].numpy())
            start = stop
        pending.clear()

    for vid, num_clips in videos.items():
        pending.append((vid, _decode_clips(root / "videos" / f"{vid}.mp4", clip_len, size, num_clips)))
        if sum(len(array) for _, array in pending) >= batch_frames:
            flush()
    if pending:
        flush()

    tokenizer = default_tokenizer()
    for start in range(0, len(records), batch_queries):
        chunk = records[start : start + batch_queries]
        tokens = tokenizer.tokenize([record["query"] for record in chunk], clip.config.context_length)  # (N, 77)
        lengths = (tokens.argmax(dim=-1) + 1).tolist()  # SOT ... EOT inclusive (EOT has the highest id)
        # The causal mask makes cutting after the longest EOT exact for every query of the chunk.
        layers = clip.encode_text_layers(tokens[:, : max(lengths)], NUM_LAYERS)  # (N, K, L, D)
        projected = clip.ln_final(layers[:, -1]) @ clip.text_projection  # (N, L, E)
        for record, length, query_layers, query_projected in zip(chunk, lengths, layers, projected, strict=True):
            cached = query_layers[:, :length].transpose(0, 1).to(torch.float16).numpy()  # (L, K, D)
            _save_npy(text_dir / f"{record['qid']}.npy", cached)
            _save_npz(root / FLASHVTG_TEXT_DIR / f"qid{record['qid']}.npz",
                            last_hidden_state=query_projected[:length].numpy())
    return {"videos": len(videos), "queries": len(records)}
