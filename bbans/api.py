"""Public API: ``compress`` / ``decompress`` uint8 arrays of items (N, *item_shape) into bbans archives.

``method="auto"`` codes with bits-back under ``model`` (or the installed model that fits the data) and falls back
to the smallest classical codec (deflate, lzma, bz2, stored) when no model fits or when the classical archive is
smaller, so an archive is never larger than the raw data plus a small header.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from .container import archive

from .bitsback import chain

from .container import chunked

from .container import classic

from .bitsback import importance

from .container import registry
from .errors import ArchiveError, BBANSError, InputError, ModelError
from .bitsback.protocol import model_fits

METHODS = ("auto", "bits-back", *classic.METHODS)
FALLBACK_PROBE_BYTES = 64 * 1024  # in "auto", classical codecs are tried too when the raw data is at most this big


@dataclass
class CompressReport:
    """What ``compress`` did. Sizes in bytes, rates in bits; ``initial_bits`` is the bits-back seed overhead."""

    method: str
    reason: str
    n_items: int
    raw_bytes: int
    archive_bytes: int
    payload_bits: int
    initial_bits: int = 0  # seed bits consumed by the first pops and stored in the payload (bits-back only)
    model_name: str | None = None
    model_sha256: str | None = None
    schedule: list = field(default_factory=list)  # (batch size, repeat) pairs (bits-back only)
    seconds: float = 0.0

    @property
    def bits_per_dim(self) -> float:
        """Whole-archive rate in bits per data value (per pixel)."""
        return 8.0 * self.archive_bytes / self.raw_bytes if self.raw_bytes else float("nan")


def _as_data(data) -> np.ndarray:
    """Check and normalize input to a C-contiguous uint8 array (N, *item_shape)."""
    if not isinstance(data, np.ndarray):
        raise InputError(f"compress takes a numpy array, got {type(data).__name__}; convert it with numpy.asarray")
    if data.dtype != np.uint8:
        raise InputError(f"bbans codes uint8 arrays, got {data.dtype}; convert with data.astype(numpy.uint8)")
    if not 1 <= data.ndim <= archive.MAX_NDIM:
        raise InputError(f"give an array of items shaped (N, ...), 1..{archive.MAX_NDIM} dimensions; got {data.ndim}")
    return np.ascontiguousarray(data)


def _crc(data: np.ndarray) -> int:
    return zlib.crc32(memoryview(data).cast("B")) if data.size else 0


def _misfit(model, data) -> str:
    lo, hi = model.value_range
    got = f"values {int(data.min())}..{int(data.max())}" if data.size else "no values"
    return (f"model {model.name!r} codes items of shape {tuple(model.data_shape)} with values {lo}..{hi}, but the "
            f"data has items of shape {tuple(data.shape[1:])} and {got}; pick another model or a classical method")


def _classic_archive(data: np.ndarray, method: str, extra: bytes) -> tuple[bytes, int]:
    payload = classic.compress(method, data.tobytes())
    h = archive.ArchiveHeader(method=method, shape=data.shape, data_crc32=_crc(data), extra=extra)
    return archive.pack(h, payload), 8 * len(payload)


def _best_classic(data: np.ndarray, extra: bytes) -> tuple[bytes, str, int]:
    """The smallest classical archive: (blob, method, payload bits)."""
    best = None
    for m in classic.METHODS:
        blob, bits = _classic_archive(data, m, extra)
        if best is None or len(blob) < len(best[0]):
            best = (blob, m, bits)
    return best


def _bits_back_archive(data, model, extra, batch_size, progress, particles=1) -> tuple[bytes, chain.Encoded]:
    sha = str(model.sha256).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"model {model.name!r} has no valid sha256 ({model.sha256!r}); its weights are not final")
    try:
        archive.settings_json(dict(model.coder_settings))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {model.name!r} has coder settings that are not plain JSON ({exc})") from None
    if particles > 1:
        try:
            importance.check_model(model)
        except BBANSError as exc:
            raise ModelError(str(exc)) from None
    enc = chain.encode(model, data, batch_size, progress, particles=particles)
    if len(data) > chain.MAX_ITEMS_PER_BIT * 32 * enc.payload.size + 64:  # the decoder would refuse this archive
        raise ModelError(f"model {model.name!r} codes these {len(data)} items in under one bit each, which "
                         "bbans decoders refuse as implausible; use a classical method")
    h = archive.ArchiveHeader(
        method="bits-back-is" if particles > 1 else "bits-back", particles=particles, shape=data.shape,
        data_crc32=_crc(data), extra=extra, model_name=str(model.name),
        model_sha256=sha, coder_settings=dict(model.coder_settings), schedule=enc.schedule,
        seed_words=enc.seed_words, prefix_words=enc.prefix_words,
    )
    return archive.pack(h, enc.payload), enc


def compress_with_report(data: np.ndarray, model=None, *, batch_size: int = 100, extra: bytes = b"",
                         method: str = "auto", progress=None, particles: int = 1) -> tuple[bytes, CompressReport]:
    """Compress ``data`` (uint8, (N, *item_shape), any memory layout) into an archive; also say what was done.

    ``model``: a coding model (bbans/protocol.py), or None to use the installed model that fits the data.
    ``batch_size``: largest number of items per model call. ``extra``: opaque bytes stored in the archive.
    ``method``: "auto", "bits-back", "deflate", "lzma", "bz2" or "stored". ``progress(done_items, total_items)``.
    ``particles``: K >= 2 codes with Monte-Carlo bits-back (bbans/importance.py, archive method "bits-back-is"),
    which costs the K-sample importance-weighted bound instead of the -ELBO, at about K times the model work.
    """
    t0 = time.perf_counter()
    data = _as_data(data)
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(particles, bool) or not isinstance(particles, (int, np.integer)) or not (
            1 <= particles <= archive.MAX_PARTICLES):
        raise InputError(f"particles must be an integer in 1..{archive.MAX_PARTICLES}, got {particles!r}")
    if particles > 1 and method in classic.METHODS:
        raise InputError(f"particles apply to bits-back coding, not to the classical method {method!r}")
    extra, n = bytes(extra), len(data)
    if data.size > chunked.MAX_CHUNK_ELEMENTS:
        raise InputError(f"{data.size:,} values are more than one archive piece holds ({chunked.MAX_CHUNK_ELEMENTS:,});"
                         " code them in chunks with bbans.chunkjobs.compress_to (what 'bbans compress' does)")

    def report(blob, m, reason, payload_bits, enc=None, used=None):
        r = CompressReport(m, reason, n, data.nbytes, len(blob), payload_bits, seconds=time.perf_counter() - t0)
        if enc is not None:
            r.initial_bits, r.schedule = enc.initial_bits, enc.schedule
            r.model_name, r.model_sha256 = str(used.name), str(used.sha256)
        if progress is not None and m not in archive.BITS_BACK_METHODS:
            progress(n, n)
        return blob, r

    if method in classic.METHODS:
        blob, bits = _classic_archive(data, method, extra)
        return report(blob, method, f"{method} was requested", bits)
    if model is not None and not model_fits(model, data):
        raise ModelError(_misfit(model, data))
    used, why_not = model, None
    if used is None:
        try:
            used = registry.default_model_for(data)
        except ModelError as exc:  # the fitting installed model failed to load (e.g. missing weights)
            if method == "bits-back":
                raise
            why_not = f"the installed model for this data failed to load ({exc})"
    if used is None:
        why_not = why_not or f"no installed model fits items of shape {tuple(data.shape[1:])}"
        if method == "bits-back":
            raise ModelError(f"{why_not}; pass a model or use a classical method (e.g. lzma)")
        blob, m, bits = _best_classic(data, extra)
        return report(blob, m, f"{why_not}; {m} was the smallest classical method", bits)
    try:
        blob, enc = _bits_back_archive(data, used, extra, int(batch_size), progress, int(particles))
    except ModelError as exc:
        if model is not None or method == "bits-back":
            raise
        blob, m, bits = _best_classic(data, extra)  # an installed model we picked ourselves is unusable
        return report(blob, m, f"the installed model {used.name!r} is unusable ({exc}); used {m}", bits)
    bits, why = 32 * enc.payload.size, ("bits-back was requested" if method == "bits-back"
                                        else f"model {used.name!r} fits the data")
    if method == "auto" and (data.nbytes <= FALLBACK_PROBE_BYTES or len(blob) > data.nbytes):
        fb, m, fb_bits = _best_classic(data, extra)
        if len(fb) < len(blob):
            reason = f"{m} ({len(fb)} bytes) is smaller than bits-back with {used.name!r} ({len(blob)} bytes)"
            return report(fb, m, reason, fb_bits)
        why += f"; bits-back ({len(blob)} bytes) beat the best classical method, {m} ({len(fb)} bytes)"
    if particles > 1:
        why += f"; Monte-Carlo bits-back with up to {particles} particles per item"
    return report(blob, "bits-back-is" if particles > 1 else "bits-back", why, bits, enc, used)


def compress(data: np.ndarray, model=None, *, batch_size: int = 100, extra: bytes = b"", method: str = "auto",
             progress=None, particles: int = 1) -> bytes:
    """Compress ``data`` (uint8, (N, *item_shape)) into archive bytes; see ``compress_with_report``."""
    return compress_with_report(data, model, batch_size=batch_size, extra=extra, method=method,
                                progress=progress, particles=particles)[0]


def _check_model(model, h: archive.ArchiveHeader) -> None:
    """ModelError unless ``model`` is the one the archive was made with (sha256 and coder settings)."""
    if str(model.sha256).lower() != h.model_sha256:
        raise ModelError(
            f"the archive was made with model {h.model_name!r} (sha256 {h.model_sha256[:12]}…), but the model given "
            f"is {model.name!r} (sha256 {str(model.sha256)[:12]}…); pass the matching model or install it"
        )
    if archive.settings_json(dict(model.coder_settings)) != archive.settings_json(h.coder_settings):
        raise ModelError(
            f"the archive was coded with settings {h.coder_settings} but model {model.name!r} uses "
            f"{dict(model.coder_settings)}; use the bbans version and model build that made the archive"
        )
    if tuple(model.data_shape) != tuple(h.shape[1:]):
        raise ArchiveError(
            f"the archive holds items of shape {tuple(h.shape[1:])} but its model codes {tuple(model.data_shape)}; "
            "the archive is corrupt"
        )


def _decode(h: archive.ArchiveHeader, payload, model, progress) -> np.ndarray:
    if h.n_elements > chunked.MAX_CHUNK_ELEMENTS:  # bbans writes bigger data as chunked archives
        raise ArchiveError(f"the archive claims {h.n_elements:,} values in one piece, more than bbans codes without "
                           f"chunks ({chunked.MAX_CHUNK_ELEMENTS:,}); the archive is corrupt")
    if h.method not in archive.BITS_BACK_METHODS:
        raw = classic.decompress(h.method, payload, h.n_elements)
        if progress is not None:
            progress(h.n_items, h.n_items)
        return np.frombuffer(raw, np.uint8).reshape(h.shape).copy()
    if model is None:
        model = registry.find_model(h.model_name, h.model_sha256)
    _check_model(model, h)
    enc = chain.Encoded(payload, h.seed_words, h.prefix_words, h.schedule, h.particles)
    return chain.decode(model, enc, h.n_items, progress)


def decompress(blob: bytes, model=None, *, progress=None) -> np.ndarray:
    """Decode an archive into the original uint8 array; the model is found by name + sha256 when not given.

    Raises ArchiveError for any damage (checked by the archive's CRC, the decoder's seed check and the data CRC),
    ModelError when the archive's model is missing or differs from the one given.
    """
    if chunked.is_chunked(bytes(blob[:6])):
        from .container.pipeline import decompress_bytes

        return decompress_bytes(blob, model)
    h, payload = archive.unpack(blob)
    try:
        data = _decode(h, payload, model, progress)
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
            f"decoding failed ({type(exc).__name__}: {exc}); the archive is corrupt or its model misbehaves"
        ) from None
    if _crc(data) != h.data_crc32:
        raise ArchiveError(
            "the decoded data fails its checksum; the archive is corrupt or the model computes differently on this "
            "machine (see DESIGN.md §4)"
        )
    return data
