"""Benchmark annotation parsers: tiny fixtures for every bad-input case, plus the real shared files when present."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vtgkit.data.benchmarks import BENCHMARKS, clip_arch_tag, feature_folder_names, get_benchmark
from vtgkit.data.charades_sta import load_charades_sta
from vtgkit.data.domain_splits import select_domain_split
from vtgkit.data.ego4d_nlq import load_ego4d_nlq
from vtgkit.data.qvhighlights import load_qvhighlights
from vtgkit.data.tacos import load_tacos, tacos_feature_video_id
from vtgkit.data.tvsum import load_tvsum, load_tvsum_jsonl
from vtgkit.data.youtube_highlights import load_youtube_highlights, load_youtube_highlights_jsonl, youtube_feature_fps
from vtgkit.errors import AnnotationError, ConfigError

QV_GOOD = {"qid": 7, "query": "a dog runs", "duration": 150, "vid": "abc_0.0_150.0",
           "relevant_windows": [[0, 4], [10, 12]], "relevant_clip_ids": [0, 1, 5],
           "saliency_scores": [[1, 2, 3], [4, 4, 4], [0, 0, 1]]}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_qvhighlights_parses_fields_and_keeps_qid_type(tmp_path: Path) -> None:
    test_line = {"qid": "q-9", "query": "x", "duration": 120.5, "vid": "v"}
    samples = load_qvhighlights(write_jsonl(tmp_path / "val.jsonl", [QV_GOOD, test_line]))
    assert [s.qid for s in samples] == [7, "q-9"]
    first = samples[0]
    assert first.windows == [(0.0, 4.0), (10.0, 12.0)]
    assert first.relevant_clip_ids == [0, 1, 5]
    assert first.saliency_scores == [[1, 2, 3], [4, 4, 4], [0, 0, 1]]
    assert first.duration == 150.0 and first.raw == QV_GOOD
    assert samples[1].windows == [] and samples[1].saliency_scores is None  # test split: no labels


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"relevant_windows": [[30]]}, "'relevant_windows'", "[[start, end], ...]"),
        ({"relevant_windows": []}, "'relevant_windows'", "at least one window"),
        ({"relevant_windows": [[0, "4"]]}, "'relevant_windows'", "two finite numbers"),
        ({"duration": -3}, "'duration'", "number > 0"),
        ({"duration": True}, "'duration'", "number > 0"),
        ({"qid": None}, "'qid'", "integer or a non-empty string"),
        ({"vid": ""}, "'vid'", "non-empty string"),
        ({"query": 5}, "'query'", "string"),
        ({"saliency_scores": [[1, 2]] * 3}, "'saliency_scores'", "[s1, s2, s3]"),
        ({"saliency_scores": [[1, 2, -1]] * 3}, "'saliency_scores'", ">= 0"),
        ({"saliency_scores": [[1, 2, 3]] * 2}, "'saliency_scores'", "one entry per 'relevant_clip_ids'"),
        ({"relevant_clip_ids": [0, -1, 2]}, "'relevant_clip_ids'", "integers >= 0"),
    ],
)
def test_qvhighlights_bad_field_names_file_line_and_field(tmp_path: Path, change: dict, field: str,
                                                          expected: str) -> None:
    path = write_jsonl(tmp_path / "qv_val.jsonl", [QV_GOOD, {**QV_GOOD, "qid": 8, **change}])
    with pytest.raises(AnnotationError) as info:
        load_qvhighlights(path)
    message = str(info.value)
    assert f"{path} line 2:" in message and field in message and expected in message


def test_qvhighlights_missing_field_and_lone_partner(tmp_path: Path) -> None:
    record = {k: v for k, v in QV_GOOD.items() if k != "duration"}
    with pytest.raises(AnnotationError, match=r"line 1: missing field 'duration'"):
        load_qvhighlights(write_jsonl(tmp_path / "a.jsonl", [record]))
    record = {k: v for k, v in QV_GOOD.items() if k != "saliency_scores"}
    with pytest.raises(AnnotationError, match=r"line 1: 'relevant_clip_ids' needs its partner"):
        load_qvhighlights(write_jsonl(tmp_path / "b.jsonl", [record]))


def test_malformed_lines_duplicate_qids_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(QV_GOOD) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"bad.jsonl line 3: not valid JSON"):
        load_qvhighlights(path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"line 1: expected a JSON object per line; got list"):
        load_qvhighlights(path)
    with pytest.raises(AnnotationError, match=r"line 2: 'qid' 7 repeats the qid of .* line 1"):
        load_qvhighlights(write_jsonl(tmp_path / "dup.jsonl", [QV_GOOD, QV_GOOD]))
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match="no records"):
        load_qvhighlights(path)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        load_qvhighlights(tmp_path / "absent.jsonl")


def test_charades_tacos_ego4d_need_windows(tmp_path: Path) -> None:
    record = {"qid": 1, "query": "q", "duration": 30.96, "vid": "3MSZA"}
    for load in (load_charades_sta, load_tacos, load_ego4d_nlq):
        with pytest.raises(AnnotationError, match=r"line 1: missing field 'relevant_windows'"):
            load(write_jsonl(tmp_path / f"{load.__name__}.jsonl", [record]))
    sample = load_charades_sta(write_jsonl(tmp_path / "c.jsonl", [{**record, "relevant_windows": [[24.3, 30.4]]}]))[0]
    assert sample.windows == [(24.3, 30.4)]


def test_tacos_feature_suffix_only_for_lookup(tmp_path: Path) -> None:
    record = {"qid": "s30-d52_0", "query": "She took out kiwi", "duration": 249.86, "vid": "s30-d52",
              "relevant_windows": [[4.79, 12.04]]}
    sample = load_tacos(write_jsonl(tmp_path / "test.jsonl", [record]))[0]
    assert sample.vid == "s30-d52"
    assert tacos_feature_video_id(sample) == "s30-d52-cam-002"
    assert get_benchmark("tacos").feature_video_id(sample) == "s30-d52-cam-002"


def test_ego4d_string_qids_zero_length_windows_and_video_uid(tmp_path: Path) -> None:
    record = {"qid": "val0", "query": "where was the cup?", "duration": 480.0, "vid": "c" * 36,
              "video_uid": "v" * 36, "relevant_windows": [[425.0, 425.0]]}
    sample = load_ego4d_nlq(write_jsonl(tmp_path / "nlq_val.jsonl", [record]))[0]
    assert sample.qid == "val0" and sample.windows == [(425.0, 425.0)]
    with pytest.raises(AnnotationError, match=r"line 1: 'video_uid' must be a non-empty string"):
        load_ego4d_nlq(write_jsonl(tmp_path / "bad.jsonl", [{**record, "video_uid": 3}]))
    with pytest.raises(FileNotFoundError, match="licence-gated"):
        load_ego4d_nlq(tmp_path / "absent" / "nlq_val.jsonl")


def test_tvsum_both_formats(tmp_path: Path) -> None:
    scores = [[float(1 + (i + j) % 5) for j in range(20)] for i in range(6)]
    anno = {"vidA": {"fps": 30.0, "frames": "360", "domain": "BK", "title": "bees", "anno": scores}}
    path = tmp_path / "tvsum_anno.json"
    path.write_text(json.dumps(anno), encoding="utf-8")
    sample = load_tvsum(path)[0]
    assert sample.qid == sample.vid == "vidA" and sample.query == "bees" and sample.domain == "BK"
    assert sample.clip_saliency == pytest.approx([(sum(row) - 20) / 80 for row in scores])
    assert sample.duration == pytest.approx(12.0)
    line = {"qid": "vidA", "vid": "vidA", "query": "bees", "duration": 6, "label": scores, "domain": "BK"}
    assert load_tvsum_jsonl(write_jsonl(tmp_path / "tvsum_val.jsonl", [line]))[0].clip_saliency == sample.clip_saliency
    anno["vidA"]["anno"][2] = [1.0] * 19
    path.write_text(json.dumps(anno), encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"tvsum_anno.json video 'vidA': 'anno' must be .* of 20 .* clip 2"):
        load_tvsum(path)


def test_youtube_both_formats_and_feature_rate(tmp_path: Path) -> None:
    info = ["dog", None, [], 3, "chan", "Title text", "description", None]
    anno = {"yt1": {"fps": 30.0, "frames": "300", "domain": "dog", "info": info, "match": [-1, 0, 1, 1, -1]}}
    path = tmp_path / "youtube_anno.json"
    path.write_text(json.dumps(anno), encoding="utf-8")
    sample = load_youtube_highlights(path)[0]
    assert sample.query == "Title text" and sample.clip_saliency == [0.0, 0.5, 1.0, 1.0, 0.0]
    assert youtube_feature_fps(sample) == pytest.approx(5 / 10.0)  # one clip per segment over 10 s
    line = {"qid": "yt1", "vid": "yt1", "query": "dog", "duration": 10.0, "domain": "dog", "frames": 300.0,
            "fps": 30.0, "match": [-1, 0, 1, 1, -1], "label": [[0], [0], [1], [1], [0]]}
    jsonl_sample = load_youtube_highlights_jsonl(write_jsonl(tmp_path / "youtube_valid.jsonl", [line]))[0]
    assert jsonl_sample.clip_saliency == sample.clip_saliency and jsonl_sample.query == "dog"
    anno["yt1"]["info"] = ["too", "short"]
    path.write_text(json.dumps(anno), encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"video 'yt1': 'info' must be a list whose element 5 is the title"):
        load_youtube_highlights(path)
    anno["yt1"]["info"], anno["yt1"]["frames"] = info, "many"
    path.write_text(json.dumps(anno), encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"video 'yt1': 'frames' must be a number > 0"):
        load_youtube_highlights(path)


def test_domain_split_counts_missing_videos(tmp_path: Path) -> None:
    info = ["", None, [], 0, "", "t", "", None]
    anno = {vid: {"fps": 30.0, "frames": "300", "domain": "dog", "info": info, "match": [1, -1]}
            for vid in ("a", "b", "c")}
    anno_path, splits_path = tmp_path / "anno.json", tmp_path / "splits.json"
    anno_path.write_text(json.dumps(anno), encoding="utf-8")
    splits_path.write_text(json.dumps({"dog": {"train": ["a"], "val": ["c", "zz", "b"]}}), encoding="utf-8")
    kept, skipped = select_domain_split(load_youtube_highlights(anno_path), splits_path, "dog", "val")
    assert [s.vid for s in kept] == ["c", "b"]  # the split table's order
    assert skipped == Counter({"listed in the split but not in the annotations": 1})
    with pytest.raises(AnnotationError, match="no domain 'cat'"):
        select_domain_split(kept, splits_path, "cat", "val")


def test_benchmark_settings_and_folder_names() -> None:
    assert set(BENCHMARKS) == {"qvhighlights", "charades_sta", "tacos", "ego4d_nlq", "youtube_highlights", "tvsum"}
    assert feature_folder_names() == ("clip_b32_vid_k4", "clip_b32_txt_k4")
    assert clip_arch_tag("ViT-L/14-336px") == "l14_336px" and clip_arch_tag("ViT-B/16") == "b16"
    qv, charades = get_benchmark("qvhighlights"), get_benchmark("charades_sta")
    assert (qv.fps, qv.unit, qv.nms, qv.nms_threshold, qv.min_video_len) == (0.5, 2.0, "normal", 0.7, 5.0)
    assert (charades.fps, charades.unit, charades.nms) == (1.0, 0.1, "linear")
    assert get_benchmark("tvsum").feature_query_id(load_sample_stub()) == "the_vid"
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):
        get_benchmark("nope")


def load_sample_stub():
    from vtgkit.structures import GroundingSample

    return GroundingSample(qid="the_qid", vid="the_vid", query="", duration=None)


# Real benchmark files (../shared/data/annotations): every non-blank line must parse.
SLOW = pytest.mark.slow  # the training files take seconds to parse on a loaded 2-core machine
REAL_FILES = [
    pytest.param("qvhighlights", "qvhighlights/highlight_train_release.jsonl", marks=SLOW),
    ("qvhighlights", "qvhighlights/highlight_val_release.jsonl"),
    ("qvhighlights", "qvhighlights/highlight_test_release.jsonl"),
    ("qvhighlights", "qvhighlights/highlight_test_with_gt.jsonl"),
    pytest.param("charades_sta", "charades_sta/charades_sta_train_tvr_format.jsonl", marks=SLOW),
    ("charades_sta", "charades_sta/charades_sta_test_tvr_format.jsonl"),
    pytest.param("tacos", "tacos/train.jsonl", marks=SLOW),
    ("tacos", "tacos/val.jsonl"),
    ("tacos", "tacos/test.jsonl"),
    ("tvsum", "tvsum/tvsum_train.jsonl"),
    ("tvsum", "tvsum/tvsum_val.jsonl"),
    ("youtube_highlights", "youtube_highlights/youtube_train.jsonl"),
    ("youtube_highlights", "youtube_highlights/youtube_valid.jsonl"),
]


@pytest.mark.parametrize(("benchmark_name", "relative"), REAL_FILES)
def test_real_jsonl_files_parse_completely(annotations_dir: Path, benchmark_name: str, relative: str) -> None:
    path = annotations_dir / relative
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with path.open(encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    samples = get_benchmark(benchmark_name).load(path)
    assert [s.qid for s in samples] == [r["qid"] for r in records]
    if get_benchmark(benchmark_name).has_moments and "relevant_windows" in records[0]:
        assert all(len(s.windows) == len(r["relevant_windows"]) for s, r in zip(samples, records, strict=True))


@pytest.mark.parametrize(("benchmark_name", "anno", "splits"), [
    ("tvsum", "tvsum/tvsum_train_sfc.json", "tvsum/tvsum_splits.json"),
    ("youtube_highlights", "youtube_highlights/youtube_anno.json", "youtube_highlights/youtube_splits.json"),
])
def test_real_r2tuning_json_files_and_splits(annotations_dir: Path, benchmark_name: str, anno: str,
                                             splits: str) -> None:
    anno_path, splits_path = annotations_dir / anno, annotations_dir / splits
    if not anno_path.is_file() or not splits_path.is_file():
        pytest.skip(f"{anno_path} or {splits_path} not present")
    raw = json.loads(anno_path.read_text(encoding="utf-8"))
    samples = get_benchmark(benchmark_name).load(anno_path)
    assert [s.vid for s in samples] == list(raw)
    table = json.loads(splits_path.read_text(encoding="utf-8"))
    for domain, lists in table.items():
        for split in ("train", "val"):
            kept, skipped = select_domain_split(samples, splits_path, domain, split)
            assert [s.vid for s in kept] == [v for v in lists[split] if v in raw]
            assert sum(skipped.values()) == len(lists[split]) - len(kept)
            assert all(s.domain == domain for s in kept)
