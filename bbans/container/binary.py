"""Little-endian binary primitives of bbans archives: unsigned LEB128 varints, length-prefixed blobs, and a
``Reader`` that checks every read against the bytes that remain (archives are parsed defensively: a hostile length
never makes the reader allocate or read past the end). Used by archive.py, chunked.py and the CLI's container info.
"""
from __future__ import annotations

from ..errors import ArchiveError

MAX_VARINT_BYTES = 10


def varint(n: int) -> bytes:
    """``n`` >= 0 as an unsigned LEB128 varint (7 bits a byte, low first; at most 10 bytes for 64-bit values)."""
    if n < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def blob(b: bytes) -> bytes:
    """``b`` prefixed with its length as a varint."""
    return varint(len(b)) + b


class Reader:
    """Cursor over ``body`` from byte ``pos``; every read is checked against the bytes that remain and names
    ``what`` it was reading in its ArchiveError."""

    def __init__(self, body: bytes, pos: int = 0):
        self.body, self.pos = body, pos

    @property
    def left(self) -> int:
        return len(self.body) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise ArchiveError(f"the archive is truncated: its {what} needs {n} bytes but {self.left} remain")
        out = self.body[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        """A little-endian unsigned 32-bit integer."""
        return int.from_bytes(self.take(4, what), "little")

    def varint(self, what: str) -> int:
        n = shift = 0
        for _ in range(MAX_VARINT_BYTES):
            b = self.byte(what)
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ArchiveError(f"the archive's {what} is not a valid number; the archive is corrupt")

    def blob(self, what: str) -> bytes:
        n = self.varint(what + " length")
        return self.take(n, what)
