"""An iterator's items made ahead in a background thread, so that reading the next batch overlaps the step that uses
this one (on a GPU, the host would otherwise read while the device waits).

A thread, not worker processes: a batch's heavy work (HDF5 and numpy reads, the float16 → float32 widening) runs
outside the GIL, and a thread shares the features held in RAM (`stacmr.features.memory`) without copying or
pickling them. One thread makes every item, in order, so the items and their order are those of the iterator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()  # the iterator is exhausted
_POLL_S = 0.1  # how often a producer waiting on a full queue looks whether the consumer has gone


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """The items of `items`, at most `depth` of them made ahead by a background thread (0: made here, on demand). An
    exception raised making an item is raised here, in its place; closing this iterator (or leaving a loop over it)
    stops the thread before it returns."""
    if depth < 1:
        yield from items
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    gone = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not gone.is_set():
            try:
                ready.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((None, exc))

    thread = threading.Thread(target=produce, name="stacmr-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        gone.set()
        thread.join()
