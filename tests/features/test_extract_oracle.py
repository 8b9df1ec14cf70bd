"""The oracle command: ``vtgkit extract`` reproduces the official R²-Tuning frames and features.

Everything (videos, rates, arch flag, K, CLIP file, folder names) is read from the reference manifest, and the
reference's own ``check_features.py`` judges the result: frames byte-identical, features within two fp16 steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import SHARED, require_path, shared_path

from vtgkit.cli.main import main

REFERENCE = shared_path("VTGKIT_ORACLE_FEATURES", SHARED / "oracle" / "features" / "reference")


def _manifest() -> dict:
    return json.loads(require_path(REFERENCE / "manifest.json", "feature-extraction oracle manifest").read_text())


@pytest.mark.slow  # ~5 s idle, 17 s on a loaded 2-core machine
@pytest.mark.parity
def test_extract_reproduces_official_frames_and_features(tmp_path: Path) -> None:
    manifest = _manifest()
    checker = require_path(REFERENCE.parent / "check_features.py", "oracle check_features.py")
    entries = manifest["entries"]
    videos = {Path(e["path"]).stem: REFERENCE / e["path"] for e in entries if e["kind"] == "video"}
    rates = sorted({e["fps"] for e in entries if e["kind"] in ("frames", "video_feat")})
    annotations = next(REFERENCE.glob("*.jsonl"))
    output = tmp_path / "out"
    for fps in rates:
        vids = sorted({e["vid"] for e in entries if e["kind"] == "video_feat" and e["fps"] == fps})
        argv = ["extract", "--preset", "r2tuning-qvhighlights", "--fps", str(fps),
                "--clip-weights", str(REFERENCE / manifest["clip"]["file"]), "--arch", manifest["arch_flag"],
                "--layers", str(manifest["k"]), "--annotations", str(annotations), "--save-frames",
                "--no-progress", "--output", str(output), *(str(videos[vid]) for vid in vids)]
        assert main(argv) == 0
    result = subprocess.run([sys.executable, str(checker), str(output), str(REFERENCE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("SUMMARY: PASS")


@pytest.mark.parity
def test_torchscript_reader_matches_torch_jit_state_dict() -> None:
    """Our code-free reader returns exactly the tensors that ``torch.jit.load(...).state_dict()`` returns."""
    import torch

    from vtgkit.features.torchscript_archive import read_torchscript_tensors

    path = require_path(REFERENCE / _manifest()["clip"]["file"], "oracle random CLIP")
    ours = read_torchscript_tensors(path)
    reference = torch.jit.load(str(path), map_location="cpu").state_dict()  # trusted test file only
    assert set(reference) <= set(ours)
    for key, value in reference.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


@pytest.mark.parity
def test_tokenizer_matches_oracle_token_ids() -> None:
    from vtgkit.features.annotation_queries import read_queries
    from vtgkit.features.tokenizer import default_tokenizer

    manifest = _manifest()
    texts = {query.qid: query.text for query in read_queries(next(REFERENCE.glob("*.jsonl")))}
    tokenizer = default_tokenizer()
    checked = 0
    for entry in manifest["entries"]:
        if entry["kind"] == "query_feat":
            ids = tokenizer.tokenize(texts[str(entry["qid"])], context_length=manifest["clip"]["context"])[0]
            assert ids[: int(ids.argmax()) + 1].tolist() == entry["token_ids"], entry["qid"]  # SOT..EOT
            checked += 1
    assert checked > 0
