# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""The bbans archive format: compact, little-endian, no pickle, parsed defensively.

Layout (``varint`` = unsigned LEB128, at most 10 bytes)::

    magic            4 bytes   b"BBAN"
    version          1 byte    FORMAT_VERSION
    method           1 byte    0 stored, 1 bits-back, 2 deflate (raw), 3 lzma (raw LZMA2), 4 bz2,
                               5 bits-back-is (Monte-Carlo bits-back with importance-sampled particles),
                               8 jpegxl, 9 webp (lossless image codecs, container/image_codecs.py);
                               6 and 7 name the multi-chunk and collection layouts (chunked.py, collection.py)
    dtype            1 byte    1 = uint8
    ndim             1 byte    1..32, then ndim varints: the whole array's shape (N, *item shape)
    data crc32       4 bytes   zlib.crc32 of the original data bytes in C order, uint32 LE
    extra            varint length + bytes (opaque, e.g. the CLI's container info)
    -- bits-back and bits-back-is, version 1 (random seed; written with ``--format-version 1``, and where a random
       seed codes smaller than the data seed: see container/choice.py ``bits_back_archive``) --
    model name       varint length + UTF-8
    model sha256     32 bytes
    coder settings   varint length + compact JSON object (sorted keys)
    schedule         varint run count, then per run (varint size, varint repeat) for bits-back, or
                     (varint size, varint particles, varint repeat) for bits-back-is
    seed words       varint
    prefix words     varint  (untouched seed words stripped from the stack bottom)
    particles        varint  (bits-back-is only: the most particles a batch may use, >= 2)
    payload          varint word count + uint32 LE words (the ANS stack above the prefix, bottom first)
    -- bits-back and bits-back-is, version 2 (data seed, bitsback/chain.py) --
    model name       varint length + UTF-8
    model sha256     8 bytes: its first 8 bytes (the model is found by name and this prefix)
    settings digest  4 bytes, uint32 LE: bitsback/protocol.py ``variant_digest`` of the model's coder settings and
                     the coding variant it coded with (e.g. wider latent bins)
    ramp             4 varints: start bits, net bits, pop bits, batch size (bitsback/schedule.py ``Ramp``: the
                     rule that sizes the bits-back batches after the seed items)
    seed items       varint  (the first items, coded under p(x | z = 0) without bits back)
    particles        varint  (bits-back-is only)
    payload          varint word count + uint32 LE words (the whole ANS stack, bottom first)
    -- bits-back and bits-back-is, version 3 (data seed; version 2 made shorter for small inputs) --
    model sha256     6 bytes: its first 6 bytes (the model is found by this prefix alone: no name is stored)
    settings digest  2 bytes, uint16 LE: the low 16 bits of version 2's digest
    ramp             4 varints, as in version 2
    seed items       varint
    particles        varint  (bits-back-is only)
    payload          every byte up to the archive crc32: the whole ANS stack as uint32 LE words, bottom first, the
                     last (top) word without its high zero bytes (so the payload never ends in a zero byte)
    -- other methods --
    payload          varint length + bytes
    -- all --
    archive crc32    4 bytes   zlib.crc32 of every byte before it, uint32 LE

The version byte is the oldest format that reads the archive: classical archives keep version 1 (their layout never
changed), bits-back archives with a data seed are version 3 (version 2 with ``--format-version 2``). Version 3 saves
~25 bytes per archive over version 2 (the model name, 6 bytes of sha256 and digest, the payload's length and the top
word's zero bytes), about 1.3% of 100 binarized MNIST digits; docs/design.md, "Versioning". ``unpack`` checks the
trailing CRC before anything else, then every length against the bytes that remain.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArchiveError
from .binary import Reader, blob, varint
from ..bitsback.schedule import MAX_SEED_WORDS

MAGIC = b"BBAN"
FORMAT_VERSION = 3  # the newest layout this bbans reads and writes
DATA_SEED_VERSIONS = (2, 3)  # the layouts of data-seeded bits-back archives
SHA_PREFIX_BYTES = {2: 8, 3: 6}  # how much of the model's sha256 each layout stores
DIGEST_BYTES = {2: 4, 3: 2}  # and how much of the settings digest (its low bytes)
METHODS = {"stored": 0, "bits-back": 1, "deflate": 2, "lzma": 3, "bz2": 4, "bits-back-is": 5, "jpegxl": 8, "webp": 9}
BITS_BACK_METHODS = ("bits-back", "bits-back-is")  # methods whose payload is an ANS stack coded with a model
MAX_PARTICLES = 4096
_METHOD_NAMES = {v: k for k, v in METHODS.items()}
CHUNKED_METHOD_ID = 6  # a multi-chunk archive (chunked.py): chunk archives + index, not one payload
DTYPES = {"uint8": 1}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_ELEMENTS = 2 ** 40
MAX_NDIM = 32


@dataclass
class ArchiveHeader:
    """Everything an archive says about itself, without decoding it. Sizes in bytes unless named otherwise."""

    method: str
    shape: tuple
    data_crc32: int
    dtype: str = "uint8"
    extra: bytes = b""
    version: int = 1  # layout: 1, or 2 and 3 for data-seeded bits-back (see the module docstring)
    model_name: str | None = None  # versions 1 and 2 (version 3 finds the model by its sha256 prefix alone)
    model_sha256: str | None = None  # hex: all 64 digits (version 1), the first 16 (version 2) or 12 (version 3)
    coder_settings: dict | None = None  # version 1: the settings; versions 2, 3: given when writing, not stored
    settings_digest: int | None = None  # versions 2, 3: protocol.variant_digest of the settings and coding variant
    #                                     (all 32 bits when writing; read back, its low ``digest_bits``)
    seed_items: int | None = None  # versions 2, 3: items coded under p(x | z = 0) first
    ramp: tuple | None = None  # versions 2, 3: (start bits, net bits, pop bits, batch size) of schedule.Ramp
    schedule: list = field(default_factory=list)  # (items, particles, repeat) runs (bitsback/schedule.py)
    particles: int = 1  # bits-back-is: the most particles a batch may use
    seed_words: int = 0
    prefix_words: int = 0
    payload_bytes: int = 0
    archive_bytes: int = 0

    @property
    def digest_bits(self) -> int:
        """How many low bits of the settings digest the layout stores (0 for layout 1, which stores the settings)."""
        return 8 * DIGEST_BYTES.get(self.version, 0)

    @property
    def n_items(self) -> int:
        return int(self.shape[0])

    @property
    def max_chain_items(self) -> int:
        """The most items the bits-back chain can have: ``n_items``, or for (N, H, W, C) images coded as tiles (whose
        tile size only the model knows; bbans.container.tiles) N*H*W, one tile per pixel at most. The decoder checks
        the exact count once it has the model."""
        return int(np.prod(self.shape[:3], dtype=np.int64)) if len(self.shape) == 4 else self.n_items

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def settings_json(settings: dict) -> bytes:
    """Canonical compact JSON of a model's coder settings (what the archive stores and what decoders compare)."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- writing


def _words_le(words: np.ndarray) -> bytes:
    return np.ascontiguousarray(words, dtype="<u4").tobytes()


def pack(h: ArchiveHeader, payload) -> bytes:
    """Serialize header ``h`` and ``payload`` (uint32 words for bits-back, bytes otherwise) into an archive."""
    if len(h.shape) < 1 or len(h.shape) > MAX_NDIM:
        raise ValueError(f"arrays of 1..{MAX_NDIM} dimensions only")
    seeded = h.method in BITS_BACK_METHODS and h.version in DATA_SEED_VERSIONS  # a data-seeded layout, 2 or 3
    if not seeded and h.version != 1:
        raise ValueError("layout versions 2 and 3 exist for bits-back methods only")
    out = bytearray(MAGIC)
    out += bytes([h.version, METHODS[h.method], DTYPES[h.dtype], len(h.shape)])
    for d in h.shape:
        out += varint(int(d))
    out += (h.data_crc32 & 0xFFFFFFFF).to_bytes(4, "little")
    out += blob(bytes(h.extra))
    if h.method in BITS_BACK_METHODS:
        if h.version != 3:
            out += blob(h.model_name.encode("utf-8"))
        sha = bytes.fromhex(h.model_sha256)
        if len(sha) != 32 and not (seeded and len(sha) == SHA_PREFIX_BYTES[h.version]):
            raise ValueError("model sha256 must be 32 bytes (64 hex digits)")
        if seeded:
            if h.seed_items is None or h.settings_digest is None or h.ramp is None:
                raise ValueError(f"a version-{h.version} archive needs a settings digest, a ramp and a seed item count")
            n_digest = DIGEST_BYTES[h.version]
            out += sha[:SHA_PREFIX_BYTES[h.version]]
            out += (h.settings_digest & ((1 << 8 * n_digest) - 1)).to_bytes(n_digest, "little")
            out += b"".join(varint(int(v)) for v in h.ramp)
        else:
            out += sha + blob(settings_json(h.coder_settings or {}))
            out += varint(len(h.schedule))
            for items, particles, repeat in h.schedule:  # bits-back stores (items, repeat): its particles are all 1
                if h.method == "bits-back" and particles != 1:
                    raise ValueError("a bits-back schedule has one particle per batch; use method bits-back-is")
                run = (items, particles, repeat) if h.method == "bits-back-is" else (items, repeat)
                out += b"".join(varint(int(v)) for v in run)
        out += varint(h.seed_items) if seeded else varint(h.seed_words) + varint(h.prefix_words)
        if h.method == "bits-back-is":
            out += varint(h.particles)
        words = np.asarray(payload, np.uint32)
        if h.version == 3:
            if words.size and words[-1] == 0:
                raise ValueError("a layout-3 payload must end in a non-zero word (an ANS stack's top)")
            out += _words_le(words).rstrip(b"\0")  # only the top word's high bytes: it is non-zero
        else:
            out += varint(words.size) + _words_le(words)
    else:
        out += blob(bytes(payload))
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


# ---------------------------------------------------------------- reading


def check_magic_and_version(blob: bytes) -> None:
    if len(blob) < 5 or blob[:4] != MAGIC:
        raise ArchiveError("this is not a bbans archive (wrong magic bytes); check the file name")
    if blob[4] > FORMAT_VERSION:
        raise ArchiveError(
            f"this archive uses format version {blob[4]} but this bbans reads up to {FORMAT_VERSION}; upgrade bbans"
        )
    if blob[4] < 1:
        raise ArchiveError(f"this archive claims format version {blob[4]}, which never existed; the archive is corrupt")


def read_dtype_and_shape(r: Reader) -> tuple[str, tuple]:
    """Read the dtype byte, the dimension count and the shape varints, refusing unknown types and more than
    MAX_NDIM dimensions or MAX_ELEMENTS values (shared by single and chunked archives)."""
    dcode = r.byte("dtype")
    if dcode not in _DTYPE_NAMES:
        raise ArchiveError(f"the archive names unknown data type {dcode}; the archive is corrupt or newer than bbans")
    ndim = r.byte("number of dimensions")
    if not 1 <= ndim <= MAX_NDIM:
        raise ArchiveError(f"the archive claims {ndim} dimensions (1..{MAX_NDIM} allowed); the archive is corrupt")
    shape, count = [], 1
    for _ in range(ndim):
        d = r.varint("shape")
        shape.append(d)
        count *= d
        if d > MAX_ELEMENTS or count > MAX_ELEMENTS:
            raise ArchiveError(f"the archive claims more than 2^40 values ({shape}); the archive is corrupt")
    return _DTYPE_NAMES[dcode], tuple(shape)


def _parse(blob: bytes) -> tuple[ArchiveHeader, Reader, int]:
    """Parse the header; returns it, the reader positioned at the payload, and the payload's length."""
    blob = bytes(blob)
    check_magic_and_version(blob)
    if len(blob) > 5 and blob[5] == CHUNKED_METHOD_ID:
        raise ArchiveError("this is a multi-chunk archive: decode it with bbans.decompress or 'bbans decompress', "
                           "read its header with bbans.open(path).header")
    if len(blob) < 4 + 4 + 4:
        raise ArchiveError("the archive is truncated (shorter than any header); get a complete copy")
    body, stored_crc = blob[:-4], int.from_bytes(blob[-4:], "little")
    if zlib.crc32(body) != stored_crc:
        raise ArchiveError("the archive fails its checksum: it is truncated or corrupt; get a fresh copy")
    r = Reader(body, 5)
    code = r.byte("method")
    if code not in _METHOD_NAMES:
        raise ArchiveError(
            f"the archive names unknown coding method {code}; the archive is corrupt or newer than this bbans"
        )
    method = _METHOD_NAMES[code]
    dtype, shape = read_dtype_and_shape(r)
    crc = int.from_bytes(r.take(4, "data checksum"), "little")
    h = ArchiveHeader(method=method, shape=shape, data_crc32=crc, dtype=dtype, version=blob[4],
                      archive_bytes=len(blob))
    h.extra = r.blob("extra field")
    if method in BITS_BACK_METHODS:
        if h.version != 3:
            try:
                h.model_name = r.blob("model name").decode("utf-8")
            except UnicodeDecodeError:
                raise ArchiveError("the archive's model name is not UTF-8; the archive is corrupt") from None
        if h.version in DATA_SEED_VERSIONS:
            h.model_sha256 = r.take(SHA_PREFIX_BYTES[h.version], "model sha256").hex()
            h.settings_digest = int.from_bytes(r.take(DIGEST_BYTES[h.version], "coder settings digest"), "little")
            h.ramp = tuple(r.varint("batch ramp") for _ in range(4))
            if h.ramp[2] < 1 or h.ramp[3] < 1:
                raise ArchiveError("the archive's batch ramp has a zero pop cost or batch size; the archive is corrupt")
        else:
            h.model_sha256 = r.take(32, "model sha256").hex()
            h.coder_settings = _settings(r.blob("coder settings"))
            n_runs, width = r.varint("schedule length"), (3 if method == "bits-back-is" else 2)
            if width * n_runs > r.left:
                raise ArchiveError("the archive's batch schedule is longer than the archive; the archive is corrupt")
            runs = [tuple(r.varint("schedule") for _ in range(width)) for _ in range(n_runs)]
            h.schedule = runs if width == 3 else [(items, 1, repeat) for items, repeat in runs]
        if h.version in DATA_SEED_VERSIONS:
            h.seed_items = r.varint("seed item count")
            if h.seed_items > h.max_chain_items:
                raise ArchiveError(f"the archive claims {h.seed_items} seed items of at most {h.max_chain_items}; "
                                   "the archive is corrupt")
        else:
            h.seed_words, h.prefix_words = r.varint("seed length"), r.varint("seed prefix length")
        if h.seed_words > MAX_SEED_WORDS:
            raise ArchiveError(f"the archive asks for {h.seed_words} seed words, more than any bbans writes; "
                               "the archive is corrupt")
        if h.prefix_words > h.seed_words:
            raise ArchiveError("the archive strips more seed words than it seeded; the archive is corrupt")
        if method == "bits-back-is":
            h.particles = r.varint("particle count")
            if not 2 <= h.particles <= MAX_PARTICLES:
                raise ArchiveError(f"the archive claims {h.particles} particles (2..{MAX_PARTICLES} allowed); "
                                   "the archive is corrupt")
        if h.version == 3:  # the payload is every byte left, its top word's high zero bytes not stored
            if r.left and body[-1] == 0:
                raise ArchiveError("the archive's coded stream ends in a zero byte, which no encoder writes; the "
                                   "archive is corrupt")
            h.payload_bytes = r.left
            return h, r, h.payload_bytes
        n_words = r.varint("payload length")
        if 4 * n_words > r.left:
            raise ArchiveError(
                f"the archive claims {4 * n_words} payload bytes but {r.left} remain; it is truncated or corrupt"
            )
        h.payload_bytes = 4 * n_words
    else:
        h.payload_bytes = r.varint("payload length")
        if h.payload_bytes > r.left:
            raise ArchiveError(
                f"the archive claims {h.payload_bytes} payload bytes but {r.left} remain; it is truncated or corrupt"
            )
    if h.payload_bytes != r.left:
        raise ArchiveError(
            f"the archive has {r.left - h.payload_bytes} unexpected bytes after its payload; the archive is corrupt"
        )
    return h, r, h.payload_bytes


def _settings(raw: bytes) -> dict:
    """A version-1 archive's coder settings JSON, checked to be an object."""
    try:
        settings = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ArchiveError("the archive's coder settings are not valid JSON; the archive is corrupt") from None
    if not isinstance(settings, dict):
        raise ArchiveError("the archive's coder settings are not a JSON object; the archive is corrupt")
    return settings


def read_header(blob: bytes) -> ArchiveHeader:
    """Parse and check an archive's header (and its trailing CRC) without decoding the payload."""
    return _parse(blob)[0]


def unpack(blob: bytes):
    """Parse an archive into (ArchiveHeader, payload): uint32 words (native order) for bits-back, else bytes."""
    h, r, n = _parse(blob)
    raw = r.take(n, "payload")
    if h.method in BITS_BACK_METHODS:
        raw += b"\0" * (-len(raw) % 4)  # layout 3: the top word's high zero bytes
        words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)  # native byte order on any host
        return h, words
    return h, raw
