# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Multi-chunk archives: independent single archives (archive.py) plus an index, for inputs of any size.

A chunked archive can be written as a stream (the index comes last, so the encoder never holds the whole archive),
decoded chunk by chunk in bounded memory, decoded partly (only the chunks that overlap an item range), and its
chunks can be coded in parallel: each chunk is a complete archive with its own method, seed and checksums, so the
bytes do not depend on how many processes coded them.

Layout (``varint`` = unsigned LEB128, as in archive.py)::

    prologue  magic b"BBAN" | version 1 | method 6 (chunked) | dtype 1 (uint8) | ndim | ndim varints: the whole
              array's shape (N, *item shape) | extra (varint length + bytes, the CLI's container info)
              | chunk items c (varint) | crc32 of the prologue's bytes before it (4 bytes LE)
    chunks    ceil(N / c) complete single archives; chunk k holds items [k*c, min((k+1)*c, N)), its extra is empty
    index     varint chunk count | one varint per chunk: its length in bytes | data crc32 (4 bytes LE:
              zlib.crc32 of the whole array's bytes in C order)
    footer    index length in bytes (u32 LE) | crc32 of the index (u32 LE) | b"BBAZ"          (12 bytes)

Readers check the prologue's and the index's CRCs and every count against the file size before reading a chunk;
each chunk is then checked by its own CRCs; decoding everything also checks the whole-data CRC.
"""
from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass, field

from . import archive
from .binary import Reader, blob, varint
from ..errors import ArchiveError

METHOD_ID = archive.CHUNKED_METHOD_ID  # the method byte of a chunked archive (0..5, 8, 9: single-archive methods)
FOOTER_MAGIC = b"BBAZ"
FOOTER_BYTES = 12
MAX_EXTRA_BYTES = 1 << 20  # container info is at most an npy header (numpy's are < 64 KiB)
MAX_CHUNK_ELEMENTS = 1 << 28  # values per chunk (256 MiB): what one chunk may make a decoder allocate
DEFAULT_CHUNK_ITEMS = 10_000
DEFAULT_CHUNK_BYTES = 8 << 20  # items of other sizes: as many as fit in 8 MiB, at most DEFAULT_CHUNK_ITEMS

LAYOUT_VERSION = 1  # this layout is unchanged since format version 1, so it keeps that version byte


def default_chunk_items(item_bytes: int) -> int:
    """Items per chunk by default: DEFAULT_CHUNK_ITEMS, fewer for items over 838 bytes (8 MiB per chunk at most),
    and 8 MiB worth of items for tiny items (raw bytes: one byte per item)."""
    per = max(1, DEFAULT_CHUNK_BYTES // max(1, int(item_bytes)))
    return per if item_bytes <= 1 else max(1, min(DEFAULT_CHUNK_ITEMS, per))


def is_chunked(head: bytes) -> bool:
    """True when ``head`` (an archive's first 6+ bytes) starts a chunked archive."""
    return len(head) >= 6 and head[:4] == archive.MAGIC and head[5] == METHOD_ID


@dataclass
class ChunkedHeader:
    """A chunked archive's prologue and index. Offsets and lengths in bytes from the start of the archive."""

    shape: tuple
    extra: bytes
    chunk_items: int
    data_crc32: int = 0
    dtype: str = "uint8"
    version: int = LAYOUT_VERSION
    offsets: list = field(default_factory=list)  # byte offset of each chunk
    lengths: list = field(default_factory=list)  # byte length of each chunk
    archive_bytes: int = 0
    method: str = "chunked"

    @property
    def n_items(self) -> int:
        return int(self.shape[0])

    @property
    def n_chunks(self) -> int:
        return len(self.lengths)

    def span(self, k: int) -> tuple[int, int]:
        """Items [i, j) of chunk ``k``."""
        i = k * self.chunk_items
        return i, min(i + self.chunk_items, self.n_items)

    def chunks_for(self, i: int, j: int) -> range:
        """The chunks that hold any of items [i, j)."""
        if j <= i:
            return range(0)
        return range(i // self.chunk_items, (j - 1) // self.chunk_items + 1)


def n_chunks_for(n_items: int, chunk_items: int) -> int:
    return -(-n_items // chunk_items)


def _check_layout(shape, chunk_items: int) -> None:
    item = 1
    for d in shape[1:]:
        item *= int(d)
    if chunk_items < 1 or chunk_items * max(item, 1) > MAX_CHUNK_ELEMENTS:
        raise ValueError(f"chunks of {chunk_items} items of {item} values exceed {MAX_CHUNK_ELEMENTS} values")


# ---------------------------------------------------------------------------------------------------- writing


def prologue(shape, extra: bytes, chunk_items: int) -> bytes:
    shape = tuple(int(d) for d in shape)
    if not 1 <= len(shape) <= archive.MAX_NDIM:
        raise ValueError(f"arrays of 1..{archive.MAX_NDIM} dimensions only")
    _check_layout(shape, chunk_items)
    if len(extra) > MAX_EXTRA_BYTES:
        raise ValueError("container info too long")
    out = bytearray(archive.MAGIC)
    out += bytes([LAYOUT_VERSION, METHOD_ID, archive.DTYPES["uint8"], len(shape)])
    for d in shape:
        out += varint(d)
    out += blob(bytes(extra)) + varint(chunk_items)
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


class ChunkedWriter:
    """Streams a chunked archive into the binary file ``f``: ``add`` each chunk archive in order, then ``finish``."""

    def __init__(self, f, shape, extra: bytes, chunk_items: int):
        self.f, self.shape, self.chunk_items = f, tuple(int(d) for d in shape), int(chunk_items)
        self.lengths: list[int] = []
        self.data_crc = 0
        self.bytes_written = 0
        self._write(prologue(self.shape, extra, self.chunk_items))

    def _write(self, b: bytes) -> None:
        self.f.write(b)
        self.bytes_written += len(b)

    def add(self, chunk_blob: bytes, chunk_data) -> None:
        """Append one chunk archive; ``chunk_data`` (its uint8 items, C order) updates the whole-data CRC."""
        self._write(chunk_blob)
        self.lengths.append(len(chunk_blob))
        self.data_crc = zlib.crc32(memoryview(chunk_data).cast("B"), self.data_crc) if chunk_data.size else \
            self.data_crc

    def finish(self) -> int:
        """Write the index and footer; returns the archive's total size in bytes."""
        want = n_chunks_for(self.shape[0], self.chunk_items)
        if len(self.lengths) != want:
            raise ValueError(f"{len(self.lengths)} chunks written, the shape needs {want}")
        index = varint(len(self.lengths)) + b"".join(varint(n) for n in self.lengths)
        index += (self.data_crc & 0xFFFFFFFF).to_bytes(4, "little")
        self._write(index + len(index).to_bytes(4, "little") + zlib.crc32(index).to_bytes(4, "little")
                    + FOOTER_MAGIC)
        return self.bytes_written


# ---------------------------------------------------------------------------------------------------- reading


def _size(f) -> int:
    pos = f.tell()
    f.seek(0, os.SEEK_END)
    end = f.tell()
    f.seek(pos)
    return end


def read_at(f, offset: int, n: int) -> bytes:
    f.seek(offset)
    b = f.read(n)
    if len(b) != n:
        raise ArchiveError("the archive is truncated (a chunk ends past the end of the file); get a complete copy")
    return b


def read_index(f) -> ChunkedHeader:
    """Parse a chunked archive's prologue and index from the seekable binary file ``f`` (reads only those)."""
    size = _size(f)
    head = read_at(f, 0, min(size, 6))
    archive.check_magic_and_version(head)
    if not is_chunked(head):
        raise ArchiveError("this is a single-chunk archive, not a chunked one")
    if size < 6 + FOOTER_BYTES + 8:
        raise ArchiveError("the archive is truncated (shorter than any chunked archive); get a complete copy")
    pro = read_at(f, 0, min(size - FOOTER_BYTES, MAX_EXTRA_BYTES + 512))
    r = Reader(pro, 6)
    dtype, shape = archive.read_dtype_and_shape(r)
    n_extra = r.varint("extra field length")
    if n_extra > MAX_EXTRA_BYTES:
        raise ArchiveError(f"the archive claims a {n_extra}-byte container field; the archive is corrupt")
    extra = r.take(n_extra, "extra field")
    chunk_items = r.varint("chunk size")
    stored = int.from_bytes(r.take(4, "prologue checksum"), "little")
    if zlib.crc32(pro[: r.pos - 4]) != stored:
        raise ArchiveError("the archive's prologue fails its checksum: the archive is corrupt; get a fresh copy")
    start = r.pos
    footer = read_at(f, size - FOOTER_BYTES, FOOTER_BYTES)
    if footer[8:] != FOOTER_MAGIC:
        raise ArchiveError("the archive's end marker is missing: it is truncated or corrupt; get a complete copy")
    n_index, index_crc = int.from_bytes(footer[:4], "little"), int.from_bytes(footer[4:8], "little")
    if n_index > size - FOOTER_BYTES - start:
        raise ArchiveError("the archive's index is longer than the archive: it is truncated or corrupt")
    index = read_at(f, size - FOOTER_BYTES - n_index, n_index)
    if zlib.crc32(index) != index_crc:
        raise ArchiveError("the archive's index fails its checksum: the archive is corrupt; get a fresh copy")
    n_items = shape[0]
    try:
        _check_layout(shape, chunk_items)
    except ValueError:
        raise ArchiveError(f"the archive claims chunks of {chunk_items} items of shape {tuple(shape[1:])}, more "
                           "than bbans codes in one chunk; the archive is corrupt") from None
    if n_items < 1:
        raise ArchiveError("the chunked archive claims no items; the archive is corrupt")
    ir = Reader(index)
    n_chunks = ir.varint("chunk count")
    if n_chunks != n_chunks_for(n_items, chunk_items) or n_chunks > n_index:
        raise ArchiveError(f"the archive's index lists {n_chunks} chunks where {n_items} items in chunks of "
                           f"{chunk_items} need {n_chunks_for(n_items, chunk_items)}; the archive is corrupt")
    lengths = [ir.varint("chunk length") for _ in range(n_chunks)]
    data_crc = int.from_bytes(ir.take(4, "data checksum"), "little")
    if ir.left:
        raise ArchiveError("the archive's index has trailing bytes; the archive is corrupt")
    body = size - FOOTER_BYTES - n_index - start
    if sum(lengths) != body or min(lengths) < 1:
        raise ArchiveError(f"the archive's index says its chunks take {sum(lengths)} bytes but {body} are there; "
                           "it is truncated or corrupt")
    offsets, pos = [], start
    for n in lengths:
        offsets.append(pos)
        pos += n
    return ChunkedHeader(shape, bytes(extra), chunk_items, data_crc, dtype, head[4],
                         offsets, lengths, size)


def read_header_bytes(blob: bytes) -> ChunkedHeader:
    """``read_index`` of an archive held in memory."""
    return read_index(io.BytesIO(bytes(blob)))


def chunk_blob(f, h: ChunkedHeader, k: int) -> bytes:
    """The bytes of chunk ``k`` (a complete single archive), its header checked against the index."""
    blob = read_at(f, h.offsets[k], h.lengths[k])
    check_chunk_header(archive.read_header(blob), h, k)
    return blob


def check_chunk_header(ch: archive.ArchiveHeader, h: ChunkedHeader, k: int) -> None:
    i, j = h.span(k)
    if tuple(ch.shape) != (j - i, *h.shape[1:]) or ch.dtype != h.dtype or ch.extra:
        raise ArchiveError(f"chunk {k} of the archive holds data {tuple(ch.shape)} where its index says "
                           f"{(j - i, *h.shape[1:])}; the archive is corrupt")
