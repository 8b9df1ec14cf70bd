"""The videos the web page knows: the bundled sample and uploads streamed to disk under names the server picks.

An upload is written chunk by chunk through :mod:`vtgkit.atomic_files`, so a refused or broken upload (too large,
client gone, disk full) leaves no file behind, and the size limit is enforced while bytes arrive: nothing past the
limit is ever written. The client's file name is only shown on the page; it never becomes part of a path, so names
such as ``../../x.mp4``, ``/etc/passwd`` or ``a\\b.mp4`` cannot place a file outside the upload folder.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from vtgkit.atomic_files import atomic_write

SAMPLE_ID = "sample"
# Suffixes kept from the client's name so that the browser and PyAV see a familiar extension; anything else is
# stored as ".video" (PyAV probes the content, not the name).
VIDEO_SUFFIXES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
                  ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".ogv": "video/ogg", ".mpg": "video/mpeg",
                  ".mpeg": "video/mpeg", ".ts": "video/mp2t"}
_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_NAME = 120


class UploadTooLargeError(Exception):
    """The upload is larger than the server's limit (HTTP 413)."""

    def __init__(self, limit: int, received: int | None = None) -> None:
        self.limit, self.received = limit, received
        declared = f" ({format_size(received)})" if received is not None else ""
        super().__init__(f"the file is too large{declared}: this server accepts videos up to "
                         f"{format_size(limit)} (start it with --max-upload-mb to change the limit)")


def format_size(size: int) -> str:
    """``1500000`` → ``"1.5 MB"`` (decimal units, as --max-upload-mb)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


@dataclass
class StoredVideo:
    """A video the page can ground: its id (used in URLs), file, shown name and media type."""

    id: str
    path: Path
    name: str
    media_type: str
    owned: bool = True  # written by the server (deleted on eviction and shutdown), False for the sample
    ground_truth: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # query -> windows (sample)


def display_name(raw: str | None) -> str:
    """The client's file name reduced to something safe to show: last path component, printable, bounded."""
    text = unicodedata.normalize("NFC", raw or "")
    text = re.split(r"[/\\]", text)[-1]  # both separators: a Windows path sent from a browser is still one name
    text = "".join(char for char in text if unicodedata.category(char)[0] != "C").strip()
    if text in {"", ".", ".."}:
        text = "upload"
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 1] + "…"


def suffix_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".video"


class VideoLibrary:
    """Id → :class:`StoredVideo`, with the uploads in one folder, at most ``max_uploads`` kept (oldest dropped).

    Thread-safe: the registry is guarded by a lock (requests run on the event loop and in worker threads).
    """

    def __init__(self, upload_dir: str | os.PathLike[str], max_upload_bytes: int, max_uploads: int = 20) -> None:
        if max_upload_bytes <= 0:
            raise ValueError(f"max_upload_bytes must be > 0, got {max_upload_bytes}")
        self.upload_dir = Path(upload_dir).resolve()
        self.max_upload_bytes = max_upload_bytes
        self.max_uploads = max_uploads
        self._videos: OrderedDict[str, StoredVideo] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ registry
    def add_sample(self, path: str | os.PathLike[str], name: str,
                   ground_truth: dict[str, list[tuple[float, float]]] | None = None) -> StoredVideo:
        video = StoredVideo(SAMPLE_ID, Path(path), name, VIDEO_SUFFIXES.get(suffix_of(str(path)), "video/mp4"),
                            owned=False, ground_truth=ground_truth or {})
        with self._lock:
            self._videos[SAMPLE_ID] = video
        return video

    def get(self, video_id: str) -> StoredVideo | None:
        with self._lock:
            return self._videos.get(video_id)

    def remove(self, video_id: str) -> None:
        with self._lock:
            video = self._videos.pop(video_id, None)
        if video is not None and video.owned:
            video.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete every file the server wrote."""
        with self._lock:
            owned = [video for video in self._videos.values() if video.owned]
            self._videos = OrderedDict((key, video) for key, video in self._videos.items() if not video.owned)
        for video in owned:
            video.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ uploads
    def check_declared_size(self, content_length: str | None) -> None:
        """Refuse before reading anything when the client announces more than the limit."""
        if content_length is None:
            return
        try:
            declared = int(content_length)
        except ValueError:
            return  # the server (h11) rejects malformed lengths itself; the streamed count still applies
        if declared > self.max_upload_bytes:
            raise UploadTooLargeError(self.max_upload_bytes, declared)

    async def save(self, chunks: AsyncIterator[bytes], client_name: str | None) -> StoredVideo:
        """Stream ``chunks`` to a new file in the upload folder; :class:`UploadTooLargeError` past the limit.

        The file appears under its final name only once complete (atomic write); on any error nothing is left.
        """
        name = display_name(client_name)
        video_id = secrets.token_hex(16)
        target = self.upload_dir / f"{video_id}{suffix_of(name)}"
        # The id is ours and hex only; this check documents (and enforces) that the target stays in the folder.
        if not _ID.match(video_id) or target.parent != self.upload_dir:
            raise RuntimeError(f"upload path {target} escapes {self.upload_dir}")
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        received = 0
        with atomic_write(target) as file:
            async for chunk in chunks:
                received += len(chunk)
                if received > self.max_upload_bytes:
                    raise UploadTooLargeError(self.max_upload_bytes)  # atomic_write deletes the partial file
                file.write(chunk)
        if received == 0:
            target.unlink(missing_ok=True)
            raise EmptyUploadError("the upload is empty (0 bytes): choose a video file")
        video = StoredVideo(video_id, target, name, VIDEO_SUFFIXES.get(suffix_of(name), "application/octet-stream"))
        self._register(video)
        return video

    def _register(self, video: StoredVideo) -> None:
        with self._lock:
            self._videos[video.id] = video
            uploads = [key for key, stored in self._videos.items() if stored.owned]
            evicted = [self._videos.pop(key) for key in uploads[: max(0, len(uploads) - self.max_uploads)]]
        for old in evicted:
            old.path.unlink(missing_ok=True)


class EmptyUploadError(ValueError):
    """The upload has no bytes."""
