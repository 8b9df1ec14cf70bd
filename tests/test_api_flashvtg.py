"""Grounder.from_pretrained on FlashVTG checkpoints: tiny random FlashVTG in the official .ckpt layout, a tiny CLIP
(224 px, as the flashvtg presets sample) and a scaled-down SlowFast. Random weights: the tests check shapes, bounds,
caching, windowing and equality with `vtgkit extract` + `vtgkit predict`, never what the model finds."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.features.slowfast_helpers import TINY, random_state, write_caffe2

from tiny_grounder import TINY_CLIP, write_tiny_clip, write_video

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to decode test videos")

from vtgkit.api import Grounder, WindowedGrounder  # noqa: E402
from vtgkit.errors import CheckpointError, ConfigError, VideoError  # noqa: E402
from vtgkit.flashvtg_grounding import FlashVTGGrounder  # noqa: E402
from vtgkit.models.flashvtg import FlashVTG  # noqa: E402
from vtgkit.models.flashvtg.config import config_from_options  # noqa: E402
from vtgkit.windowing import plan_windows  # noqa: E402

FLASH_CLIP = dataclasses.replace(TINY_CLIP, image_resolution=224, vision_patch_size=32)  # 224 px like the presets
SHORT_SECONDS = 5.0  # 3 clips of 2 s
LONG_SECONDS = 9.0  # 5 clips of 2 s
# official folder names per dset_name (the authors' absolute paths; only the folder names matter)
_FOLDERS = {"hl": (["slowfast_features", "clip_features"], "clip_text_features"),
            "tvsum": (["vid_slowfast", "vid_clip"], "txt_clip")}


def write_flashvtg_checkpoint(path: Path, dset_name: str = "hl", max_v_l: int = 75, seed: int = 0) -> Path:
    """A tiny official ``model_best.ckpt``: ``{"model", "opt" (argparse.Namespace), "epoch"}``."""
    video_dirs, text_dir = _FOLDERS[dset_name]
    video_dim = TINY.feature_dim + FLASH_CLIP.embed_dim + 2
    options = argparse.Namespace(
        v_feat_dim=video_dim, use_tef=True, t_feat_dim=FLASH_CLIP.transformer_width, hidden_dim=16, nheads=4,
        num_dummies=3, t2v_layers=2, enc_layers=1, dummy_layers=1, dim_feedforward=32, kernel_size=5,
        num_conv_layers=1, num_mlp_layers=3, clip_length=2, max_q_l=8 if dset_name == "hl" else -1, max_v_l=max_v_l,
        dset_name=dset_name, config="data/HD.py" if dset_name == "tvsum" else "data/MR.py",
        v_feat_dirs=[f"/authors/features/{name}" for name in video_dirs], t_feat_dir=f"/authors/features/{text_dir}",
        device=torch.device("cpu"))
    torch.manual_seed(seed)
    model = FlashVTG(config_from_options(vars(options)))
    torch.save({"model": model.state_dict(), "opt": options, "epoch": 1}, path)
    return path


def write_flashvtg_model_files(root: Path) -> dict[str, Path]:
    """A random official-format FlashVTG checkpoint and the tiny CLIP and SlowFast weights it was built for."""
    return {
        "checkpoint": write_flashvtg_checkpoint(root / "model_best.ckpt"),
        "clip": write_tiny_clip(root / "clip224.safetensors", FLASH_CLIP),
        "slowfast": write_caffe2(root / "SLOWFAST_tiny.pkl", random_state(TINY, seed=7), TINY),
    }


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api_flashvtg")
    return {
        **write_flashvtg_model_files(root),
        "short": write_video(root / "kitchen.mp4", SHORT_SECONDS),
        "long": write_video(root / "match.mp4", LONG_SECONDS),
        "root": root,
        "cache": root / "cache",  # the module grounder's feature folder is cache/features, as `--cache-dir cache` uses
    }


def make_grounder(assets: dict[str, Path], checkpoint: Path | None = None, **options: object) -> FlashVTGGrounder:
    return Grounder.from_pretrained(checkpoint or assets["checkpoint"], clip_weights=assets["clip"],
                                    slowfast_weights=assets["slowfast"], progress=False, **options)


@pytest.fixture(scope="module")
def grounder(assets: dict[str, Path]) -> FlashVTGGrounder:
    return make_grounder(assets, feature_cache_dir=assets["cache"] / "features")


def count_encoder_calls(grounder: FlashVTGGrounder) -> dict[str, int]:
    """Wrap the CLIP image tower and the SlowFast network; the dict counts the clips/frames each one encoded."""
    calls = {"clip": 0, "slowfast": 0}
    encode_frames, encode_clips = grounder.encoder.encode_frames, grounder.slowfast.encode_clips

    def frames(images):  # noqa: ANN001, ANN202
        calls["clip"] += int(images.shape[0])
        return encode_frames(images)

    def clips(batch):  # noqa: ANN001, ANN202
        calls["slowfast"] += int(len(batch))
        return encode_clips(batch)

    grounder.encoder.encode_frames = frames  # type: ignore[method-assign]
    grounder.slowfast.encode_clips = clips  # type: ignore[method-assign]
    return calls


def test_from_pretrained_gives_a_flashvtg_grounder(grounder: FlashVTGGrounder, assets: dict[str, Path]) -> None:
    assert isinstance(grounder, FlashVTGGrounder) and isinstance(grounder, WindowedGrounder)
    assert not isinstance(grounder, Grounder)  # documented: same methods, not a subclass
    assert grounder.window_clips == 75 and grounder.clip_len == 2.0  # max_v_l clips of the checkpoint
    assert grounder.has_moments and grounder.checkpoint == str(assets["checkpoint"])


def test_ground_highlights_summarize_shapes_and_bounds(grounder: FlashVTGGrounder, assets: dict[str, Path]) -> None:
    video = assets["short"]
    moments = grounder.ground(video, "a white box moves across the screen", top_k=4)
    features = grounder.encode_video(video)
    assert features.tokens.shape == (3, TINY.feature_dim + FLASH_CLIP.embed_dim)  # SlowFast + CLIP rows per clip
    assert math.isclose(features.duration, SHORT_SECONDS, abs_tol=0.2)
    assert 1 <= len(moments) <= 4
    for moment in moments:
        assert 0 <= moment.start < moment.end <= features.duration + 1e-6
        assert math.isfinite(moment.score)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    highlights = grounder.highlights(video, "a white box")
    assert highlights.saliency.shape == (3,) and np.isfinite(highlights.saliency).all()
    assert highlights.clip_len == 2.0
    summary = grounder.summarize(video, 2.0)
    assert summary and sum(m.duration for m in summary) <= 2.0 + 1e-6
    assert all(0 <= m.start < m.end <= features.duration + 1e-6 for m in summary)


def test_second_query_does_not_encode_the_video_again(assets: dict[str, Path]) -> None:
    grounder = make_grounder(assets)
    calls = count_encoder_calls(grounder)
    grounder.ground(assets["short"], "first query")
    first = dict(calls)
    assert first["slowfast"] == 3 and first["clip"] >= 3
    grounder.ground(assets["short"], "a different second query")
    grounder.summarize(assets["short"], "40%", query="and a third one")
    assert calls == first  # neither SlowFast nor the CLIP image tower ran again
    assert grounder.cache.hits >= 2


@pytest.mark.slow  # runs SlowFast again through `vtgkit extract`
def test_equals_extract_then_predict(grounder: FlashVTGGrounder, assets: dict[str, Path], tmp_path: Path) -> None:
    from vtgkit.cli.main import main

    video, query = assets["short"], "a white box moves"
    result = grounder.predict(video, query)
    anno = tmp_path / "anno.jsonl"
    duration = grounder.encode_video(video).duration
    anno.write_text(json.dumps({"qid": 1, "query": query, "vid": video.stem, "duration": duration}) + "\n")
    data = tmp_path / "data"
    assert main(["extract", "--preset", "flashvtg-qvhighlights", "--clip-weights", str(assets["clip"]),
                 "--slowfast-weights", str(assets["slowfast"]), "--annotations", str(anno), "--output", str(data),
                 "--no-progress", str(video)]) == 0
    out = tmp_path / "pred.jsonl"
    assert main(["predict", "--model", "flashvtg", "--checkpoint", str(assets["checkpoint"]), "--data-root",
                 str(data), "--annotations", str(anno), "--output", str(out), "--quiet"]) == 0
    expected = json.loads(out.read_text().splitlines()[0])
    np.testing.assert_allclose(result.highlights.saliency, expected["pred_saliency_scores"], atol=1e-4)
    # The user-facing list is the official one without zero-length rows and without rows that repeat a better one
    # (IoU >= 0.7, which the official NMS keeps at score 0): same rows, same order.
    rows = [row for row in expected["pred_relevant_windows"] if row[1] > row[0]]
    kept = []
    for row in rows:
        overlaps = [max(0.0, min(row[1], k[1]) - max(row[0], k[0])) / (max(row[1], k[1]) - min(row[0], k[0]))
                    for k in kept]
        if all(iou < 0.7 for iou in overlaps):
            kept.append(row)
    assert len(result.moments) == len(kept) >= 1
    for moment, row in zip(result.moments, kept, strict=True):
        assert [moment.start, moment.end, moment.score] == pytest.approx(row, abs=1e-4)


@pytest.mark.slow  # SlowFast on a second video
def test_long_video_runs_in_windows_of_max_v_l(assets: dict[str, Path]) -> None:
    folder = assets["root"] / "max_v_l_3"
    folder.mkdir(exist_ok=True)
    grounder = make_grounder(assets, write_flashvtg_checkpoint(folder / "model_best.ckpt", max_v_l=3))
    assert grounder.window_clips == 3
    features = grounder.encode_video(assets["long"])
    assert features.num_clips == 5
    lengths: list[int] = []
    tefs: list[torch.Tensor] = []
    forward = grounder.model.forward

    def spy(batch):  # noqa: ANN001, ANN202
        lengths.append(int(batch.video.shape[1]))
        tefs.append(batch.video[0, :, -2:].clone())
        return forward(batch)

    grounder.model.forward = spy  # type: ignore[method-assign]
    result = grounder.predict(assets["long"], "a white box")
    windows = plan_windows(5, 3)
    assert len(windows) == 2 and lengths == [3, 3]  # every window has the training length
    for tef in tefs:  # TEF is computed over each window, as for a video of max_v_l clips
        torch.testing.assert_close(tef[:, 0], torch.arange(3) / 3)
    assert result.highlights.saliency.shape == (5,)
    assert result.moments
    assert all(0 <= m.start < m.end <= features.duration + 1e-6 for m in result.moments)
    for index, a in enumerate(result.moments):  # no two kept moments repeat each other
        for b in result.moments[index + 1 :]:
            inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
            assert inter / (a.duration + b.duration - inter) < 0.7


def test_highlight_only_checkpoint(assets: dict[str, Path]) -> None:
    checkpoint = assets["root"] / "tvsum" / "model_best.ckpt"
    checkpoint.parent.mkdir(exist_ok=True)
    grounder = make_grounder(assets, write_flashvtg_checkpoint(checkpoint, dset_name="tvsum", max_v_l=1000))
    assert not grounder.has_moments and grounder.window_clips == 1000
    with pytest.raises(ConfigError, match="highlight-only"):
        grounder.ground(assets["short"], "a dog")
    result = grounder.predict(assets["short"], "a dog")
    assert result.moments == [] and result.highlights.saliency.shape == (3,)


def test_cli_ground_prints_moments(assets: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from vtgkit.cli.main import main

    code = main(["ground", str(assets["short"]), "a white box moves", "--checkpoint", str(assets["checkpoint"]),
                 "--clip-weights", str(assets["clip"]), "--slowfast-weights", str(assets["slowfast"]), "--json",
                 "--top-k", "2", "--quiet", "--cache-dir", str(assets["cache"])])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert 1 <= len(printed["moments"]) <= 2
    assert all(0 <= row["start"] < row["end"] <= SHORT_SECONDS + 0.2 for row in printed["moments"])


def test_refusals(assets: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="internvideo2 features"):  # before any download
        Grounder.from_pretrained("flashvtg-qvhighlights_internvideo2", cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="place it at"):  # Dropbox folder: placed by hand, the message says where
        Grounder.from_pretrained("flashvtg-qvhighlights", cache_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="trained on 'qvhighlights'"):
        make_grounder(assets, benchmark="tacos")
    with pytest.raises(ConfigError, match="extraction pipeline only"):
        make_grounder(assets, pipeline="inference-tool")
    with pytest.raises(CheckpointError, match="SlowFast weights"):
        Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"],
                                 slowfast_weights=tmp_path / "missing.pkl")


def test_bad_videos(grounder: FlashVTGGrounder, tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no such file"):
        grounder.ground(tmp_path / "missing.mp4", "query")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(VideoError, match="broken.mp4"):
        grounder.ground(broken, "query")
    short = write_video(tmp_path / "short.mp4", seconds=1.0)
    with pytest.raises(VideoError, match="shorter than one clip"):
        grounder.ground(short, "query")


def test_web_app_service_takes_a_flashvtg_grounder(grounder: FlashVTGGrounder, assets: dict[str, Path]) -> None:
    from vtgkit.app.grounding import GroundingService

    service = GroundingService(grounder)
    grounder.encode_video(assets["short"])  # features cached (module grounder: maybe already by another test)
    answer = service.ground(assets["short"], "a white box", top_k=3)
    assert answer.features_reused and 1 <= len(answer.moments) <= 3
    assert answer.clip_len == 2.0 and math.isclose(answer.duration, SHORT_SECONDS, abs_tol=0.2)
