"""SynthVTG features: decode the MP4s, run the tiny random CLIP, write the caches both models read.

R²-Tuning cache (spec r2-tuning.md §2.1 layout, tiny CLIP): ``clip_tiny16_vid_k4/<vid>.npy`` (T, 4, 17, 64) and
``clip_tiny16_txt_k4/<qid>.npy`` (L, 4, 64), float16, the last 4 blocks before ``ln_post``/``ln_final``.
FlashVTG cache (spec flashvtg.md §8 layout), two video streams like the official SlowFast + CLIP pair:
``clip_features/<vid>.npz`` key ``features`` (T, 64) projected image embeddings ``ln_post(CLS) @ proj``, and
``clip_patch_features/<vid>.npz`` key ``features`` (T, 512) patch-token statistics (below); the text is
``clip_text_features/qid<qid>.npz`` key ``last_hidden_state`` (L, 320): each token's projected embedding (64) and
its hidden states of the last 4 text blocks (4 × 64, the R²-Tuning text cache's values).
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
FLASHVTG_PATCH_DIR = "clip_patch_features"
FLASHVTG_TEXT_DIR = "clip_text_features"
FLASHVTG_VIDEO_DIRS = (FLASHVTG_VIDEO_DIR, FLASHVTG_PATCH_DIR)  # concatenation order of the FlashVTG layout
FLASHVTG_TEXT_FORM = "projected+layers"  # recorded in synthvtg.json: a folder with older text rows is re-extracted


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


def patch_statistics(layers: torch.Tensor) -> torch.Tensor:
    """FlashVTG's second SynthVTG stream: per kept layer, the max and the mean of the patch tokens (CLS excluded).

    (N, K, P, D) hidden states -> (N, K * 2 * D), layer-major ``[max_1, mean_1, ..., max_K, mean_K]``. The pooled
    embedding alone is one 64-d row, half of which the official input dropout (0.5) removes at every step; a
    linear probe on held-out clips reads which colours are visible from these statistics far better (91.8 % of
    clips exactly right vs 71.7 % from the pooled row), since a max over patches keeps "some patch is red" that
    the CLS mixes with the background. It reads the same hidden states as the R²-Tuning cache, so it is free.
    """
    patches = layers[:, :, 1:]
    stats = torch.stack((patches.amax(dim=2), patches.mean(dim=2)), dim=2)  # (N, K, 2, D)
    return stats.flatten(1)


def flashvtg_text_rows(projected: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """FlashVTG's SynthVTG text rows: each token's projected embedding next to its hidden states of the kept layers.

    Args: projected (L, E) float32; layers (L, K, D) the float16 R²-Tuning text cache of the same query.
    Returns (L, E + K * D) float32, ``[projected, layer_1, ..., layer_K]``. Why wider than the projected row:
    FlashVTG pairs each video with its batch neighbour's query as a negative, and with six colours many of those
    queries name a colour the video shows; with only the 64-d projected row HIT@1 stayed below 60 on two of three
    seeds, with the layers beside it all three reached 60 (docs/training.md).
    """
    return np.concatenate([projected.astype(np.float32), layers.astype(np.float32).reshape(len(layers), -1)], axis=1)


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
        patch_stats = patch_statistics(layers)  # (N, K * 2 * D)
        start = 0
        for vid, array in pending:
            stop = start + len(array)
            _save_npy(video_dir / f"{vid}.npy", layers[start:stop].to(torch.float16).numpy())
            _save_npz(root / FLASHVTG_VIDEO_DIR / f"{vid}.npz", features=pooled[start:stop].numpy())
            _save_npz(root / FLASHVTG_PATCH_DIR / f"{vid}.npz", features=patch_stats[start:stop].numpy())
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
                      last_hidden_state=flashvtg_text_rows(query_projected[:length].numpy(), cached))
    return {"videos": len(videos), "queries": len(records)}
