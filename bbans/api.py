"""The public API, a thin facade over the container pipeline (container/pipeline.py) for data held in memory.

- ``compress(data, model=None, ...)``: uint8 items (N, *item_shape) -> archive bytes (``compress_with_report``
  also returns the pipeline's ``Report``: method and why, sizes, model, bounds).
- ``decompress(blob, model=None)``: archive bytes -> the original array; the model is found by the name and
  weights sha256 the archive records when not given (layout 3 records no name: by the sha256 prefix alone).
- ``open(path)``: an ``ArchiveReader`` over an archive file (its header at once, any item range on demand), or a
  ``CollectionReader`` over a collection (many named arrays or files in one archive; container/collection.py).
- ``compress_collection({name: data, ...})`` / ``decompress_collection(blob)``: many named arrays of any shapes in
  one archive, each member coded on its own (``jobs`` processes or a Dask ``scheduler``: same bytes).

``method="auto"`` codes with bits-back under ``model`` (or the installed model that fits the data) and falls back
to the smallest classical codec (deflate, lzma, bz2, stored) when no model fits or the classical archive is smaller
(container/choice.py), so an archive is never larger than the raw data plus a small header. Inputs of more than
one chunk (``chunk_items``; default 10,000 items and at most 8 MiB) become multi-chunk archives.
"""
from __future__ import annotations

import builtins

import numpy as np

from .bitsback.protocol import LatentModel
from .container import archive
from dataclasses import dataclass

from .container.pipeline import (ArchiveReader, CollectionReader, EncodeOptions, Report, decode_all, encode,
                                  encode_collection, open_archive)
from .container.sinks import MemorySink
from .container.sources import ArraySource
from .errors import InputError

CompressReport = Report  # the name this report had before archives of one and many chunks shared it


def _as_data(data) -> np.ndarray:
    """Check and normalize input to a C-contiguous uint8 array (N, *item_shape)."""
    if not isinstance(data, np.ndarray):
        raise InputError(f"compress takes a numpy array, got {type(data).__name__}; convert it with numpy.asarray")
    if data.dtype != np.uint8:
        raise InputError(f"bbans codes uint8 arrays, got {data.dtype}; convert with data.astype(numpy.uint8)")
    if not 1 <= data.ndim <= archive.MAX_NDIM:
        raise InputError(f"give an array of items shaped (N, ...), 1..{archive.MAX_NDIM} dimensions; got {data.ndim}")
    return np.ascontiguousarray(data)


def compress_with_report(data: np.ndarray, model: LatentModel | None = None, *, batch_size: int = 100,
                         extra: bytes = b"", method: str = "auto", progress=None, particles: int = 1,
                         chunk_items: int | None = None, want_elbo: bool = False,
                         format_version: int = archive.FORMAT_VERSION) -> tuple[bytes, Report]:
    """Compress ``data`` (uint8, (N, *item_shape), any memory layout) into archive bytes; also say what was done.

    ``model``: a coding model (bitsback/protocol.py), or None for the installed model that fits the data.
    ``batch_size``: largest number of items per model call. ``extra``: opaque bytes stored in the archive.
    ``method``: "auto", "bits-back", "deflate", "lzma", "bz2" or "stored". ``progress(done_items, total_items)``.
    ``particles``: K >= 2 codes with Monte-Carlo bits-back (bitsback/importance.py, archive method
    "bits-back-is"), which costs the K-sample importance-weighted bound instead of the -ELBO, at about K times the
    model work. ``want_elbo``: also measure the model's -ELBO (``Report.elbo_bits``, bits summed over items).
    ``format_version``: 1 writes bits-back archives as bbans did before layout 2 (a random seed, the model's own
    latent bins; docs/design.md, "Initial bits and the schedule"), for decoders that read only version 1; 2, the
    data-seeded layout with the longer header that bbans wrote before layout 3 (docs/design.md, "Archive byte layouts").
    """
    if format_version not in range(1, archive.FORMAT_VERSION + 1):
        raise InputError(f"format_version must be 1..{archive.FORMAT_VERSION}, got {format_version!r}")
    sink = MemorySink()
    options = EncodeOptions(method=method, batch_size=batch_size, particles=particles, chunk_items=chunk_items,
                            want_elbo=want_elbo, extra=bytes(extra), format_version=format_version)
    report = encode(ArraySource(_as_data(data)), sink, options, model=model, progress=progress)
    return sink.getvalue(), report


def compress(data: np.ndarray, model: LatentModel | None = None, **options) -> bytes:
    """Compress ``data`` (uint8, (N, *item_shape)) into archive bytes; options as ``compress_with_report``."""
    return compress_with_report(data, model, **options)[0]


def decompress(blob: bytes, model: LatentModel | None = None, *, progress=None) -> np.ndarray:
    """Decode an archive (single or multi-chunk) into the original uint8 array.

    Raises ArchiveError for any damage (checked by the archive's CRCs, the decoder's seed check and the data CRC),
    ModelError when the archive's model is missing or differs from the one given.
    """
    return decode_all(blob, model, progress)


def open(path) -> ArchiveReader | CollectionReader:
    """The archive file ``path`` (kept open until the reader is garbage-collected): an ``ArchiveReader``
    (``.header``, ``.n_items``, ``.shape``, ``.items(i, j)``) or, for a collection, a ``CollectionReader``
    (``.names``, ``.member(k)``)."""
    f = builtins.open(path, "rb")
    return open_archive(f, str(path))


@dataclass(frozen=True)
class ArrayMember:
    """A collection member held in memory: its name and uint8 items (N, *item_shape)."""

    name: str
    data: np.ndarray


def encode_array_member(spec: ArrayMember, options: EncodeOptions):
    """(archive bytes, Report) of one in-memory member (``encode_collection``'s per-member function)."""
    sink = MemorySink()
    report = encode(ArraySource(_as_data(spec.data)), sink, options)
    return sink.getvalue(), report


def compress_collection(members: dict, *, method: str = "auto", batch_size: int = 100, particles: int = 1,
                        chunk_items: int | None = None, jobs: int = 1, scheduler: str | None = None) -> bytes:
    """One archive of many named uint8 arrays (``{name: (N, *item_shape) array}``; names are relative
    '/'-separated paths), each coded on its own with the installed model that fits it (or a classical codec).
    ``jobs`` worker processes or a Dask ``scheduler`` ("tcp://HOST:PORT", "local:N") give the same bytes."""
    specs = [ArrayMember(str(name), _as_data(data)) for name, data in members.items()]
    sink = MemorySink()
    options = EncodeOptions(method=method, batch_size=batch_size, particles=particles, chunk_items=chunk_items,
                            jobs=jobs, scheduler=scheduler)
    encode_collection(specs, sink, encode_array_member, options)
    return sink.getvalue()


def decompress_collection(blob: bytes) -> dict:
    """The ``{name: array}`` a collection archive holds (every member's checksums verified)."""
    import io

    reader = CollectionReader(io.BytesIO(bytes(blob)))
    return {name: reader.member(k).read() for k, name in enumerate(reader.names)}
