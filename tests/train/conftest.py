"""One torch thread for these tests: tiny tensors gain nothing from threads, and OpenMP spin-waits make two
threads many times slower when the shared 2-core machine is oversubscribed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
