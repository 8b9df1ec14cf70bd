"""Exception types that callers (the CLI, batch jobs, the web app) catch to report a clean message.

Each subclasses a built-in type so that code catching ``ValueError`` / ``FileNotFoundError`` keeps working.
Messages say where (file, line, key or field), what was expected, what was found and, where useful, what to do.
"""

from __future__ import annotations


class VTGKitError(Exception):
    """Base class of every error vtgkit raises on purpose (bad input, bad files, bad checkpoints)."""


class AnnotationError(VTGKitError, ValueError):
    """An annotation or prediction file has a missing, mistyped or inconsistent field."""


class FeatureError(VTGKitError, ValueError):
    """A feature file is missing, truncated, of the wrong shape or dtype, or holds non-finite values."""


class FeatureFileNotFoundError(FeatureError, FileNotFoundError):
    """A feature file that the annotations need does not exist."""


class CheckpointError(VTGKitError, ValueError):
    """A checkpoint cannot be loaded: wrong model, missing/unexpected keys, wrong shapes, unsafe or truncated."""


class VideoError(VTGKitError, ValueError):
    """A video cannot be decoded or is too short for the requested sampling."""


class ConfigError(VTGKitError, ValueError):
    """A configuration, preset or override is unknown or invalid."""


class QueryError(VTGKitError, ValueError):
    """A text query cannot be used (empty, or nothing left after CLIP's text cleaning)."""
