"""``vtgkit.predict`` and ``vtgkit predict`` on tiny random models and caches: output format, failure accounting,
``--skip-errors`` side file, highlight-only benchmarks, and agreement of the settings tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vtgkit.cli.main import main
from vtgkit.data.benchmarks import BENCHMARKS
from vtgkit.errors import ConfigError
from vtgkit.evaluation.postprocess import postprocess_config
from vtgkit.models.r2tuning import R2Tuning, R2TuningConfig
from vtgkit.models.r2tuning.convert import save_vtgkit
from vtgkit.predict import PREDICTORS, failures_path, get_predictor

K, P, DV, DQ = 2, 3, 8, 6
TINY = R2TuningConfig(video_dims=DV, query_dims=DQ, tokens_per_frame=P, num_layers=K, hidden_dims=16, num_heads=2)
HIGHLIGHT = R2TuningConfig(video_dims=DV, query_dims=DQ, tokens_per_frame=P, num_layers=K, hidden_dims=16,
                           num_heads=2, strides=(1,), use_tef=False, merge_cls_sal=False, use_coord_head=False,
                           loss_cls="dynamic_bce", loss_reg_weight=0.0, loss_sal_directions=("row",))


def write_cache(root: Path, videos: dict[str, int], queries: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for folder, sizes, shape in (("vid", videos, (K, P, DV)), ("txt", queries, (K, DQ))):
        directory = root / f"clip_b32_{folder}_k{K}"
        directory.mkdir(parents=True, exist_ok=True)
        for key, length in sizes.items():
            np.save(directory / f"{key}.npy", rng.standard_normal((length, *shape)).astype(np.float16))
    return root


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    checkpoint = tmp_path / "ckpt"
    save_vtgkit(R2Tuning(TINY), checkpoint)
    data = write_cache(tmp_path / "data", {"va": 9, "vb": 5}, {"1": 4, "2": 6, "3": 3})
    records = [{"qid": 1, "query": "one", "duration": 18, "vid": "va", "relevant_windows": [[0, 4]]},
               {"qid": 2, "query": "two", "duration": 10.6, "vid": "vb", "relevant_windows": [[2, 6]]},
               {"qid": 3, "query": "three", "duration": 18, "vid": "va"}]
    annotations = tmp_path / "val.jsonl"
    annotations.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return {"checkpoint": checkpoint, "data": data, "annotations": annotations, "out": tmp_path / "out" / "p.jsonl"}


def run_predict(paths: dict[str, Path], *extra: str, dataset: str = "qvhighlights") -> int:
    return main(["predict", "--model", "r2tuning", "--dataset", dataset, "--checkpoint", str(paths["checkpoint"]),
                 "--data-root", str(paths["data"]), "--annotations", str(paths["annotations"]),
                 "--output", str(paths["out"]), "--quiet", *extra])


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_writes_one_line_per_query(setup: dict[str, Path]) -> None:
    assert run_predict(setup) == 0
    lines = read_lines(setup["out"])
    assert [line["qid"] for line in lines] == [1, 2, 3]
    assert [line["vid"] for line in lines] == ["va", "vb", "va"] and lines[0]["query"] == "one"
    assert [len(line["pred_saliency_scores"]) for line in lines] == [9, 5, 9]
    for line, duration in zip(lines, (18, 10.6, 18), strict=True):
        rows = line["pred_relevant_windows"]
        assert rows and all(len(row) == 3 and 0 <= row[0] <= row[1] <= duration for row in rows)
        scores = [row[2] for row in rows]
        assert scores == sorted(scores, reverse=True)
    assert sorted(p.name for p in setup["out"].parent.iterdir()) == ["p.jsonl"]  # no temporary file left behind
    assert run_predict(setup, "--no-nms") == 0
    for line in read_lines(setup["out"]):
        assert all(row[2] > 0 for row in line["pred_relevant_windows"])  # nothing suppressed to 0


@pytest.mark.slow  # three model runs: several seconds on a loaded 2-core machine
def test_batched_prediction_equals_one_by_one(setup: dict[str, Path]) -> None:
    assert run_predict(setup) == 0
    single = read_lines(setup["out"])
    assert run_predict(setup, "--batch-size", "3", "--num-workers", "1") == 0
    batched = read_lines(setup["out"])
    for a, b in zip(single, batched, strict=True):
        assert np.allclose(a["pred_saliency_scores"], b["pred_saliency_scores"], atol=1e-5)
        assert np.allclose(a["pred_relevant_windows"], b["pred_relevant_windows"], atol=1e-4)


def test_failures_are_counted_and_block_output(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (setup["data"] / f"clip_b32_txt_k{K}" / "2.npy").unlink()
    video = np.load(setup["data"] / f"clip_b32_vid_k{K}" / "va.npy")
    video[0, 0, 0, 0] = np.nan
    np.save(setup["data"] / f"clip_b32_vid_k{K}" / "va.npy", video)
    assert run_predict(setup) == 1
    err = capsys.readouterr().err
    assert "3 of 3 queries could not be predicted (2 bad feature file, 1 missing feature file)" in err
    assert "qid 2: feature file not found" in err and "--skip-errors" in err
    assert not setup["out"].exists()


def test_skip_errors_writes_side_file(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (setup["data"] / f"clip_b32_txt_k{K}" / "2.npy").unlink()
    assert run_predict(setup, "--skip-errors") == 0
    assert [line["qid"] for line in read_lines(setup["out"])] == [1, 3]
    failed = read_lines(failures_path(setup["out"]))
    assert failed == [{"qid": 2, "vid": "vb", "reason": "missing feature file",
                       "message": failed[0]["message"]}] and "2.npy" in failed[0]["message"]
    assert "1 of 3 queries could not be predicted (1 missing feature file)" in capsys.readouterr().err
    np.save(setup["data"] / f"clip_b32_txt_k{K}" / "2.npy", np.zeros((3, K, DQ), np.float16))
    assert run_predict(setup) == 0
    assert not failures_path(setup["out"]).exists()  # a complete run removes the stale list


def test_too_long_video_is_reported(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    save_vtgkit(R2Tuning(R2TuningConfig(**{**TINY.__dict__, "buffer_size": 8})), setup["checkpoint"])
    assert run_predict(setup, "--skip-errors") == 0
    assert [line["qid"] for line in read_lines(setup["out"])] == [2]
    assert "2 video too long for the model" in capsys.readouterr().err


def test_tvsum_highlight_only(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    save_vtgkit(R2Tuning(HIGHLIGHT), checkpoint)
    data = write_cache(tmp_path / "data", {"tv1": 7, "tv2": 6}, {"tv1": 4, "tv2": 5})  # query files named by video
    label = [[3.0] * 20] * 6
    records = [{"qid": "tv1", "vid": "tv1", "query": "a", "duration": 6, "label": label, "domain": "BK"},
               {"qid": "tv2", "vid": "tv2", "query": "b", "duration": 6, "label": label, "domain": "VU"}]
    annotations = tmp_path / "tvsum_val.jsonl"
    annotations.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    paths = {"checkpoint": checkpoint, "data": data, "annotations": annotations, "out": tmp_path / "tv.jsonl"}
    assert run_predict(paths, "--domain", "BK", dataset="tvsum") == 0
    (line,) = read_lines(paths["out"])
    assert line["qid"] == "tv1" and line["pred_relevant_windows"] == []
    assert len(line["pred_saliency_scores"]) == 6  # features (7) cut to the 6 annotated clips, as the official


def test_registry_and_settings_agree() -> None:
    assert "r2tuning" in PREDICTORS
    with pytest.raises(ConfigError, match="no predictor for model 'nope'"):
        get_predictor("nope")
    for name, benchmark in BENCHMARKS.items():
        if not benchmark.has_moments:
            continue
        config = postprocess_config("r2tuning", name)  # evaluation's table must match the benchmark settings
        assert (config.unit, config.nms_method) == (benchmark.unit, benchmark.nms), name
        if benchmark.nms == "normal":
            assert config.nms_threshold == benchmark.nms_threshold


def test_dataset_required_when_checkpoint_does_not_record_it(setup: dict[str, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", "--model", "r2tuning", "--checkpoint", str(setup["checkpoint"]), "--data-root",
                 str(setup["data"]), "--annotations", str(setup["annotations"]), "--output", str(setup["out"])])
    assert code == 2 and "--dataset is required for --model r2tuning" in capsys.readouterr().err


def test_help_lists_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS) and "--skip-errors" in out


def test_load_samples_picks_domain_split_of_official_json(tmp_path: Path) -> None:
    from collections import Counter

    from vtgkit.data.benchmarks import get_benchmark
    from vtgkit.predict import load_samples

    info = ["", None, [], 0, "", "title", "", None]
    anno = {vid: {"fps": 30.0, "frames": "300", "domain": "dog", "info": info, "match": [1, -1]} for vid in "abc"}
    (tmp_path / "youtube_anno.json").write_text(json.dumps(anno), encoding="utf-8")
    (tmp_path / "youtube_splits.json").write_text(json.dumps({"dog": {"train": ["a"], "val": ["c", "x", "b"]}}),
                                                  encoding="utf-8")
    benchmark = get_benchmark("youtube_highlights")
    samples, skipped = load_samples(benchmark, tmp_path / "youtube_anno.json", domain="dog", split="val")
    assert [s.vid for s in samples] == ["c", "b"]
    assert skipped == Counter({"listed in the split but not in the annotations": 1})
    with pytest.raises(ConfigError, match="choose one with --domain"):
        load_samples(benchmark, tmp_path / "youtube_anno.json")
    with pytest.raises(ConfigError, match="--domain applies to TVSum / YouTube Highlights"):
        load_samples(get_benchmark("qvhighlights"), tmp_path / "x.jsonl", domain="dog")


@pytest.mark.parametrize(("dset_name", "benchmark_name", "max_timestamp"),
                         [("hl", "qvhighlights", 150.0), ("qv_internvideo2", "qvhighlights", None),
                          ("charadesSTA", "charades_sta", 150.0), ("tacos", "tacos", None)])
def test_flashvtg_clamp_to_150_follows_the_dset_name(dset_name: str, benchmark_name: str,
                                                     max_timestamp: float | None) -> None:
    # spec flashvtg.md §6 step 3: QVHighlights with InternVideo2 features is only rounded, never clamped to 150 s.
    from types import SimpleNamespace

    from vtgkit.predict_flashvtg import flashvtg_postprocess

    model = SimpleNamespace(config=SimpleNamespace(dataset_name=dset_name))
    config = flashvtg_postprocess(benchmark_name, model)  # type: ignore[arg-type]
    assert config.max_timestamp == max_timestamp
    assert config.nms_method == "normal" and config.nms_threshold == 0.7
