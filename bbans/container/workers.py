"""Where the chunks of a multi-chunk archive are coded when not in this process: a pool of ``jobs`` local worker
processes (the standard library's ``concurrent.futures``), or a Dask cluster (``scheduler``: "tcp://HOST:PORT" for
a running scheduler, "local:N" for a LocalCluster of N worker processes; needs ``pip install bbans[cluster]``).

Both are used the same way: ``submit(fn, task)`` returns a future whose ``result()`` is the chunk, and ``ordered``
yields results in task order with a bounded number in flight, so the archive streams out in chunk order and its
bytes are the same for any number of workers. Tasks are pure functions of their arguments (a chunk's coding is
deterministic), so when a Dask worker dies mid-task the scheduler reruns the task elsewhere and the result is
identical. Workers read inputs from the paths in their tasks: on a cluster those paths must be visible to every
worker (a shared filesystem).
"""
from __future__ import annotations

import functools
import itertools
import os
import sys
from contextlib import contextmanager

from ..errors import InputError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CLUSTER_HINT = "install the cluster extra with: pip install bbans[cluster] (the package dask[distributed])"
_task_ids = itertools.count()


def prepare_worker() -> None:
    """What every task does first in a worker process: one math-library thread (``limit_math_threads``) and
    glibc's malloc thresholds restored where the environment froze them (``relax_malloc_trim``)."""
    limit_math_threads()
    relax_malloc_trim()


def limit_math_threads() -> None:
    """One math-library thread per worker (effective when set before torch or numpy's BLAS start their pools)."""
    for v in THREAD_VARS:
        os.environ.setdefault(v, "1")


MALLOC_MMAP_BYTES = 32 << 20   # blocks from this size up come from mmap (each network call allocates several MiB)
MALLOC_TRIM_BYTES = 64 << 20   # free memory above this at the heap's top goes back to the system


@functools.lru_cache(maxsize=1)
def relax_malloc_trim() -> bool:
    """Undo ``MALLOC_TRIM_THRESHOLD_`` in this process (glibc only; True when done).

    Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536 (distributed's
    ``distributed.nanny.pre-spawn-environ``). Setting it also freezes glibc's mmap threshold at 128 KiB, so each
    activation buffer of the integer networks (several MiB per call) was a fresh mmap, page-faulted in and unmapped
    again: 8,000 MNIST items took 32.0 s in one process with the variable set against 21.9 s without, and a Dask
    worker coded its chunks about 2x slower than the same code in-process. ``mallopt`` raises both thresholds
    again (measured: 18.9 s with the variable set). Memory that coding frees is still reused by the next batch."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, MALLOC_MMAP_BYTES)
                    and libc.mallopt(m_trim_threshold, MALLOC_TRIM_BYTES))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to undo there
        return False


def _init_process() -> None:
    for v in THREAD_VARS:
        os.environ[v] = "1"


class _ProcessPool:
    """A spawn-started process pool of ``jobs`` workers."""

    def __init__(self, jobs: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.width = jobs
        self._pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_process)

    def submit(self, fn, task):
        return self._pool.submit(fn, task)

    def abort(self) -> None:
        """Stop at once: running tasks are not waited for (no public API stops them, so terminate)."""
        for proc in list(getattr(self._pool, "_processes", {}).values()):
            proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class _DaskPool:
    """A Dask client on a running scheduler or on a LocalCluster of worker processes it starts."""

    def __init__(self, scheduler: str):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError(f"--scheduler needs Dask; {CLUSTER_HINT}") from None
        self._cluster = None
        if scheduler.startswith("local:"):
            try:
                n = int(scheduler[len("local:"):])
            except ValueError:
                n = 0
            if n < 1:
                raise InputError(f"scheduler {scheduler!r}: give local:N with N >= 1 worker processes")
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=":0")
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler {scheduler!r} ({exc}); start it with "
                                 "'dask scheduler' and workers with 'dask worker ADDRESS'") from None
        self.width = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, task):
        return self.client.submit(fn, task, pure=False, key=f"bbans-{fn.__name__}-{next(_task_ids)}-{os.getpid()}")

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


@contextmanager
def executor(jobs: int, scheduler: str | None = None):
    """A pool with ``submit``, ``width`` (workers) and clean shutdown; on any exception (Ctrl-C included) its
    work is abandoned at once instead of finishing."""
    pool = _DaskPool(scheduler) if scheduler else _ProcessPool(jobs)
    try:
        yield pool
    except BaseException:
        pool.abort()
        raise
    pool.close()


def ordered(pool, fn, tasks, window: int):
    """``fn`` over ``tasks`` in ``pool``, results in task order, at most ``window`` tasks submitted ahead."""
    tasks = iter(tasks)
    pending = [pool.submit(fn, t) for t in itertools.islice(tasks, max(1, window))]
    while pending:
        res = pending.pop(0).result()
        nxt = next(tasks, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield res
