"""Ground truth of YouTube Highlights and TVSum: the jsonl files or R²-Tuning's annotation + split tables.

* jsonl (``youtube_valid.jsonl``, ``tvsum_val.jsonl``; FlashVTG/UniVTG format): one row per video with ``qid``/``vid``,
  ``domain`` and ``label`` (YouTube: ``[[0 or 1], ...]`` per segment; TVSum: clips × 20 user scores).
* R²-Tuning (``youtube_anno.json`` + ``youtube_splits.json``, ``tvsum_train_sfc.json`` + ``tvsum_splits.json``): the
  ``val`` ids of every domain in the split table that are present in the annotation object, in split order; labels
  from ``match`` (> 0 positive, spec metrics.md §6) or ``anno``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vtgkit.errors import AnnotationError
from vtgkit.evaluation.io import Records, as_records, qid_index, read_json, score_list


def load_summarization_labels(
    benchmark: str, ground_truth: str | Path | Records | list[dict[str, Any]], splits: str | Path | None = None
) -> tuple[dict[str, tuple[str, np.ndarray]], str]:
    """vid -> (domain, labels) in evaluation order, and the name of the source for messages."""
    if splits is not None:
        return _from_split_tables(benchmark, Path(ground_truth), Path(splits)), str(ground_truth)
    if isinstance(ground_truth, str | Path) and Path(ground_truth).suffix == ".json":
        raise AnnotationError(
            f"{ground_truth}: an R²-Tuning annotation object needs its split table too (--splits, e.g. "
            "youtube_splits.json / tvsum_splits.json); or pass the jsonl file (youtube_valid.jsonl / tvsum_val.jsonl)"
        )
    records = as_records(ground_truth, "ground truth")
    key = "qid" if "qid" in records.rows[0] else "vid"
    index = qid_index(records, key)
    labels: dict[str, tuple[str, np.ndarray]] = {}
    for vid, row_index in index.items():
        row = records.rows[row_index]
        domain = row.get("domain")
        if not isinstance(domain, str):
            raise AnnotationError(f"{records.where(row_index, 'domain')}: expected the domain name, found {domain!r}")
        labels[vid] = (domain, _label_table(benchmark, row.get("label"), records.where(row_index, "label")))
    return labels, records.source


def _label_table(benchmark: str, value: Any, where: str) -> np.ndarray:
    try:
        table = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        table = np.zeros((0,))
    if benchmark == "youtube_highlights":
        if table.ndim == 2 and table.shape[1] == 1:
            table = table[:, 0]
        if table.ndim != 1 or len(table) == 0:
            raise AnnotationError(f"{where}: expected one [0 or 1] per segment, found {str(value)[:80]}")
        return _finite(table, where)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] != 20:
        raise AnnotationError(f"{where}: expected clips × 20 user scores, found shape {table.shape}")
    return _finite(table, where)


def _finite(table: np.ndarray, where: str) -> np.ndarray:
    # NaN/inf labels would silently corrupt the ranking metrics (NaN compares false everywhere).
    bad = np.argwhere(~np.isfinite(table))
    if len(bad):
        raise AnnotationError(f"{where}: expected finite numbers, found {table[tuple(bad[0])]} at index "
                              f"{tuple(int(i) for i in bad[0])} ({len(bad)} non-finite values)")
    return table


def _from_split_tables(benchmark: str, anno_path: Path, splits_path: Path) -> dict[str, tuple[str, np.ndarray]]:
    anno = read_json(anno_path)
    splits = read_json(splits_path)
    if not isinstance(anno, dict) or not isinstance(splits, dict):
        raise AnnotationError(f"{anno_path} / {splits_path}: expected JSON objects keyed by video id / domain")
    labels: dict[str, tuple[str, np.ndarray]] = {}
    for domain, table in splits.items():
        if not isinstance(table, dict) or not isinstance(table.get("val"), list):
            raise AnnotationError(f"{splits_path}: domain {domain!r} must have a 'val' list of video ids")
        for vid in table["val"]:
            if vid not in anno:  # R²-Tuning keeps only split ids present in the annotation file (spec §6)
                continue
            entry = anno[vid]
            where = f"{anno_path}: video {vid!r} field"
            if benchmark == "youtube_highlights":
                match = np.asarray(entry.get("match", []), dtype=np.float64)
                if match.ndim != 1 or len(match) == 0:
                    raise AnnotationError(f"{where} 'match': expected a list of -1/0/1 per segment")
                _finite(match, f"{where} 'match'")
                labels[vid] = (domain, (match > 0).astype(np.float64))
            else:
                labels[vid] = (domain, _label_table(benchmark, entry.get("anno"), f"{where} 'anno'"))
    if not labels:
        raise AnnotationError(f"{splits_path}: no 'val' id of any domain is present in {anno_path}")
    return labels


def prediction_scores(records: Records, key: str) -> dict[Any, tuple[list[float], str]]:
    """vid -> (pred_saliency_scores, location) for a summarization prediction file."""
    index = qid_index(records, key)
    return {
        vid: (score_list(records, i, "pred_saliency_scores").tolist(), records.where(i)) for vid, i in index.items()
    }
