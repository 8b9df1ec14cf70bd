"""Load official training checkpoints that pickle option objects, without running code from the file.

Official checkpoints (e.g. FlashVTG's ``model_best.ckpt``, spec flashvtg.md §9) are ``torch.save`` dicts whose
``opt`` entry holds an ``argparse.Namespace`` embedding an ``nncore.utils.config.Config`` (a dict subclass) and a
``torch.device``. Plain ``torch.load(weights_only=True)`` refuses them, and an unrestricted load would run any
callable the file names. This module keeps ``weights_only=True`` (torch's own restricted unpickler: only
allow-listed globals may be looked up, only allow-listed callables may be called, ``SETITEM`` only into plain
dicts) and extends its allow-list with exactly the option classes such files hold:

* ``argparse.Namespace`` — a plain attribute bag;
* ``nncore.utils.config.Config`` — mapped to :class:`collections.OrderedDict`, so the config is read as plain data
  and nncore never needs to be installed (its ``_frozen``/``_filename`` attributes land in the dict's ``__dict__``);
* ``torch.device``, ``OrderedDict``, tensor rebuild functions and storages — allowed by torch by default.

Anything else (``os.system``, ``builtins.exec``, other nncore classes, ...) is refused before it is called, with a
:class:`~vtgkit.errors.CheckpointError` naming the file and the offending globals.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vtgkit.errors import CheckpointError

# The option globals of official checkpoints. A ``(replacement, "module.Name")`` pair makes the unpickler build
# ``replacement`` wherever the file names ``module.Name``.
OFFICIAL_OPTION_GLOBALS: tuple[Any, ...] = (
    argparse.Namespace,
    (OrderedDict, "nncore.utils.config.Config"),
)


def _global_names(allowed: Sequence[Any]) -> set[str]:
    names = set()
    for entry in allowed:
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{entry.__module__}.{entry.__qualname__}")
    return names


def _blocked_globals(path: Path, allowed: Sequence[Any]) -> list[str]:
    """Globals named in the file that neither torch's default allow-list nor ``allowed`` covers (read-only scan)."""
    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # an unreadable file: the load error itself is reported instead
        return []
    return sorted(set(named) - _global_names(allowed))


def load_restricted_checkpoint(
    path: str | Path,
    allowed_globals: Sequence[Any] = OFFICIAL_OPTION_GLOBALS,
    map_location: str | torch.device = "cpu",
) -> Any:
    """Load a ``torch.save`` file with ``weights_only=True`` plus an explicit allow-list of extra globals.

    Args:
        path: checkpoint file (zip format of ``torch.save`` or the legacy format).
        allowed_globals: classes, or ``(replacement, "module.Name")`` pairs, allowed besides torch's defaults.
        map_location: where tensors are placed (official files hold CUDA tensors).

    Returns:
        The unpickled object (for official checkpoints a dict with ``model``, ``optimizer``, ``opt``, ...).

    Raises:
        CheckpointError: the file is missing or truncated, or names a global outside the allow-list
            (nothing from the file is executed in that case).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # Zip files can be scanned for every global; for the legacy format torch's message names the first one.
        blocked = _blocked_globals(path, allowed_globals) or re.findall(r"GLOBAL ([\w.]+)", str(error))
        what = f"it names globals outside the allow-list: {', '.join(blocked)}" if blocked else f"{error}"
        raise CheckpointError(
            f"{path}: refused to load the checkpoint because {what}. Only tensors, plain containers, "
            f"argparse.Namespace, nncore Config (read as plain data) and torch.device are accepted; nothing from "
            f"the file was executed. If you trust the file, re-save its 'model' state dict with torch.save and "
            f"load that instead."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"{path}: cannot read the checkpoint (truncated or not a torch.save file): {error}"
        ) from None


def namespace_to_dict(options: Any) -> dict[str, Any]:
    """Turn an unpickled ``argparse.Namespace`` (or a JSON-loaded dict) of training options into a plain dict."""
    if isinstance(options, argparse.Namespace):
        return dict(vars(options))
    if isinstance(options, dict):
        return dict(options)
    raise CheckpointError(f"training options must be an argparse.Namespace or a dict; got {type(options).__name__}")
