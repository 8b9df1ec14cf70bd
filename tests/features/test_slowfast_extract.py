"""``vtgkit extract --preset flashvtg-*``: SlowFast + CLIP caches from videos, read back by the FlashVTG reader."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.features.conftest import TINY_CLIP
from tests.features.slowfast_helpers import TINY, random_state, write_caffe2

from vtgkit.cli.main import main
from vtgkit.data.flashvtg_features import FlashVTGFeatureReader, get_flashvtg_layout
from vtgkit.features.decoding import iter_fps_filter_frames
from vtgkit.features.manifest import STATE_DIR
from vtgkit.features.slowfast.sampling import clip_frame_indices, slowfast_inputs
from vtgkit.features.slowfast.weights import load_slowfast


@pytest.fixture(scope="module")
def tiny_slowfast_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaled-down SlowFast (1 block per stage, width 4) in the Caffe2 format HERO's extractor loads."""
    return write_caffe2(tmp_path_factory.mktemp("slowfast") / "SLOWFAST_tiny.pkl", random_state(TINY, seed=7), TINY)


def _extract(output: Path, clip: Path, slowfast: Path, videos: list[Path], *extra: str) -> int:
    return main(["extract", "--clip-weights", str(clip), "--slowfast-weights", str(slowfast), "--output", str(output),
                 "--no-progress", "--batch-size", "2", "--slowfast-batch-size", "2", *extra,
                 *(str(video) for video in videos)])


@pytest.mark.slow
def test_flashvtg_qvhighlights_writes_what_the_flashvtg_reader_reads(
        tmp_path: Path, tiny_clip_file: Path, tiny_slowfast_file: Path, make_video: Callable[..., Path],
        capsys: pytest.CaptureFixture) -> None:
    video = make_video("clip a.mp4", 3.0, fps=30)
    anno = tmp_path / "anno.jsonl"
    anno.write_text(json.dumps({"qid": 5, "query": "a white box moves", "vid": "clip a", "duration": 3}) + "\n")
    output = tmp_path / "out"
    assert _extract(output, tiny_clip_file, tiny_slowfast_file, [video], "--preset", "flashvtg-qvhighlights",
                    "--annotations", str(anno)) == 0

    slowfast = np.load(output / "slowfast_features" / "clip a.npz")
    assert slowfast.files == ["features"]
    rows = slowfast["features"]
    # 3.0 s in 2-s clips: ceil(3.0 / 2) = 2 rows (the second padded by repeating the last second), float16 like HERO
    assert rows.shape == (2, TINY.feature_dim) and rows.dtype == np.float16

    # The first row by hand: 30-fps frames → the 32 chosen of the first 60 → normalise → model → float16.
    frames = list(iter_fps_filter_frames(video, 30, 224))[:60]
    chosen = torch.from_numpy(np.stack([frames[i] for i in clip_frame_indices(30, 60).tolist()]))[None]
    model = load_slowfast(tiny_slowfast_file)
    with torch.inference_mode():
        expected = model(*slowfast_inputs(chosen)).half().numpy()
    # batched (2 clips) vs alone: convolution kernels may round differently, so within one float16 step
    assert np.allclose(rows[:1].astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-4)

    reader = FlashVTGFeatureReader(output, get_flashvtg_layout("qvhighlights"))
    features = reader.read_video("clip a")
    assert features.shape == (2, TINY.feature_dim + TINY_CLIP.embed_dim + 2)
    assert reader.read_query(5).shape[1] == TINY_CLIP.transformer_width  # un-projected text rows (Moment-DETR)

    # Rerun: everything verified and skipped; the manifest records the SlowFast settings.
    capsys.readouterr()
    assert _extract(output, tiny_clip_file, tiny_slowfast_file, [video], "--preset", "flashvtg-qvhighlights") == 0
    assert re.search(r"videos: 0 extracted .*1 already done", capsys.readouterr().out)
    records = [json.loads(line) for line in (output / STATE_DIR / "manifest.0of1.jsonl").read_text().splitlines()]
    slowfast_record = next(r for r in records if r["path"] == "slowfast_features/clip a.npz")
    assert slowfast_record["settings"]["clip_len"] == "2" and slowfast_record["shape"] == [2, TINY.feature_dim]

    # Only the SlowFast file missing: it alone is made again, the CLIP file is kept as it was.
    clip_file = output / "clip_features" / "clip a.npz"
    before = clip_file.stat().st_mtime_ns
    (output / "slowfast_features" / "clip a.npz").unlink()
    assert _extract(output, tiny_clip_file, tiny_slowfast_file, [video], "--preset", "flashvtg-qvhighlights") == 0
    assert np.array_equal(np.load(output / "slowfast_features" / "clip a.npz")["features"], rows)
    assert clip_file.stat().st_mtime_ns == before


def test_charades_uses_one_second_clips_and_bad_videos_are_logged(
        tmp_path: Path, tiny_clip_file: Path, tiny_slowfast_file: Path, make_video: Callable[..., Path]) -> None:
    video = make_video("c.mp4", 2.5, fps=25)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00garbage" * 100)
    output = tmp_path / "out"
    assert _extract(output, tiny_clip_file, tiny_slowfast_file, [broken, video], "--preset", "flashvtg-charades") == 1
    assert np.load(output / "slowfast_features" / "c.npz")["features"].shape == (3, TINY.feature_dim)  # ceil(2.5/1)
    (output / "clip_text_features").mkdir()  # the reader wants the text folder too (no annotations given here)
    assert FlashVTGFeatureReader(output, get_flashvtg_layout("charades_sta")).read_video("c").shape[0] == 3
    failures = (output / STATE_DIR / "failures.0of1.jsonl").read_text().splitlines()
    assert len(failures) == 1 and "broken.mp4" in json.loads(failures[0])["message"]


def test_slowfast_options_are_checked(tmp_path: Path, tiny_clip_file: Path, tiny_slowfast_file: Path,
                                      make_video: Callable[..., Path], capsys: pytest.CaptureFixture) -> None:
    video = make_video("a.mp4", 2.0)
    missing = tmp_path / "missing.pkl"
    assert _extract(tmp_path / "o", tiny_clip_file, missing, [video], "--preset", "flashvtg-tacos") == 2
    assert "missing.pkl" in capsys.readouterr().err
    assert _extract(tmp_path / "o", tiny_clip_file, tiny_slowfast_file, [video], "--preset",
                    "r2tuning-qvhighlights") == 2
    assert "FlashVTG presets" in capsys.readouterr().err
    assert _extract(tmp_path / "o", tiny_clip_file, tiny_slowfast_file, [video], "--preset", "flashvtg-tvsum",
                    "--clip-len", "1/7") == 2
    assert "clip length" in capsys.readouterr().err
    assert Fraction(2) == Fraction("2")  # the manifest stores clip lengths as exact fractions ("2", "3/2")
