"""Hostile-archive fuzzing shared by tests/test_hostile.py (bounded, hypothesis) and tests/fuzz/run_fuzz.py (long).

A *corpus* of small valid archives (single and multi-chunk; bits-back with toy or shipped models, and every
classical method) is mutated: truncated, bit-flipped, bytes overwritten, header fields replaced by huge or odd
numbers, spliced with another archive, extended. Most mutations then *repair the checksums* (each chunk's trailing
CRC, a chunked archive's prologue and index CRCs, recomputed after the damage) so that the parser and the decoders
behind the CRCs are exercised, not only the CRC check.

``run_case`` decodes one mutated archive and classifies the outcome:

- ``clean``: a bbans error (BBANSError: ArchiveError, ModelError, InputError) - the only acceptable failure;
- ``same``: decoded to exactly the original data (harmless damage, e.g. in an opaque field the checksums allow);
- ``wrong``: decoded without error to different data - silent corruption, a defect;
- ``crash``: any other exception - a defect;
- ``hang``: ran past the per-case time limit - a defect.
"""
from __future__ import annotations

import io
import signal
import zlib
from dataclasses import dataclass

import numpy as np

import bbans
from bbans.container import archive
from bbans.container import chunked
from bbans.container import pipeline
from bbans.container.binary import varint
from bbans.errors import BBANSError
from toy_models import ToyBinary

OUTCOMES = ("clean", "same", "wrong", "crash", "hang")


@dataclass
class Sample:
    name: str
    blob: bytes
    data: np.ndarray
    model: object  # passed to decompress (None: found in the registry by name + sha256)


def field_data(n, shape=(4, 4), seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.uniform(size=(n, 1, 1)) < 0.5) ^ (rng.uniform(size=(n, *shape)) < 0.1)).astype(np.uint8)


def toy_corpus() -> list[Sample]:
    """Small archives needing no shipped model: toy bits-back, each classical method, multi-chunk archives."""
    toy = ToyBinary((4, 4))
    bits = field_data(7)
    grey = np.arange(3 * 5 * 5, dtype=np.uint8).reshape(3, 5, 5) * 3
    out = [Sample("toy bits-back", bbans.compress(bits, toy, method="bits-back", batch_size=3), bits, toy)]
    for m in ("deflate", "lzma", "bz2", "stored"):
        out.append(Sample(m, bbans.compress(grey, method=m), grey, None))
    blob, _ = bbans.compress_with_report(bits, toy, chunk_items=3, method="bits-back")
    out.append(Sample("chunked toy bits-back", blob, bits, toy))
    raw = np.frombuffer(b"the quick brown fox jumps over the lazy dog " * 6, np.uint8).copy()
    blob, _ = bbans.compress_with_report(raw, None, chunk_items=100)
    out.append(Sample("chunked raw bytes", blob, raw, None))
    rgb = np.stack([np.add.outer(np.arange(36), 3 * np.arange(40)) % 256] * 3, axis=-1).astype(np.uint8)
    rgb = rgb[None] ^ np.random.default_rng(0).integers(0, 8, (2, 36, 40, 3), np.uint8)
    for m in ("jpegxl", "webp"):  # the lossless image codecs (bbans/container/image_codecs.py)
        out.append(Sample(m, bbans.compress(rgb, method=m), rgb, None))
    return out


def shipped_corpus(samples_dir) -> list[Sample]:
    """Archives of 3 images with the shipped models (8-bit and binarized), single and two-chunk, and two RGB
    images with the photo model (20x70: two tiles; 2x350: six thin tiles, several of them in the data seed)."""
    out = []
    for fname in ("mnist-test-100.npy", "binarized-mnist-test-100.npy"):
        data = np.load(f"{samples_dir}/{fname}")[:3]
        out.append(Sample(f"shipped {fname}", bbans.compress(data, method="bits-back"), data, None))
        blob, _ = bbans.compress_with_report(data, None, chunk_items=2, method="bits-back")
        out.append(Sample(f"chunked shipped {fname}", blob, data, None))
    photo = np.load(f"{samples_dir}/../tests/archives/inputs/photo-1x20x70x3.npy")  # two 64x64 tiles, one edge
    out.append(Sample("shipped photo 20x70", bbans.compress(photo, method="bits-back"), photo, None))
    thin = np.ascontiguousarray(np.concatenate([photo[:, :2]] * 5, axis=2))  # 2x350: a data seed of several tiles
    out.append(Sample("shipped photo 2x350", bbans.compress(thin, method="bits-back"), thin, None))
    return out


# ------------------------------------------------------------------------------------------------ mutations


def refix_single(blob: bytes) -> bytes:
    """Recompute a single archive's trailing CRC."""
    if len(blob) < 4:
        return blob
    return blob[:-4] + zlib.crc32(blob[:-4]).to_bytes(4, "little")


def split_chunked(blob: bytes):
    """(prologue without its CRC, [chunk blobs], index without footer) of a valid chunked archive."""
    h = chunked.read_header_bytes(blob)
    start = h.offsets[0]
    chunks = [blob[o:o + n] for o, n in zip(h.offsets, h.lengths)]
    end = h.offsets[-1] + h.lengths[-1]
    return blob[:start - 4], chunks, blob[end:len(blob) - chunked.FOOTER_BYTES]


def join_chunked(pro: bytes, chunks, index: bytes, fix_lengths: bool = True) -> bytes:
    """Reassemble with fresh CRCs; ``fix_lengths`` rewrites the index's chunk lengths to the chunks given."""
    if fix_lengths:
        crc = index[-4:] if len(index) >= 4 else b"\0\0\0\0"
        index = varint(len(chunks)) + b"".join(varint(len(c)) for c in chunks) + crc
    return (pro + zlib.crc32(pro).to_bytes(4, "little") + b"".join(chunks) + index
            + len(index).to_bytes(4, "little") + zlib.crc32(index).to_bytes(4, "little") + chunked.FOOTER_MAGIC)


def _damage(rng, b: bytes, other: bytes) -> bytes:
    """One random byte-level mutation of ``b``."""
    b = bytearray(b)
    kind = rng.integers(0, 9)
    if not b:
        return bytes(rng.integers(0, 256, size=rng.integers(0, 16), dtype=np.uint8))
    if kind == 0:  # truncate
        return bytes(b[: rng.integers(0, len(b))])
    if kind == 1:  # flip 1..3 bits
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(0, 8 * len(b))
            b[i // 8] ^= 1 << (i % 8)
        return bytes(b)
    if kind == 2:  # overwrite 1..4 bytes
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
        return bytes(b)
    if kind == 3:  # a header field -> a huge or odd varint (shape, lengths, schedule, seed counts live up front)
        i = int(rng.integers(4, min(len(b), 80)))
        big = varint(int(rng.choice([0, 1, 2 ** 31, 10 ** 12, 2 ** 40, 2 ** 63 - 1, int(rng.integers(0, 1000))])))
        return bytes(b[:i] + big + b[i + int(rng.integers(0, 3)):])
    if kind == 4:  # insert random bytes
        i = rng.integers(0, len(b) + 1)
        return bytes(b[:i] + bytes(rng.integers(0, 256, size=rng.integers(1, 9), dtype=np.uint8)) + b[i:])
    if kind == 5:  # delete a run
        i = rng.integers(0, len(b))
        return bytes(b[:i] + b[i + rng.integers(1, 9):])
    if kind == 6:  # splice with another archive (never the other archive itself)
        i, j = rng.integers(0, len(b) + 1), rng.integers(0, len(other) + 1)
        spliced = bytes(b[:i] + other[j:])
        return spliced if spliced[:-4] != other[:-4] else bytes(b[:i])
    if kind == 7:  # append garbage
        return bytes(b) + bytes(rng.integers(0, 256, size=rng.integers(1, 33), dtype=np.uint8))
    b[rng.integers(0, len(b))] = rng.choice([0, 0x7F, 0x80, 0xFF])
    return bytes(b)


def mutate(rng, blob: bytes, other: bytes) -> bytes:
    """A damaged copy of ``blob``: byte damage, with the checksums repaired about 3 times in 4."""
    repair = rng.random() < 0.75
    if not chunked.is_chunked(blob[:6]):
        bad = _damage(rng, blob, other)
        return refix_single(bad) if repair else bad
    if not repair or rng.random() < 0.1:
        return _damage(rng, blob, other)
    pro, chunks, index = split_chunked(blob)
    part = rng.integers(0, 3)
    fix = True
    if part == 0:
        pro = _damage(rng, pro, other)
    elif part == 1:
        k = rng.integers(0, len(chunks))
        c = _damage(rng, chunks[k], other)
        chunks[k] = refix_single(c) if rng.random() < 0.8 else c
        if rng.random() < 0.1:  # drop or duplicate a chunk
            chunks = chunks[:k] + chunks[k + 1:] if rng.random() < 0.5 else chunks[:k + 1] + chunks[k:]
    else:
        index, fix = _damage(rng, index, other), False
    return join_chunked(pro, chunks, index, fix_lengths=fix)


# --------------------------------------------------------------------------------------------------- running


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_case(blob: bytes, sample: Sample, seconds: float = 10.0) -> tuple[str, str]:
    """Decode ``blob`` (a mutation of ``sample``); (outcome, detail). Uses SIGALRM for the time limit."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        out = bbans.decompress(blob, sample.model)
    except _Timeout:
        return "hang", f"over {seconds:g} s"
    except BBANSError as exc:
        return "clean", type(exc).__name__ + ": " + str(exc).splitlines()[0][:200]
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return "crash", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    same = isinstance(out, np.ndarray) and out.shape == sample.data.shape and np.array_equal(out, sample.data)
    return ("same", "") if same else ("wrong", f"decoded {getattr(out, 'shape', '?')} without error")


def chunked_header_of(blob: bytes):
    return chunked.read_index(io.BytesIO(blob))
