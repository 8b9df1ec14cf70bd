"""Tiny data roots in the official on-disk layouts, for training tests of the real benchmark recipes.

Annotations are a few records of the real files under ../shared/data/annotations (the calling test skips when
they are absent); features are small random arrays written in exactly the folders, file names, keys and dtypes the
official readers expect (spec flashvtg.md §8, r2-tuning.md §2.1), only narrower than the real extractors' widths.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ANNOTATIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "annotations"

# Feature widths of the tiny layouts (real: SlowFast 2304, CLIP 512, InternVideo2 768, LLaMA 4096).
SLOWFAST_DIM, CLIP_DIM, TEXT_DIM = 8, 4, 6
TINY_FLASHVTG = {"video_dim": SLOWFAST_DIM + CLIP_DIM + 2, "query_dim": TEXT_DIM, "hidden_dim": 16, "num_heads": 2,
                 "feedforward_dim": 32, "num_dummies": 3, "num_dummy_layers": 1, "num_t2v_layers": 1,
                 "num_encoder_layers": 1}
TINY_R2TUNING = {"video_dims": 12, "query_dims": 10, "tokens_per_frame": 5, "hidden_dims": 16, "num_heads": 4}


def annotation_file(*parts: str) -> Path:
    path = ANNOTATIONS.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"real annotation file {path} not found (place ../shared beside the repository)")
    return path


def read_jsonl(path: Path, keep: Any = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` records of a jsonl file for which ``keep(record)`` holds."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if keep is None or keep(record):
                records.append(record)
                if limit is not None and len(records) == limit:
                    break
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _rows(rng: np.random.Generator, count: int, dim: int, dtype: Any = np.float16) -> np.ndarray:
    return rng.standard_normal((count, dim)).astype(dtype)


def write_flashvtg_video(root: Path, folders: tuple[tuple[str, int], ...], vid: str, clips: int,
                         rng: np.random.Generator) -> None:
    """``<folder>/<vid>.npz`` with key ``features`` (clips, dim) float16 per folder; the second folder gets one row
    more, as some official extractors do (the reader cuts every folder to the shortest)."""
    for index, (folder, dim) in enumerate(folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
        np.savez(root / folder / f"{vid}.npz", features=_rows(rng, clips + index, dim))


def write_flashvtg_query(root: Path, folder: str, stem: str, tokens: int, rng: np.random.Generator) -> None:
    """``<folder>/<stem>.npz`` with ``last_hidden_state`` (tokens, dim) and ``pooler_output`` (dim,), float32."""
    (root / folder).mkdir(parents=True, exist_ok=True)
    hidden = _rows(rng, tokens, TEXT_DIM, np.float32)
    np.savez(root / folder / f"{stem}.npz", last_hidden_state=hidden, pooler_output=hidden[-1])


# ----------------------------------------------------------------------------------------------- FlashVTG roots
def flashvtg_moment_root(root: Path, benchmark: str, train: int = 6, evaluate: int = 3) -> dict[str, Any]:
    """A FlashVTG QVHighlights / Charades-STA / TACoS / QVHighlights-InternVideo2 root (features + annotations)."""
    rng = np.random.default_rng(0)
    if benchmark in ("qvhighlights", "qvhighlights_internvideo2"):
        sources = (annotation_file("qvhighlights", "highlight_train_release.jsonl"),
                   annotation_file("qvhighlights", "highlight_val_release.jsonl"))
        names = ("highlight_train_release_IV2.jsonl" if benchmark.endswith("internvideo2")
                 else "highlight_train_release.jsonl", "highlight_val_release.jsonl")
        clip_len, text_stem = 2.0, "qid{qid}"
    elif benchmark in ("charades_sta", "charades_sta_internvideo2"):
        sources = (annotation_file("charades_sta", "charades_sta_train_tvr_format.jsonl"),
                   annotation_file("charades_sta", "charades_sta_test_tvr_format.jsonl"))
        names = ("charades_sta_train_tvr_format.jsonl", "charades_sta_test_tvr_format.jsonl")
        clip_len, text_stem = 1.0, "qid{qid}"
    elif benchmark == "tacos":
        sources = (annotation_file("tacos", "train.jsonl"), annotation_file("tacos", "test.jsonl"))
        names = ("train.jsonl", "test.jsonl")
        clip_len, text_stem = 2.0, "{qid}"
    else:
        raise ValueError(benchmark)
    if benchmark == "qvhighlights_internvideo2":
        video_folders, text_folder = (("qvhighlight_6b", SLOWFAST_DIM + CLIP_DIM),), "qvhighlight_llama_text_feature"
    elif benchmark == "charades_sta_internvideo2":
        video_folders, text_folder = (("charade_sta_6b", SLOWFAST_DIM + CLIP_DIM),), "charade_sta_llama_text_feature"
    else:
        video_folders, text_folder = (("slowfast_features", SLOWFAST_DIM), ("clip_features", CLIP_DIM)), \
            "clip_text_features"
    # Short videos keep the test fast: TACoS videos run for minutes, so take the first records under 200 s.
    keep = (lambda record: record["duration"] < 200) if benchmark == "tacos" else None
    split_records = [read_jsonl(sources[0], keep, train), read_jsonl(sources[1], keep, evaluate)]
    for records, name in zip(split_records, names, strict=True):
        write_jsonl(root / name, records)
        for record in records:
            clips = max(1, math.ceil(record["duration"] / clip_len))
            if benchmark.startswith("qvhighlights"):
                clips = min(clips, 75)
            write_flashvtg_video(root, video_folders, record["vid"], clips, rng)
            write_flashvtg_query(root, text_folder, text_stem.format(qid=record["qid"]), 3 + len(record["query"]) % 5,
                                 rng)
    return {"train": root / names[0], "eval": root / names[1], "records": split_records}


def flashvtg_highlight_root(root: Path, benchmark: str, domain: str, train: int = 4) -> dict[str, Any]:
    """A FlashVTG TVSum / YouTube-HL root: the domain's rows of the official jsonl files plus their features."""
    rng = np.random.default_rng(1)
    if benchmark == "tvsum":
        sources = (annotation_file("tvsum", "tvsum_train.jsonl"), annotation_file("tvsum", "tvsum_val.jsonl"))
        names = ("tvsum_train.jsonl", "tvsum_val.jsonl")
        folders = (("vid_slowfast", SLOWFAST_DIM), ("vid_clip", CLIP_DIM))
    else:
        sources = (annotation_file("youtube_highlights", "youtube_train.jsonl"),
                   annotation_file("youtube_highlights", "youtube_valid.jsonl"))
        names = ("youtube_train.jsonl", "youtube_valid.jsonl")
        folders = (("vid_clip", CLIP_DIM), ("vid_slowfast", SLOWFAST_DIM))  # spec §1.1: CLIP first
    # A few rows of the domain (short videos first) plus one row of another domain, which training must leave out.
    other = read_jsonl(sources[0], lambda record: record["domain"] != domain, 1)
    split_records = []
    for source, limit in zip(sources, (train, 2), strict=True):
        rows = sorted(read_jsonl(source, lambda record: record["domain"] == domain), key=lambda r: len(r["label"]))
        split_records.append(rows[:limit])
    for records, name, extra in zip(split_records, names, (other, []), strict=True):
        write_jsonl(root / name, records + extra)
        for record in records + extra:
            write_flashvtg_video(root, folders, record["vid"], len(record["label"]), rng)
            write_flashvtg_query(root, "txt_clip", str(record["qid"]), 4, rng)
    return {"train": root / names[0], "eval": root / names[1], "records": split_records}


# ----------------------------------------------------------------------------------------------- R²-Tuning roots
def write_r2tuning_features(root: Path, vid: str, clips: int, tokens: int, rng: np.random.Generator) -> None:
    """``clip_b32_vid_k4/<vid>.npy`` (clips, 4, P, Dv) and ``clip_b32_txt_k4/<vid>.npy`` (L, 4, Dq), float16."""
    video_dir, text_dir = root / "clip_b32_vid_k4", root / "clip_b32_txt_k4"
    video_dir.mkdir(parents=True, exist_ok=True)
    text_dir.mkdir(parents=True, exist_ok=True)
    p, dv, dq = TINY_R2TUNING["tokens_per_frame"], TINY_R2TUNING["video_dims"], TINY_R2TUNING["query_dims"]
    np.save(video_dir / f"{vid}.npy", rng.standard_normal((clips, 4, p, dv)).astype(np.float16))
    np.save(text_dir / f"{vid}.npy", rng.standard_normal((tokens, 4, dq)).astype(np.float16))


def r2tuning_highlight_root(root: Path, benchmark: str, domain: str, train: int = 4) -> dict[str, Any]:
    """An R²-Tuning TVSum / YouTube root: ``<name>_anno.json`` (a few real videos) + ``<name>_splits.json``."""
    rng = np.random.default_rng(2)
    if benchmark == "tvsum":
        anno = json.loads(annotation_file("tvsum", "tvsum_train_sfc.json").read_text())
        splits = json.loads(annotation_file("tvsum", "tvsum_splits.json").read_text())
        name, table_name = "tvsum_anno.json", "tvsum_splits.json"
    else:
        anno = json.loads(annotation_file("youtube_highlights", "youtube_anno.json").read_text())
        splits = json.loads(annotation_file("youtube_highlights", "youtube_splits.json").read_text())
        name, table_name = "youtube_anno.json", "youtube_splits.json"

    def length(vid: str) -> int:
        return len(anno[vid]["anno"] if benchmark == "tvsum" else anno[vid]["match"])

    def usable(vid: str) -> bool:  # a YouTube video with a single segment has no positive/negative contrast
        return vid in anno and (benchmark == "tvsum" or 4 <= length(vid) <= 60)

    table = {domain: {"train": [v for v in splits[domain]["train"] if usable(v)][:train],
                      "val": [v for v in splits[domain]["val"] if usable(v)][:2]}}
    # One listed id without an annotation: the official code skips it, vtgkit counts it.
    table[domain]["train"].append("not-annotated-video")
    kept = {vid: anno[vid] for split in ("train", "val") for vid in table[domain][split] if vid in anno}
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(kept), encoding="utf-8")
    (root / table_name).write_text(json.dumps(table), encoding="utf-8")
    for vid in kept:
        # TVSum features may run a clip longer than the annotation (both are cut to the shorter, spec §8.2).
        write_r2tuning_features(root, vid, length(vid) + (1 if benchmark == "tvsum" else 0), 5, rng)
    return {"anno": root / name, "splits": root / table_name, "table": table}
