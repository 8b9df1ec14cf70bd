"""Released checkpoints of the official R²-Tuning and FlashVTG code: where they live, how to verify them, a cache.

Facts recorded here (checked 2026-12-02, see ``source`` of each entry):

* R²-Tuning (yeliudev/R2-Tuning @ 03fbcf6, README "Model Zoo"; weights BSD-3-Clause): 20 files on the Hugging
  Face Hub, ``https://huggingface.co/yeliudev/R2-Tuning/resolve/main/checkpoints/<file>``. nncore's publish step
  suffixes each file name with the first 8 hex digits of its sha256 (spec r2-tuning.md §11.1). The full sha256 is the
  Git LFS object id shown on the Hub's file pages; it is pinned where that page was available and otherwise only the
  name's 8-hex prefix is checked (``sha256=None``).
* FlashVTG (Zhuo-Cao/FlashVTG @ 25b9591, README "Model Zoo"; code MIT): one Dropbox *folder* per dataset holding
  ``model_best.ckpt`` and ``opt.json`` (spec flashvtg.md §9). Folder links give no direct file URL and no hash was
  published, so these entries are download-by-hand: :func:`download` says where to get the file and where to put it.

Files are cached under ``$VTGKIT_CACHE`` or ``~/.cache/vtgkit``, in ``checkpoints/<name>/<file>``. Downloads go to a
temporary file in the same folder, are hashed while streaming and renamed into place only when the hash matches, so
an interrupted or corrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

from vtgkit.atomic_files import atomic_write
from vtgkit.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

CACHE_ENV = "VTGKIT_CACHE"
_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 30.0

_R2_URL = "https://huggingface.co/yeliudev/R2-Tuning/resolve/main/checkpoints/"
_R2_SOURCE = "yeliudev/R2-Tuning README (Model Zoo) @ 03fbcf6; sha256 from the Hub file page's Git LFS details"
_R2_LICENSE = "BSD-3-Clause (yeliudev/R2-Tuning LICENSE)"
_FLASHVTG_SOURCE = "Zhuo-Cao/FlashVTG README (Model Zoo) @ 25b9591"
_FLASHVTG_LICENSE = "MIT (Zhuo-Cao/FlashVTG LISCENSE); no separate licence stated for the weights"


@dataclass(frozen=True)
class PretrainedCheckpoint:
    """One released checkpoint file."""

    name: str  # registry key, e.g. "r2tuning-qvhighlights"
    model: str  # key of vtgkit.models.MODELS
    preset: str  # preset of that model's config the checkpoint was trained with
    filename: str  # file name as released
    url: str | None  # direct download URL; None when only a folder link exists (download by hand)
    sha256: str | None  # full hex digest when published, else None
    license: str
    source: str  # where the facts above come from
    size_bytes: int | None = None  # exact size when published
    folder_url: str | None = None  # page to download by hand (FlashVTG Dropbox folders)
    notes: str = ""

    @property
    def sha256_prefix(self) -> str | None:
        """The hex digest prefix carried by nncore-published file names (``name-<8 hex>.pth``), if any."""
        stem = self.filename.rsplit(".", 1)[0]
        _, _, suffix = stem.rpartition("-")
        if len(suffix) == 8 and all(char in "0123456789abcdef" for char in suffix):
            return suffix
        return None


def _r2(
    key: str, preset: str, digest_prefix: str, sha256: str | None, size_bytes: int | None = None
) -> PretrainedCheckpoint:
    filename = f"r2_tuning_{key}-{digest_prefix}.pth"
    return PretrainedCheckpoint(
        name=f"r2tuning-{key}", model="r2tuning", preset=preset, filename=filename, url=_R2_URL + filename,
        sha256=sha256, license=_R2_LICENSE, source=_R2_SOURCE, size_bytes=size_bytes,
        notes="" if sha256 else "full sha256 not found; only the file name's 8-hex sha256 prefix is verified",
    )


def _flashvtg(key: str, preset: str, folder_url: str, notes: str = "") -> PretrainedCheckpoint:
    return PretrainedCheckpoint(
        name=f"flashvtg-{key}", model="flashvtg", preset=preset, filename="model_best.ckpt", url=None, sha256=None,
        license=_FLASHVTG_LICENSE, source=_FLASHVTG_SOURCE, folder_url=folder_url,
        notes=notes or "Dropbox folder with model_best.ckpt and opt.json; no hash published",
    )


_DROPBOX = "https://www.dropbox.com/scl/fo/"

_ENTRIES = [
    # name key, preset, 8-hex name suffix, full sha256 (Hub LFS oid) or None, exact size when the page gave bytes
    _r2("qvhighlights", "qvhighlights", "ed516355",
        "ed51635507f271be98acf34739addd8136f5a43239dc68b5a6cc8ad608ee1ed3", 11371510),
    _r2("ego4d", "ego4d", "6a6f5754",
        "6a6f57548ba15edcce385eecb50d601513e65265be91209a291af74d198f4969", 11370773),
    _r2("charades", "charades", "1de02112",
        "1de021127ee59bdd8706f7c61fe445e1eff07d8d0d6fc44e91cd62f512a0f26e", 11371098),
    _r2("tacos", "tacos", "81759b55", "81759b557f5e2d4f2dfd5bc8a5a4198847eb0829930b9507c8f7e12f6683681d"),
    _r2("youtube_dog", "youtube_dog", "702bd293", None),
    _r2("youtube_gym", "youtube_gym", "ff68b1b3", "ff68b1b310c0b7dbfb385cfbfdd1b3b96c249283ae3335d00047c7d78423ce82"),
    _r2("youtube_par", "youtube_par", "27442af0", "27442af059b88f6cf4e3e234da6e31b6d1f6f44ff22be1ba267b128156da50de"),
    _r2("youtube_ska", "youtube_ska", "dad28398", "dad283989d21d6cf666f4e0ea3d129c65b4aedb0c61f9f5c6fea80179d8dd93d"),
    _r2("youtube_ski", "youtube_ski", "df2edc4c", None),
    _r2("youtube_sur", "youtube_sur", "d384d8b2", "d384d8b2b0fcb2b738b05741706ee7690a43eab64ec504db6a516d16e5ee2bef"),
    _r2("tvsum_bk", "tvsum_bk", "45b59440", "45b594400ef023634c024d6320ff53e60b25d61029fe0adb42dfe7cbcb80abe6"),
    _r2("tvsum_bt", "tvsum_bt", "13683fdf", "13683fdff9a3f28491877123e585959a66ffe9de67b28b24a4a28933d599f68e"),
    _r2("tvsum_ds", "tvsum_ds", "d11b33d3", None),
    _r2("tvsum_fm", "tvsum_fm", "2c8c119d", "2c8c119df46de5804ee75c5ba1f60b66b706df909c618bcdfb80cf661159b86b"),
    _r2("tvsum_ga", "tvsum_ga", "58e79858", "58e79858954060378c40d41ec699c9ad1e748e63e17b25e683f0d16d3791cad3"),
    _r2("tvsum_ms", "tvsum_ms", "d9b4f8fa", None),
    _r2("tvsum_pk", "tvsum_pk", "1830ce03", None),
    _r2("tvsum_pr", "tvsum_pr", "51d78fc9", "51d78fc909ecab9ce8a72817acf2375b6e0cbda69ee1dba53c49f1da213e37bd"),
    _r2("tvsum_vt", "tvsum_vt", "0069d8d3", None),
    _r2("tvsum_vu", "tvsum_vu", "6f8ebb4b", None),
    _flashvtg(
        "qvhighlights", "qvhighlights",
        _DROPBOX + "5p45sbdyw66dyd7uerqlu/ADa-udzNY7qINE72gU17ktQ?rlkey=x9vtaf6vseenja6yz4h9faycb&st=emtgjqyb&dl=0",
        "QVHighlights, SlowFast+CLIP features; Dropbox folder with model_best.ckpt and opt.json; no hash published",
    ),
    _flashvtg(
        "qvhighlights_internvideo2", "qvhighlights_internvideo2",
        _DROPBOX + "19ayu7qtfyo5k4qc1rlz8/ALSHdXX4bKfq8Jwet36zQQY?rlkey=xwqb2tdxjzpq2ydx3qof30484&st=ahdmmatn&dl=0",
    ),
    _flashvtg(
        "charades_internvideo2", "charades_sta_internvideo2",
        _DROPBOX + "vxzx7o6221w35wx58655k/AN0tWBPRsvW9akunEYFSO0U?rlkey=8yt1guzfqqybiim4l5nfw4siy&st=xsp6juc9&dl=0",
    ),
    _flashvtg(
        "charades_vgg", "charades_sta_vgg",
        _DROPBOX + "2z5o51f4fmirduzdz6jw6/AEOjqAtcKdYgBKZDuIfqzjw?rlkey=7xyai6h0ct5npcr4jwja4vjkc&st=25wjllzd&dl=0",
    ),
    _flashvtg(
        "tacos", "tacos",
        _DROPBOX + "ul45aq5zkgzzb8k9wh70p/AL1rSpma3xwkhyHvMvWjFkc?rlkey=4ed8t64t7tdg3wssveoosvr82&st=xpmp5r9a&dl=0",
    ),
    _flashvtg(
        "tvsum", "tvsum",
        _DROPBOX + "yb11hjhlhbclun6mupg7g/ABvPUxY1Hd2IiBiLd2zqr6o?rlkey=gehlfpywyh0sou3g89xb61jin&st=1qq78uu0&dl=0",
        "TVSum; the README lists 'checkpoint' only (no log); the folder's file layout per domain was not checked",
    ),
]

PRETRAINED: dict[str, PretrainedCheckpoint] = {entry.name: entry for entry in _ENTRIES}


def list_pretrained(model: str | None = None) -> list[str]:
    """Registry names, optionally only those of one model (``"r2tuning"`` or ``"flashvtg"``)."""
    return [name for name, entry in PRETRAINED.items() if model is None or entry.model == model]


def get_pretrained(name: str) -> PretrainedCheckpoint:
    """The registry entry called ``name``; an unknown name raises ConfigError with the closest known names."""
    if name in PRETRAINED:
        return PRETRAINED[name]
    close = difflib.get_close_matches(name, PRETRAINED, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(PRETRAINED)}"
    raise ConfigError(f"unknown pretrained checkpoint {name!r}{hint}")


def default_cache_dir() -> Path:
    """``$VTGKIT_CACHE`` when set, else ``~/.cache/vtgkit``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "vtgkit"


def checkpoint_path(entry: PretrainedCheckpoint, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``entry`` is (or will be) stored in the cache."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "checkpoints" / entry.name / entry.filename


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_expected_hash(entry: PretrainedCheckpoint) -> str:
    if entry.sha256:
        return f"sha256 {entry.sha256}"
    if entry.sha256_prefix:
        return f"sha256 starting with {entry.sha256_prefix} (only the prefix is published)"
    return "no published hash"


def hash_matches(entry: PretrainedCheckpoint, digest: str) -> bool:
    """Whether ``digest`` matches what is known of ``entry``'s hash (full digest, else the name's prefix)."""
    if entry.sha256:
        return digest == entry.sha256
    if entry.sha256_prefix:
        return digest.startswith(entry.sha256_prefix)
    return True


def _manual_instructions(entry: PretrainedCheckpoint, target: Path) -> str:
    where = entry.url or entry.folder_url or entry.source
    return (
        f"download {entry.filename} from {where} and place it at {target} "
        f"(or set {CACHE_ENV} to a folder holding checkpoints/{entry.name}/{entry.filename}, "
        f"or pass the file's path instead of the name {entry.name!r})"
    )


def verify_cached_file(entry: PretrainedCheckpoint, path: Path) -> None:
    """Check a file already in the cache against the registry; raise CheckpointError on a mismatch."""
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        raise CheckpointError(
            f"{path}: size {path.stat().st_size} bytes, expected {entry.size_bytes} for {entry.name}; the file is "
            f"truncated or not the released checkpoint. Delete it and download again."
        )
    digest = sha256_of_file(path)
    if not hash_matches(entry, digest):
        raise CheckpointError(
            f"{path}: sha256 {digest}, expected {describe_expected_hash(entry)} for {entry.name}; the file is "
            f"corrupted or not the released checkpoint. Delete it and download again."
        )


def download(
    name: str | PretrainedCheckpoint,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Return the local path of a released checkpoint, downloading and verifying it on first use.

    Args:
        name: registry name (see :func:`list_pretrained`) or an entry.
        cache_dir: cache root; default ``$VTGKIT_CACHE`` or ``~/.cache/vtgkit``.
        progress: show a tqdm progress bar while downloading.

    Raises:
        CheckpointError: the download failed (offline, HTTP error), the hash or size does not match (the partial
            file is deleted), or the checkpoint must be downloaded by hand; the message says from where and to where.
    """
    entry = name if isinstance(name, PretrainedCheckpoint) else get_pretrained(name)
    target = checkpoint_path(entry, cache_dir)
    if target.is_file():
        verify_cached_file(entry, target)
        if not (entry.sha256 or entry.sha256_prefix):
            logger.warning("%s: no hash is published for %s; using the file unverified", target, entry.name)
        return target
    if entry.url is None:
        raise CheckpointError(f"{entry.name} cannot be downloaded automatically: {_manual_instructions(entry, target)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    _download_verified(entry, entry.url, target, progress)
    return target


def _download_verified(entry: PretrainedCheckpoint, url: str, target: Path, progress: bool) -> None:
    # atomic_write renames the file onto ``target`` only when the block ends without an error (size and hash
    # checked): the cache never holds a half or unverified file, and the partial file is always deleted.
    try:
        with atomic_write(target, "wb") as sink:
            digest, size = _stream_to(url, sink, progress, desc=entry.filename)
            if entry.size_bytes is not None and size != entry.size_bytes:
                raise CheckpointError(
                    f"downloaded {size} bytes from {url}, expected {entry.size_bytes}; the download was cut short "
                    f"or the file changed upstream. Nothing was kept; {_manual_instructions(entry, target)}"
                )
            if not hash_matches(entry, digest):
                raise CheckpointError(
                    f"sha256 of the file downloaded from {url} is {digest}, expected "
                    f"{describe_expected_hash(entry)}; the partial file was deleted. Retry, or "
                    f"{_manual_instructions(entry, target)}"
                )
    except (URLError, HTTPError, OSError, TimeoutError) as error:
        raise CheckpointError(
            f"could not download {entry.name} ({_reason(error)}); to use it offline, "
            f"{_manual_instructions(entry, target)}"
        ) from error


def _reason(error: BaseException) -> str:
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return f"network error: {error.reason}"
    return f"{type(error).__name__}: {error}"


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled)


def _stream_to(url: str, sink: IO[bytes], progress: bool, desc: str) -> tuple[str, int]:
    """Copy ``url`` into ``sink`` while hashing; returns (hex sha256, bytes written)."""
    digest = hashlib.sha256()
    size = 0
    with urlopen(url, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        read: Callable[[int], bytes] = response.read
        with _progress_bar(total, desc, progress) as bar:
            for chunk in iter(lambda: read(_CHUNK_BYTES), b""):
                sink.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    return digest.hexdigest(), size


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[Path, PretrainedCheckpoint | None]:
    """A local checkpoint path and its registry entry (None for a user's own file).

    A registry name is downloaded on first use; a released file name (e.g. ``r2_tuning_qvhighlights-ed516355.pth``)
    found on disk is matched to its entry and verified; any other existing file is returned as is.
    """
    text = os.fspath(name_or_path)
    if text in PRETRAINED:
        return download(text, cache_dir=cache_dir, progress=progress), PRETRAINED[text]
    path = Path(text).expanduser()
    if path.is_file():
        entry = _entry_for_released_file(path)
        if entry is not None:
            verify_cached_file(entry, path)
        return path, entry
    if path.exists():
        raise CheckpointError(f"{path} is a folder; expected a checkpoint file (.pth, .ckpt or .safetensors)")
    close = difflib.get_close_matches(text, PRETRAINED, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else f" Known names: {', '.join(PRETRAINED)}."
    raise CheckpointError(f"{text!r} is neither an existing file nor a released checkpoint name.{hint}")


def _entry_for_released_file(path: Path) -> PretrainedCheckpoint | None:
    """The entry whose released file name is ``path.name`` when that name is unique (R²-Tuning's hashed names)."""
    matches = [entry for entry in PRETRAINED.values() if entry.filename == path.name and entry.sha256_prefix]
    return matches[0] if len(matches) == 1 else None


@dataclass
class LoadedCheckpoint:
    """A model built from a checkpoint, with where it came from."""

    model: Any  # torch.nn.Module in eval mode
    model_name: str  # key of vtgkit.models.MODELS
    path: Path
    entry: PretrainedCheckpoint | None  # None for a user's own file


def load_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    model: str | None = None,
    preset: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> LoadedCheckpoint:
    """Build a model from a released checkpoint name or an official-format checkpoint file.

    Args:
        name_or_path: a name of :func:`list_pretrained` (downloaded on first use) or a checkpoint file.
        model: ``"r2tuning"`` or ``"flashvtg"``; required for files that are not released checkpoints.
        preset: config preset; default the entry's. R²-Tuning checkpoints hold no config, so the preset fills in
            what the state dict cannot tell (spec r2-tuning.md §11.1). FlashVTG reads its config from the
            checkpoint's training options (``opt``, or ``opt.json`` beside it) unless ``preset`` is given.
        cache_dir, progress: as for :func:`download`.
    """
    known = PRETRAINED.get(os.fspath(name_or_path))
    if known is not None and model is not None and model != known.model:  # before any download
        raise ConfigError(f"{known.name} is a {known.model} checkpoint, not {model}")
    path, entry = resolve_checkpoint(name_or_path, cache_dir=cache_dir, progress=progress)
    if entry is not None and model is not None and model != entry.model:
        raise ConfigError(f"{path} is the released {entry.name}, a {entry.model} checkpoint, not {model}")
    model_name = entry.model if entry is not None else model
    if model_name is None:
        raise ConfigError(f"{path}: not a released checkpoint; say which model it is (model='r2tuning' or 'flashvtg')")
    chosen_preset = preset if preset is not None else (entry.preset if entry is not None else None)
    if model_name == "r2tuning":
        from vtgkit.models.r2tuning.convert import load_official_checkpoint as load_r2tuning

        built = load_r2tuning(path, preset=chosen_preset)
    elif model_name == "flashvtg":
        from vtgkit.models import create_config
        from vtgkit.models.flashvtg.convert import load_official_checkpoint as load_flashvtg

        # Released files carry their training options; an explicit preset overrides them (e.g. a bare state dict).
        config = create_config("flashvtg", preset) if preset is not None else None
        built = load_flashvtg(path, config=config).model
    else:
        raise ConfigError(f"unknown model {model_name!r}; choose 'r2tuning' or 'flashvtg'")
    return LoadedCheckpoint(model=built, model_name=model_name, path=path, entry=entry)
