"""Coding chunked archives (bbans/chunked.py) chunk by chunk, in this process or across worker processes.

Every chunk is coded on its own (``api.compress_with_report`` on its items, with its own method choice), so the
archive's bytes are the same for any number of processes. Workers are started with the ``spawn`` method, limited
to one math-library thread each (OMP/MKL/OpenBLAS variables set before any model package is imported), load each
model once (providers cache loaded models) and read their items from the source themselves (``FileSource``
memory-maps just that chunk). At most ``2 * jobs`` chunks are in flight, so memory is bounded by the chunk size.

Sizes in bytes, rates in bits; ``elbo_bits`` is the model's -ELBO summed over items, in bits.
"""
from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import archive

from . import chunked
from ..errors import ArchiveError, BBANSError, InputError
from .sources import ArraySource

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_models: dict = {}  # per process: model reference -> loaded model


@dataclass
class ChunkResult:
    k: int
    blob: bytes
    method: str
    reason: str
    model_name: str | None
    elbo_bits: float | None  # the chunk's -ELBO under the model that fits it, summed over items (bits)


@dataclass
class ChunkedReport:
    """What ``compress_to`` did: per-method chunk counts, sizes in bytes, the summed -ELBO in bits (or None)."""

    n_items: int
    raw_bytes: int
    archive_bytes: int
    chunk_items: int
    n_chunks: int
    methods: Counter = field(default_factory=Counter)
    reasons: list = field(default_factory=list)  # distinct reasons, in order of first appearance
    model_name: str | None = None
    elbo_bits: float | None = None
    seconds: float = 0.0

    @property
    def method(self) -> str:
        """One method name, or a summary like 'bits-back (5 chunks), lzma (1 chunk)'."""
        if len(self.methods) == 1:
            return next(iter(self.methods))
        return ", ".join(f"{m} ({n} chunk{'s' if n > 1 else ''})" for m, n in self.methods.most_common())

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _init_worker() -> None:
    for v in _THREAD_VARS:
        os.environ[v] = "1"


def _load(model_ref):
    if model_ref is None:
        return None
    if model_ref not in _models:
        from .registry import load_model

        _models[model_ref] = load_model(model_ref)
    return _models[model_ref]


def _elbo_bits(model, data: np.ndarray) -> float | None:
    fn = getattr(model, "neg_elbo_bits", None)
    if model is None or fn is None or not len(data):
        return None
    return float(sum(np.asarray(fn(data[i:i + 500]), np.float64).sum() for i in range(0, len(data), 500)))


def _encode_chunk(k, data, model, model_ref, method, batch_size, want_elbo, options, progress=None) -> ChunkResult:
    from .. import api
    from . import registry
    from ..bitsback.protocol import model_fits

    if model is None and model_ref is not None:
        model = _load(model_ref)
    blob, rep = api.compress_with_report(data, model, batch_size=batch_size, method=method, progress=progress,
                                         **options)
    elbo = None
    if want_elbo and method not in ("deflate", "lzma", "bz2", "stored"):
        used = model
        if used is None:
            try:
                used = registry.default_model_for(data)
            except BBANSError:
                used = None
        if used is not None and model_fits(used, data):
            elbo = _elbo_bits(used, data)
    return ChunkResult(k, blob, rep.method, rep.reason, rep.model_name, elbo)


def _encode_task(task) -> ChunkResult:
    source, k, i, j, model_ref, method, batch_size, want_elbo, options = task
    return _encode_chunk(k, source.read(i, j), None, model_ref, method, batch_size, want_elbo, options)


def _check_jobs(jobs, model, model_ref) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise InputError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs > 1 and model is not None and model_ref is None:
        raise InputError("coding with several processes needs the model by name or path (model_ref), "
                         "since each worker loads its own copy")
    return int(jobs)


@contextmanager
def _pool(jobs: int):
    """A spawn-started process pool; on any exception (Ctrl-C included) its workers are stopped at once instead
    of finishing their chunks."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)
    try:
        yield pool
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):  # no public API stops running tasks
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _ordered(pool, fn, tasks, window: int):
    """``fn`` over ``tasks`` in the pool, results in task order, at most ``window`` tasks submitted ahead."""
    tasks = iter(tasks)
    pending = []
    for t in tasks:
        pending.append(pool.submit(fn, t))
        if len(pending) >= window:
            break
    while pending:
        fut = pending.pop(0)
        res = fut.result()
        nxt = next(tasks, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield res


def compress_to(f, source, *, model=None, model_ref: str | None = None, method: str = "auto",
                chunk_items: int | None = None, batch_size: int = 100, extra: bytes = b"", jobs: int = 1,
                want_elbo: bool = False, progress=None, coder_options: dict | None = None) -> ChunkedReport:
    """Write a chunked archive of ``source``'s items (bbans/itemsource.py) to the binary file ``f``.

    ``model``: a model object (jobs=1 only) or None; ``model_ref``: an installed model's name or a weights path
    that every worker loads; neither: the installed model that fits each chunk, else a classical codec (method
    "auto"). ``chunk_items``: items per chunk (default ``chunked.default_chunk_items``). ``progress(done, total)``.
    ``coder_options``: further keywords for ``api.compress_with_report`` (e.g. particles).
    """
    options = dict(coder_options or {})
    t0 = time.perf_counter()
    shape = tuple(int(d) for d in source.shape)
    n = shape[0]
    item_bytes = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    c = int(chunk_items) if chunk_items else chunked.default_chunk_items(item_bytes)
    if c < 1 or c * max(item_bytes, 1) > chunked.MAX_CHUNK_ELEMENTS:
        raise InputError(f"chunks of {c} items of {item_bytes} bytes are too big (at most "
                         f"{chunked.MAX_CHUNK_ELEMENTS:,} bytes per chunk); use fewer items per chunk")
    if n < 1:
        raise InputError("a chunked archive needs at least one item")
    jobs = _check_jobs(jobs, model, model_ref)
    writer = chunked.ChunkedWriter(f, shape, extra, c)
    rep = ChunkedReport(n, n * item_bytes, 0, c, chunked.n_chunks_for(n, c))
    elbo_total = 0.0

    def take(res: ChunkResult, data) -> None:
        nonlocal elbo_total
        writer.add(res.blob, data)
        rep.methods[res.method] += 1
        if res.reason not in rep.reasons:
            rep.reasons.append(res.reason)
        rep.model_name = rep.model_name or res.model_name
        if res.elbo_bits is None:
            elbo_total = float("nan")
        else:
            elbo_total += res.elbo_bits

    spans = [(k, k * c, min(n, (k + 1) * c)) for k in range(rep.n_chunks)]
    if jobs == 1:
        for k, i, j in spans:
            data = source.read(i, j)
            inner = None if progress is None else (lambda d, t, i=i: progress(i + d, n))
            take(_encode_chunk(k, data, model, model_ref, method, batch_size, want_elbo, options, inner), data)
            if progress is not None:
                progress(j, n)
    else:
        def task(k, i, j):  # workers read file regions themselves; in-memory items travel as just the chunk
            if hasattr(source, "path"):
                return source, k, i, j, model_ref, method, batch_size, want_elbo, options
            return ArraySource(source.read(i, j)), k, 0, j - i, model_ref, method, batch_size, want_elbo, options

        tasks = (task(k, i, j) for k, i, j in spans)
        with _pool(jobs) as pool:
            for (k, i, j), res in zip(spans, _ordered(pool, _encode_task, tasks, 2 * jobs)):
                take(res, source.read(i, j))  # the parent re-reads the chunk for the whole-data CRC
                if progress is not None:
                    progress(j, n)
    rep.archive_bytes = writer.finish()
    rep.elbo_bits = elbo_total if want_elbo and elbo_total == elbo_total else None
    rep.seconds = time.perf_counter() - t0
    return rep


# ---------------------------------------------------------------------------------------------------- decoding


def _decode_blob(blob: bytes, model, model_ref) -> np.ndarray:
    from .. import api

    if model is None and model_ref is not None:
        model = _load(model_ref)
    return api.decompress(blob, model)


def _decode_task(task) -> np.ndarray:
    path, h, k, model_ref = task
    with open(path, "rb") as f:
        blob = chunked.chunk_blob(f, h, k)
    return _decode_blob(blob, None, model_ref)


def decompress_iter(f, h: chunked.ChunkedHeader, i: int = 0, j: int | None = None, *, model=None,
                    model_ref: str | None = None, jobs: int = 1, path: str | None = None, progress=None):
    """Yield the items [i, j) of the chunked archive in ``f`` (header ``h`` from ``chunked.read_index``) as uint8
    arrays, chunk by chunk, decoding only the chunks that overlap the range.

    When the range is the whole archive, the whole-data CRC is checked after the last chunk (ArchiveError on a
    mismatch, so a caller that streams to a temporary file can discard it). ``jobs`` > 1 needs ``path`` (workers
    open the file themselves). ``progress(done_items, total_items)``.
    """
    n = h.n_items
    j = n if j is None else j
    if not 0 <= i <= j <= n:
        raise InputError(f"item range {i}:{j} is outside the archive's {n} items (0:{n})")
    jobs = _check_jobs(jobs, model, model_ref)
    ks = list(h.chunks_for(i, j))
    whole = i == 0 and j == n
    crc, done = 0, 0
    if jobs > 1 and path is None:
        raise InputError("decoding with several processes needs the archive's file path")

    def emit(k, data):
        nonlocal crc, done
        a, b = h.span(k)
        if data.shape != (b - a, *h.shape[1:]):
            raise ArchiveError(f"chunk {k} decodes to shape {data.shape}, not {(b - a, *h.shape[1:])}; corrupt")
        if whole:
            crc = zlib.crc32(memoryview(np.ascontiguousarray(data)).cast("B"), crc) if data.size else crc
        done += min(b, j) - max(a, i)
        if progress is not None:
            progress(done, j - i)
        return data[max(a, i) - a: min(b, j) - a]

    def finish_check():
        if whole and crc != h.data_crc32:
            raise ArchiveError("the decoded data fails the archive's whole-data checksum; the archive is corrupt "
                               "or the model computes differently on this machine (see DESIGN.md §4)")

    if jobs == 1:
        for k in ks:
            yield emit(k, _decode_blob(chunked.chunk_blob(f, h, k), model, model_ref))
    else:
        with _pool(jobs) as pool:
            for k, data in zip(ks, _ordered(pool, _decode_task, ((path, h, k, model_ref) for k in ks), 2 * jobs)):
                yield emit(k, data)
    finish_check()


def decompress_bytes(blob: bytes, model=None) -> np.ndarray:
    """Decode a whole chunked archive held in memory into one array (checks every CRC)."""
    import io

    f = io.BytesIO(bytes(blob))
    h = chunked.read_index(f)
    parts = list(decompress_iter(f, h, model=model))
    return np.concatenate(parts) if parts else np.zeros((0, *h.shape[1:]), np.uint8)


def compress_bytes(data: np.ndarray, model=None, **kw) -> tuple[bytes, ChunkedReport]:
    """A chunked archive of ``data`` (uint8 (N, *item_shape)) in memory; keywords as ``compress_to``."""
    import io

    f = io.BytesIO()
    rep = compress_to(f, ArraySource(np.asarray(data)), model=model, **kw)
    return f.getvalue(), rep


def single_or_chunked_header(blob: bytes):
    """The header of an archive in memory, single (ArchiveHeader) or chunked (ChunkedHeader)."""
    if chunked.is_chunked(blob[:6]):
        return chunked.read_header_bytes(blob)
    return archive.read_header(blob)
