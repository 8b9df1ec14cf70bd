"""What ``vtgkit extract`` counts and reports at the end: partly decoded videos, queries cut to CLIP's context,
malformed or torn manifest lines, and failing queries isolated from the rest of their chunk."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.features.conftest import TINY_CLIP

from vtgkit.atomic_files import PARTIAL_PREFIX
from vtgkit.cli.main import main
from vtgkit.errors import QueryError
from vtgkit.features.decoding import DamagedVideoWarning
from vtgkit.features.encoding import ClipEncoder
from vtgkit.features.manifest import STATE_DIR
from vtgkit.features.tokenizer import default_tokenizer

LONG_QUERY = " ".join(f"word{i}" for i in range(90))  # well over 77 tokens whatever the BPE merges


def _extract(clip: Path, output: Path, videos: list[Path], *extra: str) -> int:
    return main(["extract", "--clip-weights", str(clip), "--output", str(output), "--no-progress", "--batch-size",
                 "4", *extra, *(str(v) for v in videos)])


def _annotations(tmp_path: Path, queries: list[dict]) -> Path:
    path = tmp_path / "anno.jsonl"
    path.write_text("".join(json.dumps({**q, "vid": "a", "duration": 3}) + "\n" for q in queries))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _damaged_videos(folder: Path, make_video: Callable[..., Path]) -> dict[str, Path]:
    """A stream with zeros over the middle of its media data (corrupt packets) and the first half of an MKV, whose
    header still declares all 6 s (the stream ends early): both decode, partly."""
    clean = make_video("clean-6s.mp4", 6, gop=20).read_bytes()
    corrupt = bytearray(clean)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 2000] = bytes(2000)
    (folder / "corrupt.mp4").write_bytes(bytes(corrupt))
    whole = make_video("whole-6s.mkv", 6, gop=20).read_bytes()
    (folder / "truncated.mkv").write_bytes(whole[: len(whole) // 2])
    return {"corrupt": folder / "corrupt.mp4", "truncated": folder / "truncated.mkv"}


def test_partly_decoded_videos_are_extracted_counted_and_logged(tmp_path: Path, tiny_clip_file: Path,
                                                                make_video: Callable[..., Path], capsys) -> None:
    damaged = _damaged_videos(tmp_path, make_video)
    good = make_video("a.mp4", 3)
    output = tmp_path / "out"
    with pytest.warns(DamagedVideoWarning) as caught:  # still passed on to the caller, not swallowed
        code = _extract(tiny_clip_file, output, [good, *damaged.values()], "--fps", "1")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "videos: 3 extracted" in out and "0 failed" in out
    assert "2 videos partly decoded" in out
    warned = {str(w.message).split(": ")[0] for w in caught if w.category is DamagedVideoWarning}
    assert warned == {str(path) for path in damaged.values()}
    entries = _jsonl(output / STATE_DIR / "warnings.0of1.jsonl")
    assert {entry["item"] for entry in entries} == {str(path) for path in damaged.values()}
    assert all(entry["warning"] == "DamagedVideoWarning" and entry["item"] in entry["message"] for entry in entries)
    assert any("corrupt packet" in entry["message"] for entry in entries)
    assert any("ends at" in entry["message"] for entry in entries)
    assert not _jsonl(output / STATE_DIR / "failures.0of1.jsonl")
    rows = {path.stem: np.load(path).shape[0] for path in (output / "clip_b32_vid_k4_1.0fps").glob("*.npy")}
    assert rows["a"] == 3 and rows["corrupt"] >= 1 and 1 <= rows["truncated"] < 6

    # A clean batch prints no such line.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedVideoWarning)
        assert _extract(tiny_clip_file, tmp_path / "clean", [good], "--fps", "1") == 0
    assert "partly decoded" not in capsys.readouterr().out


def test_queries_over_the_context_are_cut_counted_and_logged(tmp_path: Path, tiny_clip_file: Path, capsys) -> None:
    queries = [{"qid": 1, "query": "a short query"}, {"qid": 2, "query": LONG_QUERY}]
    output = tmp_path / "out"
    assert _extract(tiny_clip_file, output, [], "--annotations", str(_annotations(tmp_path, queries))) == 0
    out = capsys.readouterr().out
    assert f"1 queries longer than {TINY_CLIP.context_length} tokens were cut" in out
    entries = _jsonl(output / STATE_DIR / "warnings.0of1.jsonl")
    assert [(entry["item"], entry["warning"]) for entry in entries] == [("query 2", "QueryCut")]
    tokens = len(default_tokenizer().encode(LONG_QUERY)) + 2
    assert f"{tokens} tokens" in entries[0]["message"]
    # the features are still written, cut to the context as the official ones are
    features = np.load(output / "clip_b32_txt_k4" / "2.npy")
    assert features.shape[0] == TINY_CLIP.context_length


def test_a_failing_query_fails_alone_not_its_chunk(tmp_path: Path, tiny_clip_file: Path, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One query that raises used to mark its whole chunk (32) as failed; now only it is in the failure log."""
    original = ClipEncoder.encode_queries

    def encode_queries(self: ClipEncoder, tokenizer, texts: list[str]) -> list[dict]:  # noqa: ANN001
        for text in texts:
            if "POISON" in text:
                raise QueryError(f"query {text!r}: cannot be encoded")
        return original(self, tokenizer, texts)

    monkeypatch.setattr(ClipEncoder, "encode_queries", encode_queries)
    queries = [{"qid": i, "query": f"query number {i}"} for i in range(5)]
    queries[2]["query"] = "a POISON query"
    output = tmp_path / "out"
    assert _extract(tiny_clip_file, output, [], "--annotations", str(_annotations(tmp_path, queries))) == 1
    out = capsys.readouterr().out
    assert "queries: 4 extracted, 0 already done; 1 failed" in out
    failures = _jsonl(output / STATE_DIR / "failures.0of1.jsonl")
    assert [(f["item"], f["error"]) for f in failures] == [("query 2", "QueryError")]
    assert "a POISON query" in failures[0]["message"]
    assert sorted(p.stem for p in (output / "clip_b32_txt_k4").glob("*.npy")) == ["0", "1", "3", "4"]


def test_malformed_and_torn_manifest_lines_are_reported(tmp_path: Path, tiny_clip_file: Path,
                                                        make_video: Callable[..., Path], capsys) -> None:
    video = make_video("a.mp4", 3)
    output = tmp_path / "out"
    assert _extract(tiny_clip_file, output, [video]) == 0
    assert "manifest" not in capsys.readouterr().out
    state = output / STATE_DIR
    mine, other = state / "manifest.0of1.jsonl", state / "manifest.1of2.jsonl"
    with mine.open("a") as file:  # a malformed line, then a killed run's torn last line
        file.write('["not", "a record"]\n{"path": "clip_b32_vid_k4/b.npy", "sha2')
    other.write_text('{"path": "clip_b32_vid_k4/c.npy", "sha256": "ab')  # another shard's torn line
    assert _extract(tiny_clip_file, output, [video]) == 0
    out = capsys.readouterr().out
    assert "videos: 0 extracted (0 frames), 1 already done" in out  # the good record still verifies
    assert "2 malformed or torn manifest lines ignored" in out
    assert f"cut a torn last line (a killed run's) from {mine}" in out
    assert mine.read_bytes().endswith(b"\n")


def test_a_shard_removes_only_its_own_partial_files(tmp_path: Path, tiny_clip_file: Path,
                                                    make_video: Callable[..., Path], capsys) -> None:
    """Shards may share one output folder: a shard starting must not delete a partial file that another shard is
    filling right now (its rename would fail and the video be logged as failed)."""
    videos = [make_video("a.mp4", 3), make_video("b.mp4", 2)]  # shard 0/2 takes a, shard 1/2 takes b
    queries = [{"qid": 1, "query": "first"}, {"qid": 2, "query": "second"}]
    output = tmp_path / "out"
    video_dir, text_dir = output / "clip_b32_vid_k4", output / "clip_b32_txt_k4"
    video_dir.mkdir(parents=True)
    text_dir.mkdir()
    leftovers = {name: folder / f"{PARTIAL_PREFIX}{name}.k1ll3d_x" for folder, name in
                 ((video_dir, "a.npy"), (video_dir, "b.npy"), (text_dir, "1.npy"), (text_dir, "2.npy"))}
    for path in leftovers.values():
        path.write_bytes(b"\x93NUMPY half")
    assert _extract(tiny_clip_file, output, videos, "--shard", "0/2",
                    "--annotations", str(_annotations(tmp_path, queries))) == 0
    assert "removed 2 partial files" in capsys.readouterr().out
    assert sorted(name for name, path in leftovers.items() if path.exists()) == ["2.npy", "b.npy"]
    assert (video_dir / "a.npy").is_file() and (text_dir / "1.npy").is_file()
