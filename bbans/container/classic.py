# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Classical fallback codecs for data no model fits: raw deflate, raw LZMA2, bzip2, or stored bytes.

Payloads carry no container headers of their own (the archive records the method and the original size), and
decompression is bounded by the size the archive declares, so a damaged payload cannot blow up memory.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import time
import zlib

import numpy as np

from ..errors import ArchiveError

METHODS = ("deflate", "lzma", "bz2", "stored")


def _lzma_filters(size: int) -> list:
    """Raw LZMA2 filters; the dictionary is the data size rounded up to a power of two (4 KiB..64 MiB), so the
    decoder derives the same filters from the size the archive records. The preset (9, extreme: as xz -9e) only
    steers the encoder's search; decoding never depends on it, so archives written with another preset (before
    2026-12-04 inputs over 1 MiB used plain 9) decode the same."""
    dict_size = min(2 ** 26, max(2 ** 12, 1 << max(0, size - 1).bit_length()))
    return [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": dict_size}]


def compress(method: str, raw: bytes) -> bytes:
    """Compress ``raw`` with ``method`` (one of METHODS)."""
    if method == "stored":
        return bytes(raw)
    if method == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
        return c.compress(raw) + c.flush()
    if method == "lzma":
        return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(raw)))
    if method == "bz2":
        return bz2.compress(raw, 9)
    raise ValueError(f"unknown classical method {method!r}")


def decompress(method: str, payload: bytes, size: int) -> bytes:
    """Inverse of ``compress``; ``size`` is the byte count the archive declares. Raises ArchiveError on damage."""
    try:
        if method == "stored":
            out, complete = bytes(payload), True
        elif method == "deflate":
            if size > 1032 * len(payload) + 64:  # deflate never expands data more than 1032-fold
                raise ArchiveError(f"the archive declares {size} bytes from a {len(payload)}-byte deflate payload, "
                                   "more than deflate can hold; the archive is corrupt")
            d = zlib.decompressobj(-15)
            out = d.decompress(payload, size + 1)
            complete = d.eof and not d.unused_data and not d.unconsumed_tail
        elif method == "lzma":
            d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_lzma_filters(size))
            out = d.decompress(payload, max_length=size + 1)
            complete = d.eof and not d.unused_data
        elif method == "bz2":
            d = bz2.BZ2Decompressor()
            out = d.decompress(payload, max_length=size + 1)
            complete = d.eof and not d.unused_data
        else:
            raise ArchiveError(f"unknown method {method!r}; the archive is corrupt")
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"the {method} payload is damaged ({exc}); the archive is corrupt") from None
    if len(out) != size or not complete:
        raise ArchiveError(
            f"the {method} payload decodes to {len(out)} bytes where the archive declares {size}; "
            "the archive is corrupt"
        )
    return out


# The classical tools at their strongest settings, for comparisons (eval, benchmarks); not archive methods.
# (name, compress, decompress), each writing the tool's own file format (container headers included).
REFERENCE_CODECS = (
    ("gzip -9", lambda b: gzip.compress(b, 9, mtime=0), gzip.decompress),
    ("bz2 -9", lambda b: bz2.compress(b, 9), bz2.decompress),
    ("xz -9e", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
)
BENCH_EXTRA_HINT = "install the benchmark extras with: pip install -e .[bench]"


def optional_reference_codecs() -> tuple:
    """zstd -19 and brotli -11 (window 2^24, its largest) in the REFERENCE_CODECS form; they need the packages
    ``zstandard`` and ``brotli`` (the ``bench`` extra). Raises ImportError naming the install command if missing."""
    try:
        import brotli
        import zstandard
    except ImportError as exc:
        raise ImportError(f"the Python package {exc.name!r} is missing; {BENCH_EXTRA_HINT}") from None
    return (
        ("zstd -19", lambda b: zstandard.ZstdCompressor(level=19, write_checksum=True).compress(b),
         lambda b: zstandard.ZstdDecompressor().decompress(b)),
        ("brotli -11", lambda b: brotli.compress(b, quality=11, lgwin=24), brotli.decompress),
    )


def reference_input(data: np.ndarray) -> tuple[bytes, str]:
    """The bytes classical tools get for ``data``: binary (0/1) data packed 8 values per byte, else the raw
    bytes; with a short description."""
    if data.size and int(data.max()) <= 1:
        return np.packbits(data.reshape(-1)).tobytes(), "binary data packed 8 values per byte"
    return data.tobytes(), "raw bytes"


def reference_sizes(raw: bytes) -> list[tuple[str, int, float]]:
    """(name, compressed bytes, seconds) of ``raw`` under each of ``REFERENCE_CODECS``."""
    out = []
    for name, fn, _ in REFERENCE_CODECS:
        t = time.perf_counter()
        out.append((name, len(fn(raw)), time.perf_counter() - t))
    return out
