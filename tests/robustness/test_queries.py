"""Hostile query texts through the tokenizer, ``Grounder``, ``vtgkit ground/highlights/summarize`` and the query
features ``vtgkit extract`` writes from an annotation file.

Cases (docs/robustness.md, "Queries"): empty, whitespace only, 10,000 tokens, bytes that are not UTF-8 (a command-line
argument and an annotation file), right-to-left text, combining characters, control characters. The rule: the model
sees exactly the token ids OpenAI's tokenizer gives (CLIP's cleaning drops control characters, composes combining
marks, and long texts are cut to the 77-token context with the last id forced to end-of-text); what cannot be a query
(nothing left, undecodable bytes) is refused with the reason; the CLI never prints a control character it was given.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

pytest.importorskip("av", reason="PyAV (vtgkit[features]) is needed to decode the test video")

import _video_cases as cases  # noqa: E402

from cli_errors import assert_one_line_error  # noqa: E402
from tiny_grounder import write_tiny_checkpoint, write_tiny_clip, write_video  # noqa: E402
from vtgkit.api import Grounder, QueryScriptWarning, QueryTruncatedWarning  # noqa: E402
from vtgkit.cli.main import main  # noqa: E402
from vtgkit.errors import AnnotationError, QueryError  # noqa: E402
from vtgkit.features.annotation_queries import read_queries  # noqa: E402
from vtgkit.features.tokenizer import default_tokenizer  # noqa: E402
from vtgkit.grounding_inputs import check_query, printable  # noqa: E402

LONG = "a player scores goal and the crowd cheers " * 1250  # 10,000 words of one BPE token each
HEBREW = "חתול קופץ על השולחן"  # "a cat jumps on the table"
ARABIC = "قطة تقفز"
# Texts whose token ids must equal those of a plain text (CLIP's cleaning makes them so).
SAME_AS_PLAIN = {
    "combining marks": ("cafe\u0301 nai\u0308ve", "caf\u00e9 na\u00efve"),
    "C0 controls and DEL": ("a dog\x00 jumps\x07 over\x7f the fence", "a dog jumps over the fence"),
    "ANSI escape sequence": ("\x1b[31ma dog jumps\x1b[0m\x1b[2J", "a dog jumps"),
    "tabs, newlines, CR": ("a\tdog\r\njumps\n", "a dog jumps"),
}


@lru_cache(maxsize=1)
def _reference_tokenizer() -> ModuleType:
    """OpenAI's ``simple_tokenizer.py`` from the installed ``clip`` package (tests/features does the same)."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("reference package `clip` (pip install --no-deps openai-clip) is not installed")
    path = Path(spec.submodule_search_locations[0]) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_reference_clip_simple_tokenizer_robust", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def official_ids(text: str, context: int = 77) -> list[int]:
    """``clip.tokenize(text, truncate=True)[0]`` as in OpenAI's clip.py: SOT + ids + EOT, cut to ``context`` with the
    last one set to EOT, zero padded."""
    reference = _reference_tokenizer()
    sot, eot = reference.encoder["<|startoftext|>"], reference.encoder["<|endoftext|>"]
    ids = [sot, *reference.encode(text), eot]
    if len(ids) > context:
        ids = ids[:context]
        ids[-1] = eot
    return ids + [0] * (context - len(ids))


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("robust-queries")
    return {"checkpoint": write_tiny_checkpoint(root / "checkpoint"),
            "clip": write_tiny_clip(root / "clip.safetensors"), "video": write_video(root / "video.mp4", 6.0),
            "root": root}


@pytest.fixture(scope="module")
def grounder(assets: dict[str, Path]) -> Grounder:
    return Grounder.from_pretrained(assets["checkpoint"], clip_weights=assets["clip"], progress=False)


def run_cli(capsys: pytest.CaptureFixture[str], assets: dict[str, Path], command: str, query: str | None,
            *extra: str) -> tuple[int, str, str]:
    argv = [command, str(assets["video"])]
    if query is not None:
        argv += ["--query", query, "--budget", "4"] if command == "summarize" else [query]
    code = main([*argv, "--checkpoint", str(assets["checkpoint"]), "--clip-weights", str(assets["clip"]),
                 "--quiet", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("text", ["", "   \t\n", LONG, HEBREW, ARABIC, f"a cat \u202e{HEBREW}\u202c jumps",
                                  "caf\udce9 au lait", *(pair[0] for pair in SAME_AS_PLAIN.values())],
                         ids=["empty", "whitespace", "10k-tokens", "hebrew", "arabic", "bidi-override",
                              "lone-surrogate", *SAME_AS_PLAIN])
def test_tokenizer_gives_the_official_ids_for_hostile_text(text: str) -> None:
    ids = default_tokenizer().tokenize(text)[0].tolist()
    assert ids == official_ids(text)


def test_long_text_is_cut_to_77_ids_ending_in_end_of_text() -> None:
    tokenizer = default_tokenizer()
    ids = tokenizer.tokenize(LONG)[0]
    assert len(tokenizer.encode(LONG)) == 10_000
    assert ids.shape == (77,) and int(ids[0]) == tokenizer.sot_token and int(ids[-1]) == tokenizer.eot_token
    assert ids[1:-1].tolist() == tokenizer.encode(LONG)[:75]


@pytest.mark.parametrize("name", sorted(SAME_AS_PLAIN))
def test_cleaning_makes_controls_and_combining_marks_the_plain_text(name: str) -> None:
    hostile, plain = SAME_AS_PLAIN[name]
    tokenizer = default_tokenizer()
    assert tokenizer.encode(hostile) == tokenizer.encode(plain)


# ------------------------------------------------------------------------------------------------------ Grounder
@pytest.mark.parametrize("text", ["", " ", "\t\n\r", "\u3000\u00a0"], ids=["empty", "space", "tab-newline",
                                                                        "unicode-spaces"])
def test_empty_or_whitespace_query_is_a_query_error(grounder: Grounder, assets: dict[str, Path], text: str) -> None:
    with pytest.raises(QueryError, match="query is empty"):
        grounder.ground(assets["video"], text)


def test_query_of_control_characters_only_is_empty_after_cleaning(grounder: Grounder,
                                                                  assets: dict[str, Path]) -> None:
    with pytest.raises(QueryError, match="empty after CLIP's text cleaning"):
        grounder.ground(assets["video"], "\x00\x07\x1b[0m\x7f")


def test_long_query_is_truncated_exactly_like_the_official_tokenizer(grounder: Grounder) -> None:
    """The query features are CLIP's layers over the official 77 ids (SOT, the first 75 BPE ids, EOT)."""
    with pytest.warns(QueryTruncatedWarning, match=r"query has \d+ CLIP tokens; only the first 77"):
        tokens, mask = grounder.encode_query(LONG)
    ids = torch.tensor([official_ids(LONG)])
    with torch.inference_mode():
        layers = grounder.clip.encode_text_layers(ids, grounder.config.num_layers)  # (1, K, 77, D)
    expected = layers[0].transpose(0, 1).half().float()  # stored as float16, as the extraction path does
    assert tokens.shape == expected.shape and int(mask.sum()) == 77
    torch.testing.assert_close(tokens, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SAME_AS_PLAIN))
def test_controls_and_combining_marks_give_the_plain_query_features(grounder: Grounder, name: str) -> None:
    hostile, plain = SAME_AS_PLAIN[name]
    torch.testing.assert_close(grounder.encode_query(hostile)[0], grounder.encode_query(plain)[0], rtol=0, atol=0)


def test_right_to_left_query_runs_and_warns_that_clip_reads_english(grounder: Grounder,
                                                                    assets: dict[str, Path]) -> None:
    with pytest.warns(QueryScriptWarning, match="no Latin letters"):
        moments = grounder.ground(assets["video"], HEBREW)
    assert all(0 <= moment.start < moment.end for moment in moments)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", QueryScriptWarning)  # mixed with English: no warning
        grounder.encode_query(f"a cat \u202e{HEBREW}\u202c jumps")


@pytest.mark.parametrize(("text", "where"), [("caf\udce9 au lait", "byte 0xe9 at character 4"),
                                             ("\udcff\udcfe", "byte 0xff at character 1"),
                                             ("a \ud83d b", "U+D83D at character 3")])
def test_undecodable_bytes_are_a_query_error_naming_the_byte(grounder: Grounder, assets: dict[str, Path], text: str,
                                                             where: str) -> None:
    """What ``surrogateescape`` makes of non-UTF-8 bytes (and a lone UTF-16 half): refused, not turned into U+FFFD."""
    with pytest.raises(QueryError, match=re.escape(f"not valid UTF-8 text ({where})")):
        grounder.ground(assets["video"], text)
    with pytest.raises(QueryError):
        check_query(text)


def test_printable_escapes_controls_and_keeps_scripts_and_marks() -> None:
    assert printable("a\x1b[31m dog\n\tjumps\x9b\u202eX") == "a\\u001b[31m dog jumps\\u009b\\u202eX"
    assert printable(f"{HEBREW} cafe\u0301") == f"{HEBREW} cafe\u0301"


# ------------------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("command", ["ground", "highlights", "summarize"])
@pytest.mark.parametrize(("text", "message"), [("", "query is empty"), (" \t\n ", "query is empty"),
                                               ("\x00\x07\x7f", "empty after CLIP's text cleaning")],
                         ids=["empty", "whitespace", "controls-only"])
def test_cli_refuses_empty_queries(capsys: pytest.CaptureFixture[str], assets: dict[str, Path], command: str,
                                   text: str, message: str) -> None:
    code, out, err = run_cli(capsys, assets, command, text)
    assert_one_line_error(code, err, command, message)
    assert out == ""


@pytest.mark.parametrize("command", ["ground", "highlights", "summarize"])
def test_cli_refuses_non_utf8_argument(capsys: pytest.CaptureFixture[str], assets: dict[str, Path],
                                       command: str) -> None:
    """The bytes ``caf\\xe9`` (Latin-1 "café") as the shell passes them; Python decodes argv with surrogateescape."""
    query = os.fsdecode(b"caf\xe9 au lait")
    code, out, err = run_cli(capsys, assets, command, query)
    assert_one_line_error(code, err, command, "not valid UTF-8 text (byte 0xe9 at character 4)", "caf\\udce9")
    assert out == ""


def test_cli_long_query_warns_once_and_answers(capsys: pytest.CaptureFixture[str], assets: dict[str, Path]) -> None:
    code, out, err = run_cli(capsys, assets, "ground", LONG, "--json")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("vtgkit ground: warning: ")]
    assert len(warnings) == 1 and "only the first 77" in warnings[0]
    assert json.loads(out)["query"] == LONG


@pytest.mark.parametrize("command", ["ground", "highlights", "summarize"])
@pytest.mark.parametrize("output", [[], ["--csv"], ["--srt"]], ids=["table", "csv", "srt"])
def test_cli_never_prints_control_characters_of_a_query(capsys: pytest.CaptureFixture[str], assets: dict[str, Path],
                                                        command: str, output: list[str]) -> None:
    """A query carrying a terminal escape sequence and a bidi override is answered (CLIP's cleaning drops the escape)
    and shown with ``\\uXXXX`` escapes in text formats."""
    query = "\x1b]0;pwned\x07a white \x1b[2Jbox \u202emoves"
    code, out, err = run_cli(capsys, assets, command, query, *output)
    assert code == 0, err
    for text in (out, err):
        assert not any(char in text for char in "\x1b\x07\u202e"), text
    if output != ["--csv"] or command != "highlights":  # highlights' CSV has no query column
        assert "\\u001b" in out


def test_cli_json_keeps_the_exact_query(capsys: pytest.CaptureFixture[str], assets: dict[str, Path]) -> None:
    query = f"a white box \x1b[2J{HEBREW} cafe\u0301"
    code, out, err = run_cli(capsys, assets, "ground", query, "--json")
    assert code == 0, err
    assert "\x1b" not in out and json.loads(out)["query"] == query


def test_cli_right_to_left_query(capsys: pytest.CaptureFixture[str], assets: dict[str, Path]) -> None:
    code, out, err = run_cli(capsys, assets, "highlights", HEBREW)
    assert code == 0, err
    assert "vtgkit highlights: warning: the query has no Latin letters" in err
    assert f"query: {HEBREW}" in out


# ----------------------------------------------------------------------------- `vtgkit extract --annotations`
@pytest.fixture(scope="module")
def extraction_clip(assets: dict[str, Path]) -> Path:
    return cases.write_extraction_clip(assets["root"] / "clip224.safetensors")


def extract_queries(capsys: pytest.CaptureFixture[str], clip: Path, annotations: Path,
                    output: Path) -> tuple[int, str, str]:
    code = main(["extract", "--clip-weights", str(clip), "--layers", "2", "--output", str(output), "--no-progress",
                 "--annotations", str(annotations)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_extract_writes_the_official_features_of_every_hostile_query(tmp_path: Path, extraction_clip: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The official tools extract whatever text an annotation holds, and so does vtgkit: an empty text gives the
    two rows of [SOT, EOT], a 10,000-word one 77 rows (truncated as ``clip.tokenize``), cleaned texts the rows of
    their plain twins."""
    records = {"empty": "", "blank": " \t ", "long": LONG, "hebrew": HEBREW,
               **{f"hostile-{i}": pair[0] for i, pair in enumerate(SAME_AS_PLAIN.values())},
               **{f"plain-{i}": pair[1] for i, pair in enumerate(SAME_AS_PLAIN.values())}}
    annotations = tmp_path / "anno.jsonl"
    annotations.write_text("".join(json.dumps({"qid": qid, "query": text}, ensure_ascii=False) + "\n"
                                   for qid, text in records.items()), encoding="utf-8")
    code, out, err = extract_queries(capsys, extraction_clip, annotations, tmp_path / "out")
    assert code == 0, err
    assert f"queries: {len(records)} extracted" in out and "0 failed" in out
    folder = tmp_path / "out" / "clip_b32_txt_k2"
    rows = {qid: np.load(folder / f"{qid}.npy") for qid in records}
    tokenizer = default_tokenizer()
    for qid, text in records.items():
        assert rows[qid].shape[0] == int((tokenizer.tokenize(text)[0] != 0).sum()), qid
    assert rows["empty"].shape[0] == rows["blank"].shape[0] == 2 and rows["long"].shape[0] == 77
    for index in range(len(SAME_AS_PLAIN)):
        np.testing.assert_array_equal(rows[f"hostile-{index}"], rows[f"plain-{index}"])


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_non_utf8_annotation_is_an_annotation_error_naming_file_and_line(tmp_path: Path, extraction_clip: Path,
                                                                         capsys: pytest.CaptureFixture[str],
                                                                         suffix: str) -> None:
    """A Latin-1 "é" on line 3: one error line naming the file, the line, the byte and its column; nothing written."""
    lines = [json.dumps({"qid": 1, "query": "a dog"}), json.dumps({"qid": 2, "query": "a cat"}),
             '{"qid": 3, "query": "caf\xe9 au lait"}']
    body = "\n".join(lines) if suffix == ".jsonl" else "[\n" + ",\n".join(lines[:2]) + ",\n" + lines[2] + "\n]"
    annotations = tmp_path / f"anno{suffix}"
    annotations.write_bytes(body.encode("latin-1"))
    line, column = (3 if suffix == ".jsonl" else 4), lines[2].index("\xe9") + 1
    where = f"{annotations}:{line}: not UTF-8 text (byte 0xe9 at column {column})"
    with pytest.raises(AnnotationError) as error:
        read_queries(annotations)
    assert str(error.value).startswith(where)
    code, out, err = extract_queries(capsys, extraction_clip, annotations, tmp_path / "out")
    assert_one_line_error(code, err, "extract", where)
    assert not (tmp_path / "out" / "clip_b32_txt_k2").exists()
