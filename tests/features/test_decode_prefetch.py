"""The decoding thread: order kept, errors re-raised in the consumer, early stop ends the producer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from vtgkit.errors import VideoError
from vtgkit.features.prefetch import prefetch


def test_items_arrive_in_order_through_a_small_queue() -> None:
    assert list(prefetch(iter(range(100)), max_items=3)) == list(range(100))


def test_producer_error_is_raised_in_the_consumer_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise VideoError("broken.mp4: decoding failed")

    received = []
    with pytest.raises(VideoError, match="broken.mp4"):
        for item in prefetch(items(), max_items=1):
            received.append(item)
    assert received == [1, 2]


def test_consumer_stopping_early_ends_the_producer_thread() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    stream = prefetch(endless(), max_items=2)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert closed.wait(timeout=5)
    assert not any(thread.name == "vtgkit-decode" and thread.is_alive() for thread in threading.enumerate())
