"""Checks and parsing of user input to the Grounder and its commands: video paths, queries, summary budgets.

Everything here raises vtgkit errors (one clear line in the CLI) or emits the warnings below.
"""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from pathlib import Path

from vtgkit.errors import ConfigError, QueryError, VideoError
from vtgkit.summary import DEFAULT_BUDGET_FRACTION


class QueryTruncatedWarning(UserWarning):
    """The query is longer than CLIP's 77-token context and was cut, as the official tool does."""


class QueryScriptWarning(UserWarning):
    """The query has letters but none in Latin script; CLIP's tokenizer and training text are English."""


def check_video(video: str | os.PathLike[str]) -> Path:
    """``video`` as a Path after checking it exists and its container has a video stream (VideoError otherwise)."""
    from vtgkit.features.decoding import probe_video

    path = existing_file(video)
    probe_video(path)
    return path


def existing_file(video: str | os.PathLike[str]) -> Path:
    """``video`` as a Path after checking it is an existing, non-empty file (VideoError otherwise)."""
    path = Path(video).expanduser()
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file (expected a video file)")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    return path


def check_query(query: str) -> str:
    """The query with surrounding whitespace removed; QueryError when it is not a non-empty string of valid text.

    A command-line argument that is not UTF-8 reaches Python with its bad bytes as lone surrogates
    (``surrogateescape``); CLIP's cleaning would turn each into U+FFFD silently, so it is refused instead, naming
    the byte.
    """
    if not isinstance(query, str):
        raise QueryError(f"query must be a string, got {type(query).__name__}")
    for position, char in enumerate(query):
        if "\ud800" <= char <= "\udfff":
            byte = f"byte 0x{ord(char) - 0xDC00:02x}" if "\udc80" <= char <= "\udcff" else f"U+{ord(char):04X}"
            raise QueryError(f"query '{printable(shorten(query))}' is not valid UTF-8 text ({byte} at character "
                             f"{position + 1}): pass the query in UTF-8 (check the terminal's encoding)")
    text = query.strip()
    if not text:
        raise QueryError("query is empty: give a sentence describing the moment to find")
    return text


# Bidirectional embedding, override and isolate controls: printed raw they reorder what a terminal shows.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` on one line, safe to print on a terminal: whitespace runs become one space; control characters (C0,
    DEL, C1: ANSI escape sequences start with one), bidi controls and lone surrogates are shown as ``\\uXXXX``
    escapes. Right-to-left letters and combining marks are kept."""
    return "".join(f"\\u{ord(char):04x}" if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS
                   or "\ud800" <= char <= "\udfff" else char for char in " ".join(text.split()))


def warn_if_not_latin(text: str) -> None:
    letters = [char for char in text if char.isalpha()]
    if letters and not any("LATIN" in unicodedata.name(char, "") for char in letters):
        warnings.warn(QueryScriptWarning(
            "the query has no Latin letters; CLIP's tokenizer and the models were trained on English text, so "
            "results for other scripts are unreliable (translate the query to English)"), stacklevel=3)


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_budget(text: str) -> tuple[float | None, float]:
    """``"30"`` → (30 s, default fraction); ``"15%"`` → (None, 0.15). ConfigError on anything else."""
    value = text.strip()
    try:
        if value.endswith("%"):
            fraction = float(value[:-1]) / 100
            if not 0 < fraction <= 1 or not math.isfinite(fraction):
                raise ValueError
            return None, fraction
        seconds = float(value)
        if not seconds > 0 or not math.isfinite(seconds):
            raise ValueError
        return seconds, DEFAULT_BUDGET_FRACTION
    except ValueError:
        raise ConfigError(f"budget {text!r}: expected seconds (e.g. 30) or a percentage in (0, 100] "
                          "(e.g. 15%)") from None

