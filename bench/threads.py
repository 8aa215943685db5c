"""Trades per second from threads at once, for the benchmarks of the trade path (bench.trading, bench.orders).
Import it after django.setup(), as those scripts import the project's modules."""

import threading
import time
from collections.abc import Callable

from django.db import connections


def threaded_rate(call: Callable[[int, int], object], *, threads: int, per_thread: int) -> float:
    """Calls `call(thread, index)` `per_thread` times in each of `threads` threads started together (each closes
    its database connections when done): calls per second of wall time. The first error a thread raised is
    raised here, once all have finished."""
    errors: list[BaseException] = []

    def work(thread_index: int) -> None:
        try:
            for index in range(per_thread):
                call(thread_index, index)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    started = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    start = time.perf_counter()
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return threads * per_thread / elapsed
