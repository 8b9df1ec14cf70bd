"""``vtgkit extract`` on many videos: failure log, resume with verification, shards, kills, other presets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.features.conftest import TINY_CLIP

from vtgkit.atomic_files import PARTIAL_PREFIX
from vtgkit.cli.main import main
from vtgkit.features.clip_weights import load_clip
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.frame_transforms import clip_input_from_uint8
from vtgkit.features.manifest import STATE_DIR
from vtgkit.features.synthetic_video import write_audio_only
from vtgkit.features.tokenizer import default_tokenizer

QUERIES = [{"qid": 7, "query": "a white box moves"}, {"qid": "q-8", "query": "Bars & noise!"},
           {"qid": 9, "query": "x"}]


def _annotations(tmp_path: Path) -> Path:
    path = tmp_path / "anno.jsonl"
    path.write_text("".join(json.dumps({**q, "vid": "a", "duration": 3}) + "\n" for q in QUERIES))
    return path


def _extract(clip: Path, output: Path, videos: list[Path], *extra: str) -> int:
    return main(["extract", "--clip-weights", str(clip), "--output", str(output), "--no-progress", "--batch-size",
                 "2", *extra, *(str(v) for v in videos)])


def _summary(capsys: pytest.CaptureFixture) -> dict[str, int]:
    out = capsys.readouterr().out
    match = re.search(r"videos: (\d+) extracted .*?(\d+) already done.*?queries: (\d+) extracted, (\d+) already "
                      r"done; (\d+) failed", out)
    assert match, out
    keys = ("done", "skipped", "queries_done", "queries_skipped", "failed")
    return dict(zip(keys, (int(g) for g in match.groups()), strict=True))


@pytest.fixture
def batch(tmp_path: Path, make_video: Callable[..., Path]) -> dict[str, Path]:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "corrupt.mp4").write_bytes(b"\x00\x01garbage" * 500)
    short = make_video("short.mp4", 0.3)
    return {"a": make_video("a.mp4", 3), "portrait": make_video("portrait.mp4", 2, width=96, height=160),
            "vfr": make_video("vfr.mp4", 3, variable_rate=True), "empty": bad / "empty.mp4",
            "corrupt": bad / "corrupt.mp4", "audio": write_audio_only(bad / "audio.mp4"),
            "missing": tmp_path / "missing.mp4", "short": short}


def test_batch_survives_bad_videos_then_resumes_and_verifies(tmp_path: Path, tiny_clip_file: Path,
                                                             batch: dict[str, Path], capsys) -> None:
    output = tmp_path / "out"
    anno = _annotations(tmp_path)
    videos = list(batch.values())
    args = ("--fps", "1.0", "--save-frames", "--annotations", str(anno))
    assert _extract(tiny_clip_file, output, videos, *args) == 1
    assert _summary(capsys) == {"done": 3, "skipped": 0, "queries_done": 3, "queries_skipped": 0, "failed": 5}
    failures = [json.loads(line) for line in (output / STATE_DIR / "failures.0of1.jsonl").read_text().splitlines()]
    assert sorted(Path(f["item"]).stem for f in failures) == ["audio", "corrupt", "empty", "missing", "short"]
    assert all(f["error"] == "VideoError" and f["item"] in f["message"] for f in failures)

    # Other rate than the preset's 0.5 fps: its own folder. Shapes read from the weights, not hard-coded.
    video_dir, frames_dir = output / "clip_b32_vid_k4_1.0fps", output / "frames_224_1.0fps"
    frames = np.load(frames_dir / "a.npy")
    features = np.load(video_dir / "a.npy")
    assert frames.shape == (3, 3, 224, 224) and frames.dtype == np.uint8
    assert features.shape == (3, 4, TINY_CLIP.tokens_per_image, TINY_CLIP.vision_width)
    assert features.dtype == np.float16
    encoder = ClipEncoder(load_clip(tiny_clip_file), "r2tuning", 4)
    np.testing.assert_allclose(features.astype(np.float32),
                               encoder.encode_frames(clip_input_from_uint8(frames)).astype(np.float32),
                               rtol=2**-9, atol=2e-4)
    query = np.load(output / "clip_b32_txt_k4" / "q-8.npy")
    ids = default_tokenizer().tokenize("Bars & noise!")[0]
    assert query.shape == (int((ids != 0).sum()), 4, TINY_CLIP.transformer_width)

    # Rerun: finished outputs are verified and skipped; the bad videos fail again.
    assert _extract(tiny_clip_file, output, videos, *args) == 1
    assert _summary(capsys) == {"done": 0, "skipped": 3, "queries_done": 0, "queries_skipped": 3, "failed": 5}

    # A changed file, and a killed run's leftovers (partial file, final file missing), are redone.
    np.save(video_dir / "portrait.npy", np.zeros_like(np.load(video_dir / "portrait.npy")))
    (video_dir / "vfr.npy").unlink()
    (video_dir / f"{PARTIAL_PREFIX}vfr.npy.abc").write_bytes(b"\x93NUMPY half")
    good = [batch["a"], batch["portrait"], batch["vfr"]]
    assert _extract(tiny_clip_file, output, good, *args) == 0
    assert _summary(capsys) == {"done": 2, "skipped": 1, "queries_done": 0, "queries_skipped": 3, "failed": 0}
    assert not list(video_dir.glob(PARTIAL_PREFIX + "*"))
    assert np.abs(np.load(video_dir / "portrait.npy")).sum() > 0


def test_shards_split_the_work(tmp_path: Path, tiny_clip_file: Path, batch: dict[str, Path], capsys) -> None:
    good = [batch["a"], batch["portrait"], batch["vfr"]]
    anno = _annotations(tmp_path)
    made = []
    for shard in ("0/2", "1/2"):
        output = tmp_path / shard.replace("/", "of")
        assert _extract(tiny_clip_file, output, good, "--shard", shard, "--annotations", str(anno)) == 0
        made.append({p.relative_to(output).as_posix() for p in output.rglob("*.npy")})
    assert not made[0] & made[1]
    expected = {f"clip_b32_vid_k4/{v.stem}.npy" for v in good} | {f"clip_b32_txt_k4/{q['qid']}.npy" for q in QUERIES}
    assert made[0] | made[1] == expected


def test_flashvtg_and_single_video_presets(tmp_path: Path, tiny_clip_file: Path, batch: dict[str, Path]) -> None:
    anno = _annotations(tmp_path)
    # SlowFast weights that are not there: a clear error before any work (no download attempted in tests)
    assert _extract(tiny_clip_file, tmp_path / "f", [batch["a"]], "--preset", "flashvtg-qvhighlights",
                    "--slowfast-weights", str(tmp_path / "missing.pkl")) == 2
    assert _extract(tiny_clip_file, tmp_path / "f", [batch["a"]], "--preset", "flashvtg-qvhighlights",
                    "--no-slowfast", "--annotations", str(anno)) == 0
    pooled = np.load(tmp_path / "f" / "clip_features" / "a.npz")["features"]
    assert pooled.shape == (2, TINY_CLIP.embed_dim) and pooled.dtype == np.float16  # 3 s at 0.5 fps
    text = np.load(tmp_path / "f" / "clip_text_features" / "qid7.npz")
    # Moment-DETR's text features: ln_final rows (width D, not projected) and the projected end-of-text row (E)
    assert text["last_hidden_state"].shape[1] == TINY_CLIP.transformer_width
    assert text["pooler_output"].shape == (TINY_CLIP.embed_dim,) and text["pooler_output"].dtype == np.float32
    assert _extract(tiny_clip_file, tmp_path / "s", [batch["a"], batch["vfr"]], "--preset",
                    "r2tuning-single-video", "--fps", "1") == 0
    assert np.load(tmp_path / "s" / "clip_b32_vid_k4_1.0fps" / "a.npy").shape[0] == 3


def test_youtube_rate_per_video_from_annotations(tmp_path: Path, tiny_clip_file: Path,
                                                 batch: dict[str, Path]) -> None:
    anno = tmp_path / "youtube_anno.json"
    # 3 s video with 30 frames at 10 fps and 6 labels: one frame per label = 2 fps
    anno.write_text(json.dumps({"a": {"frames": 30, "fps": 10, "match": [1, -1, 1, 1, -1, -1], "info": [""] * 6}}))
    assert _extract(tiny_clip_file, tmp_path / "y", [batch["a"]], "--preset", "r2tuning-youtube",
                    "--annotations", str(anno), "--save-frames") == 0
    assert np.load(tmp_path / "y" / "frames_224_auto" / "a.npy").shape[0] == 6
    assert np.load(tmp_path / "y" / "clip_b32_txt_k4" / "a.npy").shape[1:] == (4, TINY_CLIP.transformer_width)


@pytest.mark.slow
def test_sigkill_leaves_no_file_a_rerun_would_take_as_done(tmp_path: Path, tiny_clip_file: Path,
                                                           make_video: Callable[..., Path]) -> None:
    video = make_video("long.mp4", 20, fps=30, width=320, height=180)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "vtgkit.cli.main", "extract", "--clip-weights", str(tiny_clip_file),
               "--fps", "10", "--batch-size", "2", "--no-progress", "--output", str(output), str(video)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    features = output / "clip_b32_vid_k4_10.0fps"
    deadline = time.monotonic() + 120
    while not list(features.glob(PARTIAL_PREFIX + "*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed mid-way"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (features / "long.npy").exists()
    assert list(features.glob(PARTIAL_PREFIX + "*"))  # only the hidden partial file is left
    rerun = subprocess.run(command, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 partial" in rerun.stdout
    result = np.load(features / "long.npy")
    assert result.shape[0] == 200 and torch.isfinite(torch.from_numpy(result.astype(np.float32))).all()
