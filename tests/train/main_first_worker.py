"""One process of tests/train/test_main_process_first.py: joins the gloo group from RANK / WORLD_SIZE / LOCAL_RANK
(as torchrun sets them) and records when it enters and leaves a ``main_process_first`` block."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from vtgkit.train.distributed import init_distributed, main_process_first, shutdown


def main(record: Path) -> None:
    context = init_distributed("cpu")
    with main_process_first(context):
        with record.open("a", encoding="utf-8") as handle:  # one short append per line: lines stay whole
            handle.write(f"enter {context.rank}\n")
        time.sleep(0.3)  # long enough for a process that did not wait to enter meanwhile
        with record.open("a", encoding="utf-8") as handle:
            handle.write(f"leave {context.rank}\n")
    shutdown(context)
    sys.exit(0 if os.environ.get("RANK") == str(context.rank) else 1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
