"""Import a module of numba kernels on first use, or report that numba cannot run here.

Why: numba's import costs ~0.35 s, which every model import would pay if the kernel modules were imported at the
top; and a machine without numba (or with a numba that does not import beside the installed numpy) keeps the torch
paths of vtgkit.nn.fused_rows and vtgkit.nn.max_linear instead of failing.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.cache
def load_kernels(module: str) -> ModuleType | None:
    """The kernel module ``module`` (imported once), or None when numba does not import."""
    try:
        return importlib.import_module(module)
    except ImportError:  # numba missing, or a numba that does not import beside this numpy
        return None
