# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""The one streaming pipeline that writes and reads bbans archives; a single archive is its one-chunk case.

Encoding (``encode``): items come from a *source* (sources.py: an array, or a file read through a memory map one
chunk at a time) and archive bytes go to a *sink* (sinks.py). Inputs of at most ``chunk_items`` items become one
single archive (archive.py); larger ones a multi-chunk archive (chunked.py): independent single archives, each
with its own method choice (choice.py), seed and checksums, streamed in order, then an index. So the bytes are the
same for any number of worker processes (``jobs``), and memory is bounded by the chunk size (at most ``2 * jobs``
chunks in flight).

Decoding (``ArchiveReader``): reads the archive's header or index once, then yields the items of any range
[i, j), decoding only the chunks that hold them, in this process or in ``jobs`` workers.

Chunks run in worker processes (``jobs``, or a Dask cluster: workers.py), one math-library thread each; workers
load each model once by reference (an installed model's name or a weights path) and read their chunk from the
source themselves (a file path they can see).

Sizes in bytes, rates in bits; ``elbo_bits`` / ``iwae_bits`` are the model's bounds summed over items, in bits.
"""
from __future__ import annotations

import io
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from ..bitsback import chain, schedule
from ..bitsback.protocol import LatentModel, exported, tile_size, with_digest
from ..errors import ArchiveError, BBANSError, InputError, ModelError
from . import archive, chunked, classic, collection, image_codecs, registry, tiles, workers
from .choice import CodedChunk, check_options, data_crc32, encode_chunk
from .sources import ArraySource

_models: dict = {}  # per process: model reference -> loaded model


# ---------------------------------------------------------------------------------------------------- the report


@dataclass
class Report:
    """What ``encode`` did, for one archive of one or many chunks."""

    n_items: int
    raw_bytes: int
    archive_bytes: int = 0
    chunk_items: int = 0
    n_chunks: int = 1
    methods: Counter = field(default_factory=Counter)  # method -> chunks coded with it
    reasons: list = field(default_factory=list)  # distinct reasons, in order of first appearance
    model_name: str | None = None  # the model that coded (some of) the data
    model_sha256: str | None = None
    fitting_model: str | None = None  # the model that fits the data, whether or not it won
    value_range: tuple | None = None  # (min, max) of the data's values; None for no values
    payload_bits: int = 0
    initial_bits: int = 0  # summed over chunks (bits-back only)
    seed_items: int = 0  # summed over chunks: items coded under p(x | z = 0) as the data seed (bits-back layout 2)
    schedule: list = field(default_factory=list)  # (items, particles, repeat) runs of a single bits-back archive
    particles: int = 1
    elbo_bits: float | None = None
    iwae_bits: float | None = None
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

    @property
    def bits_per_dim(self) -> float:
        """Whole-archive rate in bits per data value (per pixel)."""
        return 8.0 * self.archive_bytes / self.raw_bytes if self.raw_bytes else float("nan")

    def add(self, c: CodedChunk) -> None:
        """Account for one coded chunk (in order)."""
        self.methods[c.method] += 1
        if c.reason not in self.reasons:
            self.reasons.append(c.reason)
        self.model_name = self.model_name or c.model_name
        self.model_sha256 = self.model_sha256 or c.model_sha256
        self.fitting_model = self.fitting_model or c.fitting_model
        if c.value_range is not None:
            lo, hi = self.value_range or c.value_range
            self.value_range = (min(lo, c.value_range[0]), max(hi, c.value_range[1]))
        self.payload_bits += c.payload_bits
        self.initial_bits += c.initial_bits
        self.seed_items += c.seed_items or 0
        self.schedule = c.schedule if self.n_chunks == 1 else []
        for name in ("elbo_bits", "iwae_bits"):
            mine, theirs = getattr(self, name), getattr(c, name)
            first = sum(self.methods.values()) == 1
            setattr(self, name, theirs if first else (None if mine is None or theirs is None else mine + theirs))


# ---------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class EncodeOptions:
    """How ``encode`` codes: ``method`` (choice.METHODS), ``model_ref`` (an installed model's name or a weights
    path, which worker processes load; None: the given model object, else the installed model that fits each
    chunk), items per model call (``batch_size``), ``particles`` per item, items per chunk (``chunk_items``,
    None: ``chunked.default_chunk_items``), worker processes (``jobs``), whether to measure the model's -ELBO
    (``want_elbo``), opaque bytes stored in the archive (``extra``: e.g. the CLI's container info), and a Dask
    scheduler to code the chunks on instead (``scheduler``: "tcp://HOST:PORT" or "local:N"; workers.py)."""

    method: str = "auto"
    model_ref: str | None = None
    batch_size: int = 100
    particles: int = 1
    chunk_items: int | None = None
    jobs: int = 1
    want_elbo: bool = False
    extra: bytes = b""
    scheduler: str | None = None
    format_version: int = archive.FORMAT_VERSION  # 1: bits-back chunks as bbans wrote them before layout 2


@dataclass(frozen=True)
class FileBytes:
    """The input file's own bytes as items (a source of shape (size,)) with their container info: in "auto", a
    one-chunk archive of them replaces the archive of the decoded data when smaller (e.g. a PNG whose pixels code
    larger than the PNG file itself)."""

    source: object
    extra: bytes
    kind: str  # what the decoded data came from, e.g. "png"


def load_model_ref(model_ref: str | None):
    """The model a reference names, loaded once per process (None for None)."""
    if model_ref is None:
        return None
    if model_ref not in _models:
        _models[model_ref] = registry.load_model(model_ref)
    return _models[model_ref]


def _check_jobs(jobs, model, model_ref) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise InputError(f"jobs must be a positive integer, got {jobs!r}")
    if jobs > 1 and model is not None and model_ref is None:
        raise InputError("coding with several processes needs the model by name or path (model_ref), "
                         "since each worker loads its own copy")
    return int(jobs)


def _chunk_items(shape: tuple, chunk_items: int | None) -> int:
    item_bytes = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    c = int(chunk_items) if chunk_items else chunked.default_chunk_items(item_bytes)
    if c < 1 or c * max(item_bytes, 1) > chunked.MAX_CHUNK_ELEMENTS:
        raise InputError(f"chunks of {c} items of {item_bytes} bytes are too big (at most "
                         f"{chunked.MAX_CHUNK_ELEMENTS:,} bytes per chunk); use fewer items per chunk")
    return c


# ---------------------------------------------------------------------------------------------------- encoding


def _code_chunk(data: np.ndarray, model, options: EncodeOptions, extra: bytes = b"", progress=None,
                eval_progress=None) -> CodedChunk:
    """``encode_chunk`` with ``options``' method, batch size, particles and -ELBO wish (a multi-chunk archive's
    chunks carry no ``extra``: the container info is in its prologue)."""
    return encode_chunk(data, model, method=options.method, batch_size=options.batch_size,
                        particles=options.particles, extra=extra, want_elbo=options.want_elbo, progress=progress,
                        eval_progress=eval_progress, format_version=options.format_version)


def _encode_task(task) -> CodedChunk:
    source, i, j, options = task
    workers.prepare_worker()
    return _code_chunk(source.read(i, j), load_model_ref(options.model_ref), options)


def encode(source, sink, options: EncodeOptions = EncodeOptions(), *, model: LatentModel | None = None,
           file_bytes: FileBytes | None = None, progress=None, eval_progress=None) -> Report:
    """Write the archive of ``source``'s items (uint8 (N, *item_shape)) to ``sink``; returns what was done.

    ``model``: a model object (one process only), or None for ``options.model_ref`` / the installed model that
    fits each chunk. ``progress(done_items, total_items)`` while coding; ``eval_progress`` while measuring the
    -ELBO of a one-chunk input (``options.want_elbo``).
    """
    t0 = time.perf_counter()
    check_options(options.method, options.batch_size, options.particles)
    shape = tuple(int(d) for d in source.shape)
    n = shape[0]
    c = _chunk_items(shape, options.chunk_items)
    jobs = _check_jobs(options.jobs, model, options.model_ref)
    model = model if model is not None else load_model_ref(options.model_ref)
    raw_bytes = int(np.prod(shape, dtype=np.int64))
    report = Report(n, raw_bytes, chunk_items=c, n_chunks=chunked.n_chunks_for(n, c) if n > c else 1,
                    particles=options.particles)
    if n <= c:
        _encode_one_chunk(source, sink, options, model, file_bytes, progress, eval_progress, report)
    else:
        _encode_chunks(source, sink, options, model, jobs, progress, report)
    report.seconds = time.perf_counter() - t0
    return report


def _encode_one_chunk(source, sink, options, model, file_bytes, progress, eval_progress, report) -> None:
    data = source.read(0, report.n_items)
    coded = _code_chunk(data, model, options, options.extra, progress, eval_progress)
    if file_bytes is not None and options.method == "auto" and len(coded.blob) > file_bytes.source.shape[0]:
        size = file_bytes.source.shape[0]
        alt = encode_chunk(file_bytes.source.read(0, size), None, method="auto", extra=file_bytes.extra)
        if len(alt.blob) < len(coded.blob):
            alt.reason = (f"the {file_bytes.kind} file's own {size:,} bytes code smaller ({len(alt.blob):,} bytes) "
                          f"than its decoded data ({coded.method}, {len(coded.blob):,} bytes); {alt.method} of the "
                          "file's bytes, restored byte for byte")
            alt.fitting_model, alt.elbo_bits, alt.iwae_bits = coded.fitting_model, coded.elbo_bits, coded.iwae_bits
            alt.value_range = coded.value_range
            coded = alt
    sink.write(coded.blob)
    report.archive_bytes = len(coded.blob)
    report.add(coded)


def _encode_chunks(source, sink, options, model, jobs, progress, report) -> None:
    n, c = report.n_items, report.chunk_items
    writer = chunked.ChunkedWriter(sink, source.shape, options.extra, c)
    spans = [(k * c, min(n, (k + 1) * c)) for k in range(report.n_chunks)]

    def take(coded: CodedChunk, data, j: int) -> None:
        writer.add(coded.blob, data)
        report.add(coded)
        if progress is not None:
            progress(j, n)

    if jobs == 1 and options.scheduler is None:
        for i, j in spans:
            data = source.read(i, j)
            inner = None if progress is None else (lambda d, t, i=i: progress(i + d, n))
            take(_code_chunk(data, model, options, progress=inner), data, j)
    else:
        def task(i, j):  # workers read file regions themselves; in-memory items travel as just the chunk
            if hasattr(source, "path"):
                return source, i, j, options
            return ArraySource(source.read(i, j)), 0, j - i, options

        with workers.executor(jobs, options.scheduler) as pool:
            tasks = (task(i, j) for i, j in spans)
            for (i, j), coded in zip(spans, workers.ordered(pool, _encode_task, tasks, 2 * pool.width)):
                take(coded, source.read(i, j), j)  # the parent re-reads the chunk for the whole-data CRC
    report.archive_bytes = writer.finish()


# ---------------------------------------------------------------------------------------------------- decoding


def _check_model(model: LatentModel, h: archive.ArchiveHeader):
    """``model`` coding as the archive was made (layout 2: the coding variant its digest names); ModelError
    unless it is the model the archive was made with (sha256, or its prefix in layout 2, and coder settings)."""
    if not str(model.sha256).lower().startswith(h.model_sha256):
        raise ModelError(
            f"the archive was made with {registry.archive_model_text(h.model_name, h.model_sha256)}, but the model "
            f"given is {model.name!r} (sha256 {str(model.sha256)[:12]}…); pass the matching model or install it")
    if tile_size(model):
        if len(h.shape) != 4 or h.shape[3] != tuple(model.data_shape)[2] or min(h.shape[1:]) < 1:
            raise ArchiveError(f"the archive holds items of shape {tuple(h.shape[1:])} but its model codes images "
                               f"(H, W, {tuple(model.data_shape)[2]}); the archive is corrupt")
    elif tuple(model.data_shape) != tuple(h.shape[1:]):
        raise ArchiveError(f"the archive holds items of shape {tuple(h.shape[1:])} but its model codes "
                           f"{tuple(model.data_shape)}; the archive is corrupt")
    if h.version != 1:
        return with_digest(model, h.settings_digest, h.digest_bits)
    if archive.settings_json(dict(model.coder_settings)) != archive.settings_json(h.coder_settings):
        raise ModelError(
            f"the archive was coded with settings {h.coder_settings} but model {model.name!r} uses "
            f"{dict(model.coder_settings)}; use the bbans version and model build that made the archive")
    return exported(model)


def _decode_payload(h: archive.ArchiveHeader, payload, model, progress) -> np.ndarray:
    if h.n_elements > chunked.MAX_CHUNK_ELEMENTS:  # bbans writes bigger data as multi-chunk archives
        raise ArchiveError(f"the archive claims {h.n_elements:,} values in one piece, more than bbans codes without "
                           f"chunks ({chunked.MAX_CHUNK_ELEMENTS:,}); the archive is corrupt")
    if h.method in image_codecs.METHODS:
        out = image_codecs.decompress(h.method, payload, h.shape)
        if progress is not None:
            progress(h.n_items, h.n_items)
        return out
    if h.method not in archive.BITS_BACK_METHODS:
        raw = classic.decompress(h.method, payload, h.n_elements)
        if progress is not None:
            progress(h.n_items, h.n_items)
        return np.frombuffer(raw, np.uint8).reshape(h.shape).copy()
    if model is None:
        model = registry.find_model(h.model_name, h.model_sha256)
    model = _check_model(model, h)
    ramp = None if h.ramp is None else schedule.Ramp(*h.ramp, particles=h.particles)
    enc = chain.Encoded(payload, h.seed_words, h.prefix_words, h.schedule, h.particles, h.seed_items, ramp)
    if tile_size(model):  # an image model's chain codes the images' tiles (bbans.container.tiles)
        if h.version == 1 or h.particles > 1:
            raise ArchiveError("an archive of image tiles claims layout 1 or particles; the archive is corrupt")
        n_tiles = tiles.tile_count(h.shape, model.tile_size)
        out = chain.decode(tiles.tile_items(model, h.shape), enc, n_tiles,
                           tiles.progress_in_images(progress, n_tiles, h.n_items))
        return tiles.from_tiles(out, h.shape, model.tile_size)
    return chain.decode(model, enc, h.n_items, progress)


def decode_chunk(blob: bytes, model: LatentModel | None = None, progress=None) -> np.ndarray:
    """Decode one single archive into its uint8 array (the model found by name + sha256 when not given).

    ArchiveError for any damage (the archive's CRC, the decoder's seed check, the data CRC), ModelError when the
    archive's model is missing or differs from the one given."""
    h, payload = archive.unpack(blob)
    try:
        data = _decode_payload(h, payload, model, progress)
    except (ArchiveError, ModelError):
        raise
    except MemoryError:
        raise ArchiveError(f"the archive's data {h.shape} does not fit in memory here") from None
    except BBANSError as exc:
        raise ArchiveError(f"decoding failed ({exc}); the archive is corrupt") from None
    except BaseException as exc:  # includes constriction's PanicException
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        raise ArchiveError(
            f"decoding failed ({type(exc).__name__}: {exc}); the archive is corrupt or its model misbehaves") from None
    if data_crc32(data) != h.data_crc32:
        raise ArchiveError("the decoded data fails its checksum; the archive is corrupt or the model computes "
                           "differently on this machine (docs/design.md, 'Determinism')")
    return data


def _decode_task(task) -> np.ndarray:
    path, h, k, model_ref = task
    workers.prepare_worker()
    with open(path, "rb") as f:
        blob = chunked.chunk_blob(f, h, k)
    return decode_chunk(blob, load_model_ref(model_ref))


class ArchiveReader:
    """An archive (single or multi-chunk) in the seekable binary file ``f``: its header (``header``: an
    ``archive.ArchiveHeader`` or a ``chunked.ChunkedHeader``) is read once, at opening; ``items`` decodes any
    range of items. ``path`` (the file's name) lets ``jobs`` > 1 workers open it themselves."""

    def __init__(self, f, path: str | None = None):
        self.f, self.path = f, path
        f.seek(0)
        head = f.read(6)
        f.seek(0)
        if collection.is_collection(head):
            raise ArchiveError("this is a collection of several files: restore it with 'bbans decompress' (into a "
                               "folder) or read it with bbans.open")
        self.chunked = chunked.is_chunked(head)
        if self.chunked:
            self.header = chunked.read_index(f)
            self._blob = None
        else:
            self._blob = f.read()
            self.header = archive.read_header(self._blob)

    @property
    def n_items(self) -> int:
        return self.header.n_items

    @property
    def shape(self) -> tuple:
        return tuple(self.header.shape)

    @property
    def extra(self) -> bytes:
        return bytes(self.header.extra or b"")

    @property
    def n_chunks(self) -> int:
        return self.header.n_chunks if self.chunked else 1

    def chunks_for(self, i: int, j: int) -> int:
        """How many chunks hold items [i, j) (what decoding that range costs)."""
        return len(self.header.chunks_for(i, j)) if self.chunked else 1

    def read(self, i: int = 0, j: int | None = None, **options) -> np.ndarray:
        """The items [i, j) as one uint8 array (``items`` options), every checksum of the range verified."""
        parts = list(self.items(i, j, **options))
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def items(self, i: int = 0, j: int | None = None, *, model: LatentModel | None = None,
              model_ref: str | None = None, jobs: int = 1, scheduler: str | None = None, progress=None):
        """Yield the items [i, j) as uint8 arrays, chunk by chunk, decoding only the chunks that overlap the range.
        When the range is the whole archive, the whole-data CRC is checked after the last chunk (ArchiveError on
        a mismatch, so a caller that streams to a temporary file can discard it). ``progress(done, total)``."""
        n = self.n_items
        j = n if j is None else j
        if not 0 <= i <= j <= n:
            raise InputError(f"item range {i}:{j} is outside the archive's {n} items (0:{n})")
        jobs = _check_jobs(jobs, model, model_ref)
        model = model if model is not None else load_model_ref(model_ref)
        if not self.chunked:
            yield decode_chunk(self._blob, model, progress)[i:j]
            return
        h, crc, done, whole = self.header, 0, 0, (i == 0 and j == n)
        ks = list(h.chunks_for(i, j))
        if (jobs > 1 or scheduler is not None) and self.path is None:
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
            return data[max(a, i) - a:min(b, j) - a]

        if jobs == 1 and scheduler is None:
            for k in ks:
                yield emit(k, decode_chunk(chunked.chunk_blob(self.f, h, k), model))
        else:
            tasks = ((self.path, h, k, model_ref) for k in ks)
            with workers.executor(jobs, scheduler) as pool:
                for k, data in zip(ks, workers.ordered(pool, _decode_task, tasks, 2 * pool.width)):
                    yield emit(k, data)
        if whole and crc != h.data_crc32:
            raise ArchiveError("the decoded data fails the archive's whole-data checksum; the archive is corrupt "
                               "or the model computes differently on this machine (docs/design.md, 'Determinism')")


def decode_all(blob: bytes, model: LatentModel | None = None, progress=None) -> np.ndarray:
    """Decode a whole archive (single or multi-chunk) held in memory into one array (checks every CRC)."""
    return ArchiveReader(io.BytesIO(bytes(blob))).read(model=model, progress=progress)


# ---------------------------------------------------------------------------------------------------- collections


@dataclass
class CollectionReport:
    """What ``encode_collection`` did: one ``Report`` per member, in order."""

    members: list = field(default_factory=list)  # (name, Report)
    archive_bytes: int = 0
    seconds: float = 0.0

    @property
    def raw_bytes(self) -> int:
        return sum(r.raw_bytes for _, r in self.members)

    @property
    def methods(self) -> Counter:
        """method -> members coded (wholly or partly) with it."""
        out = Counter()
        for _, r in self.members:
            for m in r.methods:
                out[m] += 1
        return out


def _member_task(task):
    encode_member, spec, options = task
    workers.prepare_worker()
    return encode_member(spec, options)


def encode_collection(specs: list, sink, encode_member, options: EncodeOptions = EncodeOptions(),
                      progress=None) -> CollectionReport:
    """Write a collection archive (collection.py) of the members ``specs`` (each with a ``name``) to ``sink``.

    ``encode_member(spec, options) -> (member archive bytes, Report)`` codes one member; it must be a module-level
    function (worker processes and Dask workers import it) and read the member from what ``spec`` names (a path
    the workers can see). Members are coded one per task: in this process, in ``options.jobs`` processes or on
    ``options.scheduler``; the archive's bytes are the same either way. ``progress(done_members, total)``.
    """
    t0 = time.perf_counter()
    writer = collection.CollectionWriter(sink, len(specs))
    report = CollectionReport()
    member_options = replace(options, jobs=1, scheduler=None)

    def take(spec, result) -> None:
        member_blob, rep = result
        writer.add(spec.name, member_blob)
        report.members.append((spec.name, rep))
        if progress is not None:
            progress(len(report.members), len(specs))

    if options.jobs == 1 and options.scheduler is None:
        for spec in specs:
            take(spec, encode_member(spec, member_options))
    else:
        tasks = ((encode_member, spec, member_options) for spec in specs)
        with workers.executor(options.jobs, options.scheduler) as pool:
            for spec, result in zip(specs, workers.ordered(pool, _member_task, tasks, 2 * pool.width)):
                take(spec, result)
    report.archive_bytes = writer.finish()
    report.seconds = time.perf_counter() - t0
    return report


class CollectionReader:
    """A collection archive in the seekable binary file ``f``: ``index`` (names, offsets, lengths) is read once;
    ``member(k)`` is an ``ArchiveReader`` over member ``k``."""

    def __init__(self, f):
        self.f = f
        self.index = collection.read_index(f)

    @property
    def names(self) -> list:
        return list(self.index.names)

    def member(self, k: int) -> ArchiveReader:
        return ArchiveReader(collection.FileSlice(self.f, self.index.offsets[k], self.index.lengths[k]))


def open_archive(f, path: str | None = None):
    """An ``ArchiveReader`` (single or multi-chunk archive) or a ``CollectionReader`` for the file ``f``."""
    f.seek(0)
    head = f.read(6)
    f.seek(0)
    return CollectionReader(f) if collection.is_collection(head) else ArchiveReader(f, path)
