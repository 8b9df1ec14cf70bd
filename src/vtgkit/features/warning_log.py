"""What an extraction run did with a caveat: videos only partly decoded, queries cut to CLIP's context.

Kept apart from the failure log because these items were extracted (the command still succeeds): one JSON line per
item in ``<output>/.vtgkit-extract/warnings.<shard>.jsonl``, appended whole and fsynced like the manifest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vtgkit.features.manifest import STATE_DIR, append_line, cut_partial_last_line


class WarningLog:
    """Caveats of this run, appended to ``warnings.<shard>.jsonl`` as they happen."""

    def __init__(self, root: Path, shard: str) -> None:
        self.path = root / STATE_DIR / f"warnings.{shard}.jsonl"
        self.entries: list[dict[str, str]] = []
        cut_partial_last_line(self.path)  # a fragment from a killed run would swallow the first new entry

    def add(self, item: str, kind: str, message: str) -> None:
        """Record ``item`` (a video path or ``query <qid>``) with the kind of caveat and what happened."""
        entry = {"item": item, "warning": kind, "message": message,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_line(self.path, json.dumps(entry))
        self.entries.append(entry)
