"""Run an iterator in a background thread so that decoding overlaps with the model.

PyAV and torch release the GIL in their heavy calls, so a thread is enough; the bounded queue keeps memory
independent of video length (at most ``max_items`` decoded frames wait).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], max_items: int = 16) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces the next ones; errors re-raise in the consumer.

    Closing the returned generator early (or an error in the consumer) stops the producer thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max_items)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(_Failure(error))
            return
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()
        buffer.put(_DONE)

    thread = threading.Thread(target=produce, name="vtgkit-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
