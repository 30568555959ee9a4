"""Collection archives: many named members (files of a data set) in one archive. Each member is a complete archive
(single or multi-chunk; archive.py, chunked.py) with its own container info, method, model and checksums, so
members are coded independently (in any process or on any cluster worker) and read back one at a time.

Layout (``varint`` = unsigned LEB128, as in archive.py)::

    prologue  magic b"BBAN" | version 1 | method 7 (collection) | member count (varint)
              | crc32 of the prologue's bytes before it (4 bytes LE)
    members   the member archives, in index order, back to back
    index     varint member count | per member: name (varint length + UTF-8: a relative path with '/'
              separators) | its length in bytes (varint)
    footer    index length in bytes (u32 LE) | crc32 of the index (u32 LE) | b"BBAC"          (12 bytes)

Names are checked on both sides: relative, '/'-separated, no empty, '.' or '..' component, no backslash or NUL, at
most ``MAX_NAME_BYTES`` bytes, unique — so a hostile archive cannot make a decoder write outside its folder.
"""
from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass, field

from ..errors import ArchiveError, InputError
from . import archive
from .binary import Reader, blob, varint
from .chunked import read_at

METHOD_ID = 7  # the method byte of a collection (0..5, 8, 9 single archives, 6 multi-chunk)
FOOTER_MAGIC = b"BBAC"
FOOTER_BYTES = 12
MAX_NAME_BYTES = 4096
MAX_MEMBERS = 1 << 24

LAYOUT_VERSION = 1  # this layout is unchanged since format version 1, so it keeps that version byte


def is_collection(head: bytes) -> bool:
    """True when ``head`` (an archive's first 6+ bytes) starts a collection."""
    return len(head) >= 6 and head[:4] == archive.MAGIC and head[5] == METHOD_ID


def check_name(name: str) -> str:
    """``name`` if it is a safe relative member path; ValueError saying why not."""
    if not isinstance(name, str) or not name:
        raise ValueError("a member needs a non-empty name")
    if "\\" in name or "\x00" in name or name.startswith("/") or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"member name {name!r} is not a relative '/'-separated path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"member name {name!r} has an empty, '.' or '..' component")
    return name


@dataclass
class CollectionIndex:
    """A collection's members: names, byte offsets and lengths (from the start of the archive)."""

    names: list = field(default_factory=list)
    offsets: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    version: int = LAYOUT_VERSION
    archive_bytes: int = 0
    method: str = "collection"

    @property
    def n_members(self) -> int:
        return len(self.names)


class CollectionWriter:
    """Streams a collection into ``sink`` (``write(b)``): ``add(name, member_blob)`` each member in order, then
    ``finish``. ``count`` members must be added."""

    def __init__(self, sink, count: int):
        if not 0 <= count <= MAX_MEMBERS:
            raise InputError(f"a collection holds 0..{MAX_MEMBERS} members, not {count}")
        self.sink, self.count, self.names, self.lengths, self.bytes_written = sink, count, [], [], 0
        head = bytearray(archive.MAGIC) + bytes([LAYOUT_VERSION, METHOD_ID]) + varint(count)
        self._write(bytes(head) + zlib.crc32(head).to_bytes(4, "little"))

    def _write(self, b: bytes) -> None:
        self.sink.write(b)
        self.bytes_written += len(b)

    def add(self, name: str, member: bytes) -> None:
        try:
            check_name(name)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if name in self.names:
            raise InputError(f"two members are named {name!r}")
        self._write(member)
        self.names.append(name)
        self.lengths.append(len(member))

    def finish(self) -> int:
        """Write the index and footer; returns the collection's size in bytes."""
        if len(self.names) != self.count:
            raise ValueError(f"{len(self.names)} members written, {self.count} announced")
        index = varint(self.count) + b"".join(blob(n.encode("utf-8")) + varint(k)
                                              for n, k in zip(self.names, self.lengths))
        self._write(index + len(index).to_bytes(4, "little") + zlib.crc32(index).to_bytes(4, "little")
                    + FOOTER_MAGIC)
        return self.bytes_written


def read_index(f) -> CollectionIndex:
    """Parse a collection's prologue and index from the seekable binary file ``f`` (reads only those)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    head = read_at(f, 0, min(size, 16))
    archive.check_magic_and_version(head)
    if not is_collection(head) or size < 6 + 4 + FOOTER_BYTES:
        raise ArchiveError("this is not a collection archive, or it is truncated; get a complete copy")
    r = Reader(head, 6)
    count = r.varint("member count")
    if zlib.crc32(head[:r.pos]) != int.from_bytes(r.take(4, "prologue checksum"), "little"):
        raise ArchiveError("the archive's prologue fails its checksum: the archive is corrupt; get a fresh copy")
    start = r.pos
    footer = read_at(f, size - FOOTER_BYTES, FOOTER_BYTES)
    if footer[8:] != FOOTER_MAGIC:
        raise ArchiveError("the archive's end marker is missing: it is truncated or corrupt; get a complete copy")
    n_index = int.from_bytes(footer[:4], "little")
    if n_index > size - FOOTER_BYTES - start:
        raise ArchiveError("the archive's index is longer than the archive: it is truncated or corrupt")
    index = read_at(f, size - FOOTER_BYTES - n_index, n_index)
    if zlib.crc32(index) != int.from_bytes(footer[4:8], "little"):
        raise ArchiveError("the archive's index fails its checksum: the archive is corrupt; get a fresh copy")
    ir = Reader(index)
    if ir.varint("member count") != count or count > n_index:
        raise ArchiveError("the archive's index and prologue disagree on the member count; the archive is corrupt")
    out, pos = CollectionIndex(version=head[4], archive_bytes=size), start
    for _ in range(count):
        try:
            name = check_name(ir.blob("member name").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ArchiveError(f"the archive has an unsafe or invalid member name ({exc}); it is corrupt") from None
        if name in out.names:
            raise ArchiveError(f"the archive names two members {name!r}; the archive is corrupt")
        length = ir.varint("member length")
        out.names.append(name)
        out.offsets.append(pos)
        out.lengths.append(length)
        pos += length
    if ir.left or pos != size - FOOTER_BYTES - n_index:
        raise ArchiveError("the archive's index does not match the members' bytes: it is truncated or corrupt")
    return out


class FileSlice(io.RawIOBase):
    """A read-only, seekable view of bytes [offset, offset + length) of the binary file ``f`` (a member of a
    collection read as an archive of its own)."""

    def __init__(self, f, offset: int, length: int):
        super().__init__()
        self.f, self.offset, self.length, self.pos = f, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.length}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.length - self.pos if n is None or n < 0 else min(n, self.length - self.pos)
        if n <= 0:
            return b""
        self.f.seek(self.offset + self.pos)
        b = self.f.read(n)
        self.pos += len(b)
        return b

    def readinto(self, buf) -> int:
        b = self.read(len(buf))
        buf[:len(b)] = b
        return len(b)
