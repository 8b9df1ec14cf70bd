"""``vtgkit predict`` on the R²-Tuning oracle, checked by the oracle's own ``check_submission.py``.

Runs the command through ``vtgkit.cli.main.main`` on the oracle's val annotations and feature folder with
``r2_random.pth``, and on the derived long video (``derived_long.json``: its ``sources`` concatenated along the
clip axis into a temporary copy of the layout). Every id and shape is read from the oracle files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SHARED, require_path, shared_path

from vtgkit.cli.main import main
from vtgkit.data.benchmarks import feature_folder_names

# Several seconds per query on a loaded 2-core CPU: over the 10-s budget of the default run.
pytestmark = [pytest.mark.parity, pytest.mark.slow]

ORACLE = shared_path("VTGKIT_ORACLE_R2", SHARED / "oracle" / "r2tuning" / "reference")
VIDEO_FOLDER, QUERY_FOLDER = feature_folder_names("ViT-B/32", 4)


def _run_checker(prediction: Path, *extra: str) -> subprocess.CompletedProcess:
    checker = require_path(ORACLE.parent / "check_submission.py", "oracle check_submission.py")
    return subprocess.run([sys.executable, str(checker), str(prediction), str(ORACLE), *extra],
                          capture_output=True, text=True, check=False)


def _predict(data_root: Path, annotations: Path, output: Path) -> int:
    checkpoint = require_path(ORACLE / "r2_random.pth", "oracle checkpoint r2_random.pth")
    return main(["predict", "--model", "r2tuning", "--dataset", "qvhighlights", "--checkpoint", str(checkpoint),
                 "--data-root", str(data_root), "--annotations", str(annotations), "--output", str(output),
                 "--quiet"])


def test_predict_val_matches_oracle(tmp_path: Path) -> None:
    data_root = require_path(ORACLE / "data" / "qvhighlights", "oracle feature folder")
    annotations = require_path(data_root / "qvhighlights_val.jsonl", "oracle val annotations")
    output = tmp_path / "val_submission.jsonl"
    assert _predict(data_root, annotations, output) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = [json.loads(line) for line in annotations.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert [line["qid"] for line in lines] == [record["qid"] for record in expected]
    assert all(list(line) == ["qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"]
               for line in lines)
    result = _run_checker(output)
    assert result.returncode == 0, result.stdout + result.stderr


def test_predict_derived_long_video_matches_oracle(tmp_path: Path) -> None:
    derived = json.loads(require_path(ORACLE / "derived_long.json", "oracle derived_long.json").read_text("utf-8"))
    source_root = ORACLE / "data" / "qvhighlights"
    data_root = tmp_path / "data"
    (data_root / VIDEO_FOLDER).mkdir(parents=True)
    (data_root / QUERY_FOLDER).mkdir()
    video = np.concatenate([np.load(source_root / VIDEO_FOLDER / f"{vid}.npy") for vid in derived["sources"]], axis=0)
    assert list(video.shape) == derived["shape"]
    np.save(data_root / VIDEO_FOLDER / f"{derived['vid']}.npy", video)
    for record in derived["annotations"]:
        shutil.copyfile(source_root / QUERY_FOLDER / f"{record['qid']}.npy",
                        data_root / QUERY_FOLDER / f"{record['qid']}.npy")
    annotations = tmp_path / "derived.jsonl"
    annotations.write_text("".join(json.dumps(record) + "\n" for record in derived["annotations"]), "utf-8")
    output = tmp_path / "derived_submission.jsonl"
    assert _predict(data_root, annotations, output) == 0
    result = _run_checker(output, "--derived")
    assert result.returncode == 0, result.stdout + result.stderr
