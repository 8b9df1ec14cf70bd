"""The one place where vtgkit reads pickles: nothing a file names is run unless it is on an explicit allow-list.

Two readers, both refusing (with a :class:`~vtgkit.errors.CheckpointError` naming the file and the globals) anything
outside their allow-list *before* it is called:

* :func:`load_restricted_checkpoint` — ``torch.save`` files that pickle option objects. Official training checkpoints
  (e.g. FlashVTG's ``model_best.ckpt``, spec flashvtg.md §9) hold an ``opt`` entry with an ``argparse.Namespace``
  embedding an ``nncore.utils.config.Config`` (a dict subclass) and a ``torch.device``. Plain
  ``torch.load(weights_only=True)`` refuses them, and an unrestricted load would run any callable the file names.
  This keeps ``weights_only=True`` (torch's own restricted unpickler: only allow-listed globals may be looked up,
  only allow-listed callables may be called, ``SETITEM`` only into plain dicts) and extends its allow-list with
  exactly the option classes such files hold: ``argparse.Namespace``; ``nncore.utils.config.Config`` mapped to
  :class:`collections.OrderedDict` (read as plain data, nncore never needs to be installed); ``torch.device``,
  ``OrderedDict``, tensor rebuild functions and storages (torch's defaults).
* :func:`load_numpy_pickle` — plain pickles of numpy arrays in dicts, such as the Caffe2 weight blobs PySlowFast
  releases (``SLOWFAST_8x8_R50.pkl``: ``{"blobs": {name: ndarray}}``, written by Python 2). Only numpy's array and
  dtype reconstruction, ``OrderedDict`` and ``_codecs.encode`` (how Python 3 protocol-2 pickles store bytes) may be
  named.

``vtgkit.models.restricted_unpickler`` re-exports the first reader for the model code.
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
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; expected a checkpoint file such as FlashVTG's model_best.ckpt "
                              "(a folder with model.safetensors + config.json is a vtgkit R2-Tuning checkpoint)")
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


def _numpy_reconstruct():  # noqa: ANN202 - numpy's private array rebuild function
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    return core.multiarray._reconstruct, core.multiarray.scalar


class _NumpyUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickle of numpy arrays in plain containers needs."""

    def __init__(self, file: Any, path: Path, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        import codecs

        import numpy as np

        reconstruct, scalar = _numpy_reconstruct()
        allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                               ("collections", "OrderedDict"): OrderedDict,
                                               ("_codecs", "encode"): codecs.encode}
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(module, "_reconstruct")] = reconstruct
            allowed[(module, "scalar")] = scalar
        self._allowed = allowed
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._path}: refused to load the pickle because it names {module}.{name}, which is not a numpy "
                "array, dtype or plain container; nothing from the file was executed"
            ) from None


def load_numpy_pickle(path: str | Path, encoding: str = "latin1") -> Any:
    """Unpickle a file that holds only numpy arrays in dicts/lists (e.g. Caffe2 weight blobs).

    Args:
        path: the pickle file.
        encoding: how Python 2 ``str`` objects are decoded; ``latin1`` keeps array bytes intact (numpy's advice,
            and what PySlowFast passes).

    Raises:
        CheckpointError: missing, truncated or corrupt file, or a global outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with open(path, "rb") as file:
            return _NumpyUnpickler(file, path, encoding).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read as a pickle of numpy arrays (truncated or another format): "
                              f"{type(error).__name__}: {error}") from None
