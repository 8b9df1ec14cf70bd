"""The one-line error contract of the CLI, shared by the tests of bad input: exit code 2, exactly one stderr line
``vtgkit COMMAND: error: ...`` holding the given fragments, never a traceback."""

from __future__ import annotations


def assert_one_line_error(code: int, err: str, command: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vtgkit {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
