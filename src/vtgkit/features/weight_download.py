"""Download one weight file into the cache: streamed, sha256-checked where the hash is known, atomic.

The file appears at its target only when the download finished and its hash matched, so an interrupted or corrupt
download never looks like a cached file. Offline (or any failure), the error names the URL and where to place the file
by hand.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from vtgkit.atomic_files import atomic_write
from vtgkit.errors import CheckpointError


def download_to(url: str, target: Path, sha256: str | None, *, what: str, manual_hint: str) -> Path:
    """Fetch ``url`` to ``target``; ``what`` names the weights and ``manual_hint`` how to pass a local copy."""
    try:
        with atomic_write(target, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            digest = hashlib.sha256()
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                file.write(block)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise CheckpointError(f"download of {url}: sha256 {digest.hexdigest()} != expected {sha256}")
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise CheckpointError(
            f"cannot download {what} from {url} ({error}); without network, copy the file to {target} "
            f"or pass its path ({manual_hint})"
        ) from error
    return target
