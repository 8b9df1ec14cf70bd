"""Hostile and unusual videos through what users run: ``Grounder``, ``vtgkit ground`` and ``vtgkit extract``.

Cases (docs/robustness.md, "Videos"): truncated (index first / index last), zero bytes, audio only, corrupt packets
mid-stream, variable frame rate, display rotation, 10-bit, 4K, a 1-frame video, a 10-hour stream (peak memory),
and files named like videos that are something else. The models are tiny and random (tests/tiny_grounder.py): these
tests check what is decoded, refused, warned about and reported, never what the model finds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to write and decode the test videos")

import _video_cases as cases  # noqa: E402

from cli_errors import assert_one_line_error  # noqa: E402
from tiny_grounder import TINY_CLIP, write_tiny_checkpoint, write_tiny_clip  # noqa: E402
from vtgkit.api import CLIP_SETTINGS, Grounder  # noqa: E402
from vtgkit.cli.main import main  # noqa: E402
from vtgkit.errors import VideoError  # noqa: E402
from vtgkit.features.decoding import DamagedVideoWarning, iter_fps_filter_frames  # noqa: E402
from vtgkit.features.manifest import STATE_DIR  # noqa: E402

# ------------------------------------------------------------------------------------------------------ fixtures
# Failing cases: writer, and what the one-line error says after the file name (Grounder, `vtgkit ground`, extract).
REFUSED = {
    "truncated-index-last": (lambda p: cases.write_truncated(p, index_first=False), "cannot open as a video"),
    "zero-bytes": (cases.write_zero_bytes, "empty file (0 bytes)"),
    "audio-only": (cases.write_audio_named_mp4, "no video stream (streams found: audio)"),
    "png-named-mp4": (cases.write_png_named_mp4, "is a still image (png_pipe), not a video"),
    "html-named-mp4": (cases.write_html_named_mp4, "cannot open as a video container"),
    "zip-named-mp4": (cases.write_zip_named_mp4, "cannot open as a video container"),
    "subtitles-named-mp4": (cases.write_subtitles_named_mp4, "no video stream (streams found: subtitle)"),
}
# Decoded with a DamagedVideoWarning: writer, and what the warning says.
DAMAGED = {
    "truncated-index-first": (lambda p: cases.write_truncated(p, index_first=True),
                              r"the video stream ends at 3\.\d\d s but its header declares 6\.00 s"),
    "corrupt-mid-stream": (cases.write_corrupt_mid_stream, r"\d+ corrupt packet\(s\) skipped"),
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robust-videos")
    return {"checkpoint": write_tiny_checkpoint(root / "checkpoint"),
            "clip": write_tiny_clip(root / "clip.safetensors"), "root": root}


@pytest.fixture(scope="module")
def grounder(assets: dict[str, Path]) -> Grounder:
    """The tiny model at QVHighlights settings (0.5 clips/s), features in memory only."""
    return Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"], progress=False)


@pytest.fixture(scope="module")
def video(assets: dict[str, Path]) -> Callable[[str], Path]:
    """``video(case)`` → the case's file (written once per module), named ``<case>.mp4`` (``.mkv`` for MKV cases)."""
    made: dict[str, Path] = {}
    folder = assets["root"] / "videos"
    folder.mkdir()
    writers = {name: writer for name, (writer, _) in {**REFUSED, **DAMAGED}.items()}
    writers |= {
        "good": cases.write_good,
        "vfr": lambda p: cases.write_good(p, variable_rate=True),
        "rotated-180": lambda p: cases.write_rotated(p, 180),
        "pixels-turned-180": lambda p: cases.write_rotated(p, None, flipped_pixels=True),
        "upright": lambda p: cases.write_rotated(p, None),
        "10-bit": lambda p: cases.write_bit_depth(p, 10, "420"),
        "10-bit-444": lambda p: cases.write_bit_depth(p, 10),
        "8-bit-444": lambda p: cases.write_bit_depth(p, 8),
        "4k": cases.write_4k,
        "one-frame-0.1s": lambda p: cases.write_one_frame(p, 0.1),
        "one-frame-4s": lambda p: cases.write_one_frame(p, 4.0),
    }

    def make(case: str) -> Path:
        if case not in made:
            suffix = ".mkv" if case == "truncated-index-first" else ".mp4"
            made[case] = writers[case](folder / f"{case}{suffix}")
        return made[case]

    return make


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ground_cli(capsys: pytest.CaptureFixture[str], assets: dict[str, Path], video: Path,
               *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "ground", str(video), "a white box", "--checkpoint", str(assets["checkpoint"]),
                   "--clip-weights", str(assets["clip"]), "--quiet", *extra)


# ------------------------------------------------------------------------------------- refused: clear VideoError
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_video_grounder_raises_video_error_naming_the_file(grounder: Grounder, video: Callable[[str], Path],
                                                                   case: str) -> None:
    path = video(case)
    with pytest.raises(VideoError) as error:
        grounder.ground(path, "a white box")
    assert str(error.value).startswith(f"{path}: ")
    assert REFUSED[case][1] in str(error.value)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_video_ground_cli_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], assets: dict[str, Path],
                                                        video: Callable[[str], Path], case: str) -> None:
    path = video(case)
    code, out, err = ground_cli(capsys, assets, path)
    assert_one_line_error(code, err, "ground", str(path), REFUSED[case][1])
    assert out == ""


# -------------------------------------------------------------------------------- damaged: decoded, with a warning
@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_video_grounder_uses_the_decodable_frames_and_warns(grounder: Grounder,
                                                                    video: Callable[[str], Path], case: str) -> None:
    path = video(case)
    with pytest.warns(DamagedVideoWarning, match=DAMAGED[case][1]) as caught:
        moments = grounder.ground(path, "a white box", top_k=None)
    assert all(str(path) in str(warning.message) for warning in caught if warning.category is DamagedVideoWarning)
    features = grounder.encode_video(path)
    expected = 2 if case == "truncated-index-first" else 3  # the first 3 s (clips at 0, 2 s) or all 6 s
    assert features.num_clips == expected
    assert np.isfinite(np.asarray(features.tokens, dtype=np.float32)).all()
    assert all(0 <= moment.start < moment.end <= features.duration for moment in moments)


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_video_ground_cli_prints_a_warning_line_and_succeeds(capsys: pytest.CaptureFixture[str],
                                                                     assets: dict[str, Path],
                                                                     video: Callable[[str], Path], case: str) -> None:
    path = video(case)
    code, out, err = ground_cli(capsys, assets, path, "--json")
    assert code == 0, err
    assert "Traceback" not in err
    warning_lines = [line for line in err.splitlines() if line.startswith("vtgkit ground: warning: ")]
    assert len(warning_lines) == 1 and str(path) in warning_lines[0]
    assert re.search(DAMAGED[case][1], warning_lines[0])
    assert json.loads(out)["moments"]


def test_corrupt_packets_cost_frames_not_the_video(tmp_path: Path, video: Callable[[str], Path]) -> None:
    """One rejected packet used to fail the whole video ('decoding failed'); the ffmpeg command line the official
    tools run skips it, and so does vtgkit now: same number of frames as the clean file, identical before the damage."""
    clean = video("good")
    damaged = tmp_path / "damaged.mp4"
    data = bytearray(clean.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = bytes(2000)
    damaged.write_bytes(bytes(data))
    with pytest.warns(DamagedVideoWarning, match="corrupt packet"):
        frames = list(iter_fps_filter_frames(damaged, 1.0, size=64))
    reference = list(iter_fps_filter_frames(clean, 1.0, size=64))
    assert len(frames) == len(reference) == 6
    np.testing.assert_array_equal(frames[0], reference[0])


# ---------------------------------------------------------------------------------------- unusual but valid videos
def test_variable_frame_rate_is_sampled_by_timestamp(grounder: Grounder, video: Callable[[str], Path]) -> None:
    """Frame intervals alternating 0.1/0.2 s: the fps filter picks by time, so 6 s still give 3 clips (a sampler
    that counted frames at the nominal 10 fps would find 4 s of video)."""
    vfr, cfr = video("vfr"), video("good")
    assert grounder.encode_video(vfr).num_clips == grounder.encode_video(cfr).num_clips == 3
    assert grounder.encode_video(vfr).duration == pytest.approx(6.0, abs=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean VFR stream is not "damaged"
        assert all(0 <= m.start < m.end <= 6.1 for m in grounder.ground(vfr, "a white box"))


def test_display_rotation_is_applied_like_ffmpeg_autorotate(grounder: Grounder, video: Callable[[str], Path]) -> None:
    """Coded pictures upright + a 180° display matrix give exactly the features of pictures stored turned by 180°
    (lossless 4:4:4, so equality is exact), and not those of the upright video."""
    rotated = np.asarray(grounder.encode_video(video("rotated-180")).tokens)
    turned = np.asarray(grounder.encode_video(video("pixels-turned-180")).tokens)
    upright = np.asarray(grounder.encode_video(video("upright")).tokens)
    assert rotated.shape == turned.shape == upright.shape and rotated.shape[0] == 2
    np.testing.assert_array_equal(rotated, turned)
    assert np.abs(rotated.astype(np.float32) - upright.astype(np.float32)).max() > 1e-2


@pytest.mark.parametrize("pipeline", ["extraction", "inference-tool"])
def test_10_bit_video_decodes_like_its_8_bit_twin(assets: dict[str, Path], video: Callable[[str], Path],
                                                  pipeline: str) -> None:
    """H.264 High 10 (yuv420p10le, what HDR phones record) goes through both frame pipelines; lossless 10-bit and
    8-bit 4:4:4 encodings of the same pictures give frames within 3 levels of each other."""
    ten, eight = video("10-bit-444"), video("8-bit-444")
    grounder = Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"], progress=False,
                                        pipeline=pipeline)
    frames = [torch.stack(list(grounder._frames(path))).numpy() for path in (ten, eight)]  # what CLIP gets
    assert frames[0].shape == frames[1].shape == (3, 3, 64, 64)
    level = 1 / 255 / 0.26  # one 8-bit level after CLIP's normalisation (std >= 0.26)
    assert np.abs(frames[0] - frames[1]).max() <= 3 * level
    assert grounder.encode_video(video("10-bit")).num_clips == 3
    assert grounder.highlights(video("10-bit"), "a white box").saliency.shape == (3,)


def test_4k_video(grounder: Grounder, video: Callable[[str], Path]) -> None:
    """3840×2160 frames are scaled inside the filter graph: 4 s at 0.5 clips/s give 2 clips of the CLIP's shape."""
    path = video("4k")
    features = grounder.encode_video(path)
    assert features.num_clips == 2
    assert features.tokens.shape[1:] == (2, TINY_CLIP.tokens_per_image, TINY_CLIP.vision_width)


def test_one_frame_video_shorter_than_a_clip_is_refused(grounder: Grounder, capsys: pytest.CaptureFixture[str],
                                                        assets: dict[str, Path], video: Callable[[str], Path]) -> None:
    path = video("one-frame-0.1s")
    with pytest.raises(VideoError, match=r"lasts 0\.10 s, shorter than one clip \(2 s at 0\.5 fps"):
        grounder.ground(path, "a white box")
    code, _, err = ground_cli(capsys, assets, path)
    assert_one_line_error(code, err, "ground", str(path), "shorter than one clip")


def test_one_frame_still_lasting_two_clips_gives_two_equal_clips(grounder: Grounder,
                                                                 video: Callable[[str], Path]) -> None:
    features = grounder.encode_video(video("one-frame-4s"))
    assert features.num_clips == 2 and features.duration == pytest.approx(4.0)
    np.testing.assert_array_equal(features.tokens[0], features.tokens[1])


# ----------------------------------------------------------------------------------------- `vtgkit extract` batch
def test_extract_logs_and_counts_every_bad_video_and_extracts_the_rest(tmp_path: Path, video: Callable[[str], Path],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """All the cases in one batch: refused videos are in the failure log (VideoError, file named) and the summary
    count; damaged ones are extracted with their decodable frames; exit code 1 because something failed."""
    clip = cases.write_extraction_clip(tmp_path / "clip224.safetensors")
    good = ["good", "vfr", "rotated-180", "10-bit", "4k", "one-frame-4s", *DAMAGED]
    refused = {**{name: message for name, (_, message) in REFUSED.items()},
               "one-frame-0.1s": "no frame sampled at 1.0 fps"}
    paths = [video(name) for name in [*good, *refused]]
    output = tmp_path / "out"
    with pytest.warns(DamagedVideoWarning) as caught:
        code, out, err = run_cli(capsys, "extract", "--clip-weights", str(clip), "--output", str(output), "--fps",
                                 "1", "--layers", "2", "--no-progress", *(str(path) for path in paths))
    damaged = {Path(str(w.message).split(": ")[0]).stem for w in caught if w.category is DamagedVideoWarning}
    assert damaged == set(DAMAGED)
    assert code == 1, err
    assert f"videos: {len(good)} extracted" in out and f"{len(refused)} failed" in out
    log = output / STATE_DIR / "failures.0of1.jsonl"
    failures = {Path(entry["item"]).stem: entry for entry in map(json.loads, log.read_text().splitlines())}
    assert sorted(failures) == sorted(refused)
    for name, message in refused.items():
        assert failures[name]["error"] == "VideoError" and message in failures[name]["message"], failures[name]
        assert str(video(name)) in failures[name]["message"]
    rows = {path.stem: np.load(path, mmap_mode="r").shape[0] for path in (output / "clip_b32_vid_k2_1.0fps").iterdir()}
    assert rows == {"good": 6, "vfr": 6, "rotated-180": 3, "10-bit": 6, "4k": 4, "one-frame-4s": 4,
                    "truncated-index-first": 3, "corrupt-mid-stream": 6}


# ------------------------------------------------------------------------------------- 10 hours in bounded memory
def _long_video_grounder(assets: dict[str, Path], fps: float, cache: Path | None) -> Grounder:
    """The tiny model at ``fps`` clips/s with windows of 75 clips."""
    base = Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"], progress=False)
    settings = dataclasses.replace(CLIP_SETTINGS["qvhighlights"], benchmark="long", fps=fps,
                                   window_seconds=75 / fps)
    return Grounder(base.model, base.clip, settings, feature_cache_dir=cache, batch_frames=32)


def _peak_growth(run: Callable[[], object]) -> int:
    if not cases.reset_peak_rss():
        pytest.skip("the peak RSS cannot be reset here (/proc/self/clear_refs not writable)")
    before = cases.peak_rss_bytes()
    run()
    return cases.peak_rss_bytes() - before


def _check_ten_hours(assets: dict[str, Path], tmp_path: Path, fps: float, cache: Path | None,
                     ground: bool) -> tuple[int, int]:
    """Encode (and with ``ground`` ground) a generated 10-hour stream after a 1-hour warm-up; returns (peak RSS growth
    while the 10 hours were decoded and encoded, bytes of the 10-hour features)."""
    grounder = _long_video_grounder(assets, fps, cache)
    one_hour = cases.write_long_y4m(tmp_path / "one-hour.y4m", 3600)
    grounder.encode_video(one_hour)  # warm-up: imports, graphs, allocator
    if ground:
        grounder.predict(one_hour, "a bright square")  # and the model's working memory
    ten_hours = cases.write_long_y4m(tmp_path / "ten-hours.y4m", 36_000)
    results = []
    growth = _peak_growth(lambda: results.append(grounder.predict(ten_hours, "a bright square") if ground
                                                 else grounder.encode_video(ten_hours)))
    features = grounder.encode_video(ten_hours)
    assert features.num_clips == round(36_000 * fps) and features.duration == pytest.approx(36_000)
    if not ground:
        return growth, features.nbytes
    result = results[0]
    assert result.highlights.saliency.shape == (features.num_clips,)
    assert np.isfinite(result.highlights.saliency).all()
    assert result.moments and all(0 <= m.start < m.end <= 36_000 for m in result.moments)
    return growth, features.nbytes


def test_ten_hour_stream_is_decoded_and_encoded_in_bounded_memory(assets: dict[str, Path], tmp_path: Path) -> None:
    """10 hours (a generated raw stream, one 16-px frame per 10 s) through the real decode → CLIP → feature-cache
    path, at 1 clip per 20 s to keep it quick: with a cache folder, rows stream to disk and the peak RSS grows by
    less than half of what keeping the 1,800 feature rows (7.5 MB) — let alone the frames (88 MB) — would cost."""
    growth, feature_bytes = _check_ten_hours(assets, tmp_path, 0.05, tmp_path / "cache", ground=False)
    assert growth < feature_bytes / 2, (growth, feature_bytes)


@pytest.mark.slow
def test_ten_hour_stream_at_the_qvhighlights_rate_without_a_cache_folder(
        assets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default (no ``--cache-dir``) at the real rate: 18,000 clips at 0.5 clips/s, encoded and grounded in
    150-s windows. 10 hours of ViT-B/32 with K = 4 are 5.5 GB of features, above the Grounder's in-memory limit, so
    they stream to a temporary memory-mapped file and only one window is resident at a time; the tiny CLIP's 78 MB
    would fit in memory, so the limit is lowered to 0 to take the path a real 10-hour video takes. Peak RSS over
    encoding + grounding grows by less than half the features (and far below the 0.9 GB of the sampled frames)."""
    monkeypatch.setattr("vtgkit.api.IN_MEMORY_FEATURE_BYTES", 0)
    growth, feature_bytes = _check_ten_hours(assets, tmp_path, 0.5, None, ground=True)
    assert growth < feature_bytes / 2, (growth, feature_bytes)
