"""Shared builders of the robustness tests for annotations, predictions, features and checkpoints.

Valid records of every annotation / prediction format (each test then breaks one field), writers, pickles that would
create a marker file when unpickled, and tiny R²-Tuning / FlashVTG checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

# ------------------------------------------------------------------------------------------------ annotation formats
MOMENT_RECORD = {"qid": 7, "query": "a man opens a door", "duration": 30.0, "vid": "v1",
                 "relevant_windows": [[2.0, 8.0]]}
QV_SCORES = {"relevant_clip_ids": [1, 2], "saliency_scores": [[1, 2, 3], [4, 4, 4]]}
TVSUM_LINE = {"qid": "t1", "vid": "t1", "query": "changing a tire", "domain": "VT", "label": [[1] * 20] * 4}
YOUTUBE_LINE = {"qid": "y1", "vid": "y1", "query": "dog", "domain": "dog", "match": [1, -1, 0], "frames": "300",
                "fps": 30.0}
TVSUM_OBJECT = {"anno": [[1] * 20] * 4, "title": "changing a tire", "domain": "VT", "frames": 240, "fps": 30.0}
YOUTUBE_OBJECT = {"match": [1, -1, 0], "info": ["", "", "", "", "", "title"], "domain": "dog", "frames": "300",
                  "fps": 30.0}

# benchmark -> (file suffix, a valid record (one line, or one video's object), fields the format requires)
FORMATS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "qvhighlights": (".jsonl", {**MOMENT_RECORD, **QV_SCORES}, ("qid", "query", "duration", "vid")),
    "charades_sta": (".jsonl", MOMENT_RECORD, ("qid", "query", "duration", "vid", "relevant_windows")),
    "tacos": (".jsonl", MOMENT_RECORD, ("qid", "query", "duration", "vid", "relevant_windows")),
    "ego4d_nlq": (".jsonl", MOMENT_RECORD, ("qid", "query", "duration", "vid", "relevant_windows")),
    "tvsum": (".jsonl", TVSUM_LINE, ("qid", "vid", "query", "domain", "label")),
    "youtube_highlights": (".jsonl", YOUTUBE_LINE, ("qid", "vid", "query", "match", "domain", "frames", "fps")),
    "tvsum_object": (".json", TVSUM_OBJECT, ("anno", "title", "domain")),
    "youtube_object": (".json", YOUTUBE_OBJECT, ("match", "info", "domain", "frames", "fps")),
}
BENCHMARK_OF = {"tvsum_object": "tvsum", "youtube_object": "youtube_highlights"}

# (format, field, wrong value, words the error must contain)
WRONG_TYPES: list[tuple[str, str, Any, str]] = [
    ("qvhighlights", "qid", 1.5, "integer or a non-empty string"),
    ("qvhighlights", "qid", True, "integer or a non-empty string"),
    ("qvhighlights", "query", 5, "non-empty string"),
    ("qvhighlights", "vid", ["v1"], "non-empty string"),
    ("qvhighlights", "duration", "150", "video length in seconds"),
    ("qvhighlights", "duration", 0, "video length in seconds"),
    ("qvhighlights", "relevant_windows", "2-8", "[[start, end], ...]"),
    ("qvhighlights", "relevant_windows", [[2.0]], "[[start, end], ...]"),
    ("qvhighlights", "relevant_windows", [[2, "8"]], "[[start, end], ...]"),
    ("qvhighlights", "relevant_clip_ids", [1, -2], "clip indices"),
    ("qvhighlights", "saliency_scores", [[1, 2], [3, 4]], "[s1, s2, s3]"),
    ("charades_sta", "relevant_windows", [], "at least one window"),
    ("tacos", "duration", None, "video length in seconds"),
    ("ego4d_nlq", "qid", {"id": 1}, "integer or a non-empty string"),
    ("tvsum", "label", [[1] * 19] * 4, "of 20 finite numbers"),
    ("tvsum", "domain", 3, "non-empty string"),
    ("youtube_highlights", "match", "1,-1", "non-empty list of finite numbers"),
    ("youtube_highlights", "frames", "many", "a number > 0"),
    ("youtube_highlights", "fps", -30, "a number > 0"),
    ("tvsum_object", "anno", "1 2 3", "per-clip lists of 20"),
    ("tvsum_object", "title", 12, "non-empty string"),
    ("youtube_object", "info", ["title"], "element 5 is the title"),
    ("youtube_object", "fps", "fast", "a number > 0"),
]

# (format, field, a JSON text holding NaN or Infinity for that field)
NON_FINITE: list[tuple[str, str, str]] = [
    ("qvhighlights", "duration", "NaN"),
    ("qvhighlights", "relevant_windows", "[[0, Infinity]]"),
    ("qvhighlights", "saliency_scores", "[[1, 2, NaN], [4, 4, 4]]"),
    ("charades_sta", "relevant_windows", "[[-Infinity, 3]]"),
    ("tvsum", "label", "[" + ", ".join(["[" + ", ".join(["1"] * 19 + ["NaN"]) + "]"] * 4) + "]"),
    ("youtube_highlights", "match", "[1, NaN, 0]"),
    ("youtube_highlights", "fps", "Infinity"),
    ("youtube_object", "frames", "NaN"),
]


def dump_line(record: dict[str, Any], raw: dict[str, str] | None = None) -> str:
    """One JSON line; ``raw`` maps fields to JSON text written verbatim (NaN, Infinity)."""
    text = json.dumps({key: value for key, value in record.items() if key not in (raw or {})})
    for key, value in (raw or {}).items():
        text = text[:-1] + (", " if text != "{}" else "") + f'"{key}": {value}' + "}"
    return text


def write_format(path_base: Path, fmt: str, records: list[dict[str, Any]],
                 raw: dict[str, str] | None = None) -> Path:
    """Write ``records`` in ``fmt``: JSON lines, or an object keyed ``vid0``, ``vid1``, ... for the .json formats."""
    suffix = FORMATS[fmt][0]
    path = path_base.with_suffix(suffix)
    if suffix == ".jsonl":
        path.write_text("".join(dump_line(r, raw) + "\n" for r in records), encoding="utf-8")
    else:
        body = ", ".join(f'"vid{i}": {dump_line(r, raw)}' for i, r in enumerate(records))
        path.write_text("{" + body + "}", encoding="utf-8")
    return path


def load_format(fmt: str, path: Path) -> list:
    from vtgkit.data.benchmarks import get_benchmark

    return get_benchmark(BENCHMARK_OF.get(fmt, fmt)).load(path)


# ------------------------------------------------------------------------------------------------ evaluator inputs
EVAL_GT = [
    {"qid": 1, "query": "q1", "vid": "a", "duration": 20, "relevant_windows": [[0, 8]], "relevant_clip_ids": [0, 1],
     "saliency_scores": [[4, 2, 3], [1, 1, 1]]},
    {"qid": 2, "query": "q2", "vid": "b", "duration": 10, "relevant_windows": [[2, 6]], "relevant_clip_ids": [1],
     "saliency_scores": [[2, 2, 2]]},
]
EVAL_PREDICTIONS = [
    {"qid": 1, "pred_relevant_windows": [[0, 8, 0.9], [10, 12, 0.2]], "pred_saliency_scores": [0.1] * 10},
    {"qid": 2, "pred_relevant_windows": [[2, 4, 0.5]], "pred_saliency_scores": [0.2] * 5},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ hostile pickles
class CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


class ExecsMarker:
    """Unpickling this runs ``exec`` of code that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def write_hostile(path: Path, kind: str, marker: Path, payload: type = CreatesMarker) -> Path:
    """A checkpoint-looking file whose unpickling would create ``marker``.

    kind: ``"zip"`` (torch.save), ``"legacy"`` (torch.save, pre-1.6 format) or ``"caffe2"`` (a plain pickle of
    ``{"blobs": {...}}`` as Detectron/SlowFast ``.pkl`` weights, protocol 2).
    """
    if kind == "caffe2":
        with path.open("wb") as handle:
            pickle.dump({"blobs": {"conv1_w": np.zeros((2, 2), np.float32), "hook": payload(marker)}}, handle,
                        protocol=2)
        return path
    state = {"coef": torch.zeros(4), "adapter.video_map.2.weight": torch.zeros(8, 10)}
    torch.save({"state_dict": state, "meta": {"hook": payload(marker)}}, path,
               _use_new_zipfile_serialization=kind == "zip")
    return path


# ------------------------------------------------------------------------------------------------ tiny checkpoints
R2_TINY = {"video_dims": 8, "query_dims": 6, "tokens_per_frame": 3, "num_layers": 2, "hidden_dims": 16,
           "num_heads": 2}
FLASHVTG_TINY = {"video_dim": 10, "query_dim": 6, "hidden_dim": 16, "num_heads": 4, "feedforward_dim": 32,
                 "num_dummies": 3, "num_dummy_layers": 1, "num_t2v_layers": 2, "num_encoder_layers": 1,
                 "max_query_len": 8, "buffer_size": 128}
FLASHVTG_FOLDERS = ("slowfast_features", "clip_features")  # widths 4 + 4 (+ 2 TEF = video_dim 10)


def r2_model(**overrides: Any) -> Any:
    from vtgkit.models.r2tuning import R2Tuning, R2TuningConfig

    torch.manual_seed(0)
    return R2Tuning(R2TuningConfig(**{**R2_TINY, **overrides}))


def write_r2_official(path: Path) -> Path:
    """A tiny R²-Tuning checkpoint in the official ``{'state_dict', 'meta'}`` layout."""
    from vtgkit.models.r2tuning.convert import save_official_checkpoint

    return save_official_checkpoint(r2_model(), path)


def write_r2_vtgkit(folder: Path) -> Path:
    from vtgkit.models.r2tuning.convert import save_vtgkit

    save_vtgkit(r2_model(), folder)
    return folder


def write_flashvtg_official(path: Path) -> Path:
    """A tiny FlashVTG ``model_best.ckpt``: ``{"model", "opt"}`` with argparse options naming its feature folders."""
    import dataclasses

    from vtgkit.models.flashvtg import PRESETS, FlashVTG

    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["qvhighlights"], **FLASHVTG_TINY)
    model = FlashVTG(config)
    options = argparse.Namespace(
        v_feat_dim=config.video_dim, use_tef=True, t_feat_dim=config.query_dim, hidden_dim=16, nheads=4,
        num_dummies=3, t2v_layers=2, enc_layers=1, dummy_layers=1, dim_feedforward=32, kernel_size=5,
        num_conv_layers=1, num_mlp_layers=5, clip_length=2, max_q_l=8, max_v_l=75, dset_name="hl",
        v_feat_dirs=[f"/authors/data/{name}" for name in FLASHVTG_FOLDERS],
        t_feat_dir="/authors/data/clip_text_features",
        device=torch.device("cpu"),
    )
    torch.save({"model": model.state_dict(), "opt": options, "epoch": 1}, path)
    return path


def write_flashvtg_features(root: Path, vids: dict[str, int], qids: list[int], width: int = 4,
                            query_dim: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for folder in FLASHVTG_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for vid, length in vids.items():
            np.savez(root / folder / f"{vid}.npz", features=rng.standard_normal((length, width)).astype(np.float16))
    (root / "clip_text_features").mkdir(parents=True, exist_ok=True)
    for qid in qids:
        np.savez(root / "clip_text_features" / f"qid{qid}.npz",
                 last_hidden_state=rng.standard_normal((5, query_dim)).astype(np.float32))
    return root


def write_r2_cache(root: Path, videos: dict[str, int], queries: dict[str, int]) -> Path:
    """R²-Tuning cache folders ``clip_b32_{vid,txt}_k2`` matching :data:`R2_TINY`."""
    rng = np.random.default_rng(0)
    k, p, dv, dq = R2_TINY["num_layers"], R2_TINY["tokens_per_frame"], R2_TINY["video_dims"], R2_TINY["query_dims"]
    for folder, sizes, shape in (("vid", videos, (k, p, dv)), ("txt", queries, (k, dq))):
        directory = root / f"clip_b32_{folder}_k{k}"
        directory.mkdir(parents=True, exist_ok=True)
        for key, length in sizes.items():
            np.save(directory / f"{key}.npy", rng.standard_normal((length, *shape)).astype(np.float16))
    return root


def run_cli(*argv: str) -> int:
    from vtgkit.cli.main import main

    return main([str(arg) for arg in argv])


# ------------------------------------------------------------------------------------------------ 1 GB lines
PEAK_RSS_CHILD = textwrap.dedent("""
    import resource, sys
    from vtgkit.errors import AnnotationError
    {imports}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        {call}
    except AnnotationError as error:
        print("ERROR", error)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("PEAK_GROWTH_KB", after - before)
""")


def one_gigabyte_line(path: Path, prefix: bytes) -> Path:
    """A 1 GiB single-line file in no time and no disk: ``prefix`` then a sparse run of zero bytes."""
    with path.open("wb") as handle:
        handle.write(prefix)
        handle.truncate(2**30)
    return path


def run_bounded(imports: str, call: str) -> tuple[str, int]:
    """Run ``call`` in a fresh interpreter: (its output, growth of its peak RSS during the call in bytes)."""
    code = PEAK_RSS_CHILD.format(imports=imports, call=call)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                       os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    growth = int(result.stdout.split("PEAK_GROWTH_KB")[1])
    return result.stdout, growth * 1024
