"""Bad input to the grounding commands: exit code 2 and one line on stderr, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_errors import assert_one_line_error


def test_missing_video(run_vtgkit, tmp_path: Path) -> None:
    code, _, err = run_vtgkit("ground", str(tmp_path / "nope.mp4"), "a dog", model=False)
    assert_one_line_error(code, err, "ground", "nope.mp4", "no such file")


def test_file_that_is_not_a_video(run_vtgkit, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    code, _, err = run_vtgkit("highlights", str(notes), "a dog", model=False)
    assert_one_line_error(code, err, "highlights", "notes.txt", "cannot open")


def test_folder_instead_of_video(run_vtgkit, tmp_path: Path) -> None:
    code, _, err = run_vtgkit("summarize", str(tmp_path), model=False)
    assert_one_line_error(code, err, "summarize", "not a file")


@pytest.mark.parametrize("query", ["", "   \n\t"])
def test_empty_query(run_vtgkit, grounding_assets: dict[str, Path], query: str) -> None:
    code, _, err = run_vtgkit("ground", str(grounding_assets["video"]), query, model=False)
    assert_one_line_error(code, err, "ground", "query is empty")


def test_video_shorter_than_one_clip(run_vtgkit, tmp_path: Path) -> None:
    from tiny_grounder import write_video

    short = write_video(tmp_path / "short.mp4", seconds=1.0)
    code, _, err = run_vtgkit("ground", str(short), "a dog")
    assert_one_line_error(code, err, "ground", "short.mp4", "shorter than one clip")


def test_bad_budget(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    code, _, err = run_vtgkit("summarize", str(grounding_assets["video"]), "--budget", "150%", model=False)
    assert_one_line_error(code, err, "summarize", "150%")


def test_unknown_checkpoint_name(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    code, _, err = run_vtgkit("ground", str(grounding_assets["video"]), "a dog", "--checkpoint",
                              "r2tuning-qvhighlight", model=False)
    assert_one_line_error(code, err, "ground", "r2tuning-qvhighlights")  # the close match is suggested


def test_flashvtg_checkpoint_not_in_the_cache(run_vtgkit, grounding_assets: dict[str, Path], tmp_path: Path) -> None:
    # Released FlashVTG files sit in Dropbox folders: placed by hand, and the message says where.
    code, _, err = run_vtgkit("ground", str(grounding_assets["video"]), "a dog", "--checkpoint",
                              "flashvtg-qvhighlights", "--cache-dir", str(tmp_path), model=False)
    assert_one_line_error(code, err, "ground", "cannot be downloaded automatically", "place it at")


def test_long_query_is_truncated_with_a_warning(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    code, out, err = run_vtgkit("ground", str(grounding_assets["video"]), "goal " * 10_000, "--json")
    assert code == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("vtgkit ground: warning: ")]
    assert len(warnings) == 1 and "only the first 77" in warnings[0]


def test_query_in_another_script_warns(run_vtgkit, grounding_assets: dict[str, Path]) -> None:
    code, _, err = run_vtgkit("ground", str(grounding_assets["video"]), "кошка прыгает")
    assert code == 0, err
    assert "vtgkit ground: warning: the query has no Latin letters" in err
