"""Read the tensors of a TorchScript archive (OpenAI's CLIP ``.pt`` downloads) without executing its code.

A TorchScript file is a zip archive: ``<root>/data.pkl`` pickles the module tree, whose classes are named
``__torch__.<module path>``; tensors are rebuilt by ``torch._utils._rebuild_tensor_v2`` from storages stored as
raw bytes in ``<root>/data/<key>``. ``torch.jit.load`` would run the archive's TorchScript code; this reader
instead unpickles ``data.pkl`` with a restricted unpickler that only knows the tensor-rebuild function, the storage
types and ``collections.OrderedDict``. Every ``__torch__.*`` class becomes an inert attribute record, so nothing in
the archive can run code here.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from vtgkit.errors import CheckpointError

# Storage class name in the pickle -> element dtype.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Inert stand-in for a ``__torch__.*`` class: keeps the pickled attribute dict, runs nothing."""

    def __init__(self, *args: Any) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.attributes = dict(state) if isinstance(state, dict) else {"__state__": state}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *unused: Any) -> torch.Tensor:
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, root: str, path: Path) -> None:
        super().__init__(file)
        self._archive = archive
        self._root = root
        self._path = path
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        raise CheckpointError(
            f"{self._path}: the TorchScript archive refers to {module}.{name}, which a tensor-only reader does "
            "not accept (expected only __torch__ modules, tensor-rebuild functions and storages)"
        )

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r} in data.pkl")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            member = f"{self._root}/data/{key}"
            try:
                raw = bytearray(self._archive.read(member))
            except KeyError as error:
                raise CheckpointError(f"{self._path}: storage {member} listed in data.pkl is missing") from error
            flat = torch.frombuffer(raw, dtype=storage_type.dtype) if raw else torch.empty(0, dtype=storage_type.dtype)
            if flat.numel() < numel:
                raise CheckpointError(
                    f"{self._path}: storage {member} holds {flat.numel()} elements, data.pkl expects {numel} "
                    "(truncated file?)"
                )
            self._storages[key] = flat
        return self._storages[key]


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, _ScriptObject):
        for name, value in obj.attributes.items():
            _flatten(value, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(obj, dict):
        for name, value in obj.items():
            _flatten(value, f"{prefix}.{name}" if prefix else str(name), out)


def is_torchscript_archive(path: Path) -> bool:
    """True when ``path`` is a zip whose root folder has ``data.pkl`` and ``code/`` (a TorchScript file)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/code/") or "/code/__torch__/" in name for name in names)


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a TorchScript archive, keyed by attribute path (``visual.conv1.weight``, ...).

    The result holds every tensor attribute of the scripted module tree, parameters and buffers as well as
    plain tensor attributes; callers keep the keys their model expects.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable zip archive (TorchScript .pt expected): {error}") from error
    with archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if not pickles:
            raise CheckpointError(f"{path}: no <root>/data.pkl in the archive; not a TorchScript or torch.save file")
        root = pickles[0].split("/")[0]
        with archive.open(pickles[0]) as file:
            try:
                obj = _RestrictedUnpickler(file, archive, root, path).load()
            except CheckpointError:
                raise
            except Exception as error:  # a damaged pickle raises many kinds of errors
                raise CheckpointError(f"{path}: cannot read {pickles[0]}: {type(error).__name__}: {error}") from error
    tensors: dict[str, torch.Tensor] = {}
    _flatten(obj, "", tensors)
    if not tensors:
        raise CheckpointError(f"{path}: the archive holds no tensors")
    return tensors
