"""``vtgkit serve``: a local web page to ground queries in your videos (needs ``pip install 'vtgkit[app]'``).

Open http://127.0.0.1:8000, upload a video or pick the shipped sample, type a query: the page shows the timeline
(saliency and moments) and the moments, each with a button that plays it in the page's player.

Without ``--checkpoint`` it runs offline with the demo's small SynthVTG model (``vtgkit demo``), which only knows
SynthVTG's coloured shapes; give a released checkpoint name (downloaded on first use) or a local checkpoint for real
videos. Uploads go to ``--upload-dir`` (default: a new temporary folder) under names the server picks, and are
deleted when the server stops.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_MAX_UPLOAD_MB = 500.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="local web page: upload a video or pick the sample, type a query, play the moments found",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", metavar="NAME_OR_PATH",
                        help="released checkpoint name (downloaded on first use) or a local checkpoint; default: "
                             "the demo's small SynthVTG model (offline)")
    parser.add_argument("--clip-weights", help="CLIP weight file for --checkpoint (default: the checkpoint's CLIP, "
                                               "downloaded into the cache on first use)")
    parser.add_argument("--slowfast-weights", metavar="PATH",
                        help="FlashVTG checkpoints only: SlowFast R50 8x8 weights (Caffe2 .pkl, PySlowFast or "
                             "pytorchvideo .pyth); default SLOWFAST_8x8_R50.pkl, downloaded into the cache on first "
                             "use")
    parser.add_argument("--cache-dir", type=Path, help="cache root for downloads (default $VTGKIT_CACHE or "
                                                       "~/.cache/vtgkit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this "
                                                             "machine only; the page has no login)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="N",
                        help=f"largest accepted upload in MB (default {DEFAULT_MAX_UPLOAD_MB:g})")
    parser.add_argument("--upload-dir", type=Path, metavar="DIR",
                        help="folder for uploads (default: a new temporary folder, removed on exit)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from vtgkit.app import require_web_packages
    from vtgkit.errors import ConfigError

    require_web_packages()
    if not args.max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    if args.slowfast_weights is not None:
        check_slowfast_weights(args.checkpoint, args.slowfast_weights)
    with bind(args.host, args.port) as sock:  # a port in use fails before the model is loaded
        grounder, sample = load_grounder(args.checkpoint, args.clip_weights, args.cache_dir, args.slowfast_weights)
        temporary = args.upload_dir is None
        upload_dir = Path(tempfile.mkdtemp(prefix="vtgkit-serve-")) if temporary else args.upload_dir
        try:
            try:
                upload_dir.mkdir(parents=True, exist_ok=True)  # an unusable folder fails now, not at an upload
            except OSError as error:
                raise ConfigError(f"--upload-dir {upload_dir}: cannot create the folder ({error.strerror})") from error
            app = build_app(grounder, sample, upload_dir, int(args.max_upload_mb * 1e6))
            if not _is_loopback(args.host):
                print(f"vtgkit serve: warning: listening on {args.host}: anyone who can reach it can upload files "
                      "and run the model (the page has no login)", file=sys.stderr)
            print(f"vtgkit serve: open http://{_url_host(args.host)}:{sock.getsockname()[1]} (Ctrl+C stops; "
                  f"uploads in {upload_dir})", file=sys.stderr)
            serve_forever(app, sock)
        finally:
            if temporary:
                shutil.rmtree(upload_dir, ignore_errors=True)
    return 0


def check_slowfast_weights(checkpoint: str | None, weights: str) -> None:
    """``--slowfast-weights`` goes with a FlashVTG checkpoint and names a file (or a known download); checked before
    the port is taken or any model is loaded."""
    from vtgkit.errors import CheckpointError, ConfigError
    from vtgkit.features.slowfast.weights import SLOWFAST_WEIGHTS
    from vtgkit.grounder_loading import is_flashvtg_checkpoint

    if checkpoint is None:
        raise ConfigError("--slowfast-weights applies to FlashVTG checkpoints only; without --checkpoint the page "
                          "uses the demo's R2-Tuning model, which reads CLIP features alone")
    if not is_flashvtg_checkpoint(checkpoint):
        raise ConfigError(f"--slowfast-weights applies to FlashVTG checkpoints only; {checkpoint} is not one (a "
                          "flashvtg-* name, an official FlashVTG .ckpt or a vtgkit-format FlashVTG checkpoint)")
    if not Path(weights).expanduser().is_file() and weights not in SLOWFAST_WEIGHTS:
        raise CheckpointError(f"--slowfast-weights {weights}: no such file (give a weight file, or one of "
                              f"{', '.join(SLOWFAST_WEIGHTS)} to download it into the cache)")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port); ConfigError saying why when it cannot be had."""
    from vtgkit.errors import ConfigError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        reason = "the port is in use (another server? pick one with --port)" if error.errno == errno.EADDRINUSE \
            else (error.strerror or str(error))
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from error


def serve_forever(app: Any, sock: socket.socket) -> None:
    """Run ``app`` with uvicorn on ``sock`` until Ctrl+C."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def load_grounder(checkpoint: str | None, clip_weights: str | None = None, cache_dir: Path | None = None,
                  slowfast_weights: str | None = None) -> tuple[Any, dict[str, Any] | None]:
    """(Grounder, sample) where sample is ``{"path", "name", "queries": {query: windows}}`` or None.

    Without ``checkpoint``: the demo's SynthVTG model and its tiny CLIP, rebuilt offline (:mod:`vtgkit.cli.demo`).
    ``slowfast_weights`` goes to a FlashVTG checkpoint's grounder, as ``vtgkit ground --slowfast-weights``.
    """
    import json

    from vtgkit.api import Grounder
    from vtgkit.cli.demo import ASSETS, CHECKPOINT, QUERIES, VIDEO, rebuild_tiny_clip
    from vtgkit.errors import ConfigError

    sample = None
    if (ASSETS / VIDEO).is_file() and (ASSETS / QUERIES).is_file():
        manifest = json.loads((ASSETS / QUERIES).read_text(encoding="utf-8"))
        sample = {"path": ASSETS / VIDEO, "name": f"sample: {VIDEO} (SynthVTG)", "manifest": manifest,
                  "queries": {item["query"]: [tuple(window) for window in item["relevant_windows"]]
                              for item in manifest["queries"]}}
    if checkpoint is not None:
        grounder = Grounder.from_pretrained(checkpoint, clip_weights=clip_weights, cache_dir=cache_dir,
                                            progress=True, slowfast_weights=slowfast_weights)
        grounder.progress = False  # no progress bars from worker threads
        return grounder, sample
    if slowfast_weights is not None:
        raise ConfigError("slowfast_weights: the demo's model is R2-Tuning (CLIP features only); give a FlashVTG "
                          "checkpoint")
    if sample is None or not (ASSETS / CHECKPOINT).is_file():
        raise ConfigError(f"the demo assets are missing in {ASSETS} (this vtgkit build ships without them): give "
                          "--checkpoint NAME_OR_PATH")
    manifest = sample["manifest"]
    clip = rebuild_tiny_clip(manifest["clip"]["seed"], manifest["clip"]["sha256"])
    grounder = Grounder.from_pretrained(ASSETS / CHECKPOINT, clip_weights=clip, benchmark="qvhighlights",
                                        progress=False)
    return grounder, sample


def build_app(grounder: Any, sample: dict[str, Any] | None, upload_dir: Path, max_upload_bytes: int, *,
              max_uploads: int = 20) -> Any:
    """The FastAPI app for ``grounder`` with ``sample`` (from :func:`load_grounder`) registered; at most
    ``max_uploads`` uploads are kept (the oldest file is deleted)."""
    from vtgkit.app.server import create_app
    from vtgkit.app.uploads import VideoLibrary

    library = VideoLibrary(upload_dir, max_upload_bytes, max_uploads)
    queries: list[str] = []
    if sample is not None:
        library.add_sample(sample["path"], sample["name"], ground_truth=sample["queries"])
        queries = list(sample["queries"])
    return create_app(grounder, library, sample_queries=queries)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
