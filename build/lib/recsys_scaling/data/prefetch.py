"""Background prefetching for iterators whose work releases the GIL (Arrow parsing, memmap reads)."""
from __future__ import annotations

import queue
import threading
from typing import Iterator, List


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate with the next items produced in a background thread (Arrow's parsing releases
    the GIL, so reading the next block overlaps with encoding this one)."""
    done = object()
    buffer: "queue.Queue" = queue.Queue(maxsize=depth)
    failure: List[BaseException] = []

    def produce():
        try:
            for item in items:
                buffer.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            buffer.put(done)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := buffer.get()) is not done:
        yield item
    thread.join()
    if failure:
        raise failure[0]
