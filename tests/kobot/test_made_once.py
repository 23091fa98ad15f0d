"""`MadeOnce` makes its value once, even when threads ask for it at the same moment."""

from __future__ import annotations

import threading
import time

from kobot.made_once import MadeOnce

THREADS = 8


def test_threads_asking_at_once_get_one_value_made_once() -> None:
    made: list[object] = []

    def make() -> object:
        time.sleep(0.05)  # long enough for every thread to be waiting when it ends
        made.append(object())
        return made[-1]

    once = MadeOnce(make)
    barrier = threading.Barrier(THREADS)
    got: list[object] = []

    def ask() -> None:
        barrier.wait()
        got.append(once())

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(made) == 1
    assert got == made * THREADS
