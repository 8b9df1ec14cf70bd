"""vtgkit: video temporal grounding (moment retrieval, highlight detection, summarization).

The public surface is imported lazily so that ``import vtgkit`` stays cheap (no torch import until a model is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Grounder", "create_model", "list_models", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from vtgkit.api import Grounder
    from vtgkit.models import create_model, list_models

_LAZY = {
    "Grounder": "vtgkit.api",
    "create_model": "vtgkit.models",
    "list_models": "vtgkit.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vtgkit' has no attribute {name!r}")
