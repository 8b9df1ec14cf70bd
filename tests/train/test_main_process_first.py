"""``distributed.main_process_first`` on three gloo processes laid out as two machines: rank 0 runs the block
alone, then the first process of the other machine, then the rest (how SynthVTG data is built once per disk)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("main_first_worker.py")


@pytest.mark.slow  # three processes start torch: ~8-18 s on 2 loaded cores
def test_rank0_then_each_machines_first_process_then_the_rest(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port for the rendezvous (closed again before the workers bind it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = tmp_path / "order.txt"
    # rank 0 = machine A's first process; rank 1 = machine B's first (local rank 0); rank 2 = machine B's second.
    layout = {0: 0, 1: 0, 2: 1}
    processes = []
    for rank, local_rank in layout.items():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "WORLD_SIZE": "3", "RANK": str(rank), "LOCAL_RANK": str(local_rank)}
        processes.append(subprocess.Popen([sys.executable, str(WORKER), str(record)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
    assert record.read_text().split("\n")[:-1] == ["enter 0", "leave 0", "enter 1", "leave 1", "enter 2", "leave 2"]
