"""The IDX file format (MNIST's): big-endian header, then raw values.

Layout: two zero bytes, a type code (0x08 = uint8), the number of dimensions n, n big-endian uint32 sizes, then the
values in C order. Only uint8 IDX files are supported (all MNIST files are).
"""
from __future__ import annotations

import gzip

import numpy as np

from .errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
UINT8_CODE = 0x08


def is_idx(head: bytes) -> bool:
    """True when ``head`` (the first 4+ bytes of a file) starts like a uint8 IDX file."""
    return len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] == UINT8_CODE and 1 <= head[3] <= 8


def maybe_gunzip(raw: bytes) -> tuple[bytes, bool]:
    """Return (bytes, was_gzip): the decompressed content when ``raw`` is gzip, else ``raw`` unchanged."""
    if raw[:2] != GZIP_MAGIC:
        return raw, False
    try:
        return gzip.decompress(raw), True
    except (OSError, EOFError) as exc:
        raise InputError(f"the gzip stream is damaged ({exc}); check the file or gunzip it yourself") from exc


def parse_idx(raw: bytes) -> tuple[bytes, np.ndarray]:
    """Split an (uncompressed) uint8 IDX file into (header bytes, array of the declared shape)."""
    if not is_idx(raw):
        raise InputError("not a uint8 IDX file (expected 00 00 08 <ndim> at the start)")
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise InputError("the IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header_len], dtype=">u4"))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != header_len + count:
        raise InputError(
            f"the IDX header declares shape {shape} ({count} bytes) but the file holds {len(raw) - header_len} bytes"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)
    return raw[:header_len], data


def idx_header(shape: tuple) -> bytes:
    """The canonical IDX header for a uint8 array of ``shape``."""
    return bytes([0, 0, UINT8_CODE, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()
