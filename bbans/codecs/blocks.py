"""Work split into blocks of rows and run on a few threads: the tables of many symbols, a network head over many
pixels. numpy and the compiled kernels (``kernels.py``) release the GIL, so the blocks run in parallel.

Every block computes its own rows from the same inputs, so results never depend on the number of threads or on
the block order. ``BBANS_THREADS`` sets the thread count (default: the CPU count, at most 4).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    n = int(os.environ.get("BBANS_THREADS", "0")) or min(4, os.cpu_count() or 1)
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="bbans-blocks")


def run_blocks(fill: Callable[[int, int], None], n: int, block: int) -> None:
    """Call ``fill(a, b)`` for the row ranges [a, b) of ``block`` rows (the last may be shorter) covering 0..n-1:
    in this thread when there is one block, else on the pool; returns when all are done (re-raising the first
    error)."""
    starts = range(0, n, block)
    if len(starts) == 1:
        fill(0, n)
    elif len(starts) > 1:
        list(_pool().map(lambda a: fill(a, min(a + block, n)), starts))
