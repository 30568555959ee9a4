# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Method and model choice, made once per chunk: which model codes a chunk's items, and whether bits-back with it
or a classical codec writes the smaller archive. Every chunk of every archive is coded by ``encode_chunk``.

``method``:
- ``"auto"``: bits-back with the given model, else the installed model that fits the items (the one with the
  narrowest value range, ``registry.default_model_for``); the smallest classical archive when no model fits, the
  model is unusable, or (for inputs of at most ``FALLBACK_PROBE_BYTES``, or when bits-back came out larger than the
  raw data) when the classical archive is smaller. So an archive is never larger than the raw data plus a header.
- ``"bits-back"``: always bits-back; an error when no model fits.
- a classical method (``classic.METHODS``, or an image codec of ``image_codecs.METHODS`` for images): that codec,
  no model. "auto" tries the image codecs too where they apply (``image_codecs.applicable``).

Sizes in bytes, rates in bits; ``elbo_bits`` / ``iwae_bits`` are the model's bounds summed over the chunk's items.
"""
from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..bitsback import chain, importance
from ..bitsback.bounds import plausible_item_count
from ..bitsback.protocol import Evaluable, LatentModel, exported, model_digest, model_fits, tile_size
from ..errors import BBANSError, InputError, ModelError
from . import archive, classic, image_codecs, registry, tiles

CLASSICAL = (*classic.METHODS, *image_codecs.METHODS)
METHODS = ("auto", "bits-back", *CLASSICAL)
FALLBACK_PROBE_BYTES = 64 * 1024  # in "auto", classical codecs are tried too when the raw data is at most this big
SAMPLE_ITEMS = 256  # larger chunks: items on which the model's -ELBO and the classical codecs are compared first
CLASSICAL_MARGIN = 0.02  # classical must beat the sampled -ELBO by this much to skip bits-back
CHECK_MARGIN = 0.25  # the model must beat the sampled classical rate by this much to skip the whole-chunk check
EVAL_BATCH = 500  # items per model call when computing -ELBO / IWAE bounds


class TooFewBits(ModelError):
    """Bits-back codes the items in under one bit each, which decoders refuse as implausible (a classical codec
    does better on such data anyway)."""


@dataclass
class CodedChunk:
    """One chunk's archive and what was decided for it."""

    blob: bytes
    method: str
    reason: str
    n_items: int
    raw_bytes: int
    payload_bits: int
    model_name: str | None = None  # the model that coded the chunk (bits-back methods only)
    model_sha256: str | None = None
    initial_bits: int = 0  # seed bits consumed by the first pops and stored in the payload (bits-back only)
    schedule: list = field(default_factory=list)  # (items, particles, repeat) runs (bits-back only)
    seed_items: int | None = None  # bits-back layout 2: the first items, coded under p(x | z = 0)
    value_range: tuple | None = None  # (min, max) of the items' values; None for no items
    fitting_model: str | None = None  # the model that fits the items, used or not
    elbo_bits: float | None = None  # its -ELBO summed over the items, in bits (when asked for and known)
    iwae_bits: float | None = None  # its IWAE-K bound summed over the items (K = particles > 1), in bits


def data_crc32(data: np.ndarray) -> int:
    """zlib.crc32 of the array's bytes in C order (0 for no bytes)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(data)).cast("B")) if data.size else 0


def check_options(method: str, batch_size, particles) -> None:
    """InputError for an unknown method, a batch size that is not a positive integer, particles outside
    1..archive.MAX_PARTICLES, or particles with a classical method."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(particles, bool) or not isinstance(particles, (int, np.integer)) or not (
            1 <= particles <= archive.MAX_PARTICLES):
        raise InputError(f"particles must be an integer in 1..{archive.MAX_PARTICLES}, got {particles!r}")
    if particles > 1 and method in CLASSICAL:
        raise InputError(f"particles apply to bits-back coding, not to the classical method {method!r}")


def _shape_text(shape) -> str:
    return " x ".join(str(int(d)) for d in shape) or "scalar"


def _values_text(data: np.ndarray) -> str:
    return f"{int(data.min())}..{int(data.max())}" if data.size else "none"


def misfit_message(model: LatentModel, data: np.ndarray) -> str:
    """Why ``model`` cannot code ``data``, with the installed models to choose from."""
    return (f"model {registry.describe(model)} does not fit the data (items of shape {_shape_text(data.shape[1:])}, values "
            f"{_values_text(data)}); pick another model or a classical method; {registry.installed_text()}")


def resolve_model(data: np.ndarray, model: LatentModel | None, method: str) -> tuple[LatentModel | None, str | None]:
    """(the model to code ``data`` with, or None; why there is none). A given model must fit (ModelError
    otherwise); without one, the installed model that fits. With ``method`` "bits-back" a missing model is a
    ModelError naming the installed models; with "auto" the reason is returned for the report."""
    if method in CLASSICAL:
        return None, None
    if model is not None:
        if not model_fits(model, data):
            raise ModelError(misfit_message(model, data))
        return model, None
    try:
        found = registry.default_model_for(data)
    except ModelError as exc:  # the fitting installed model failed to load (e.g. missing weights)
        if method == "bits-back":
            raise
        return None, f"the installed model for this data failed to load ({exc})"
    if found is None:
        if method == "bits-back":
            raise ModelError(f"no installed model fits this data (items {_shape_text(data.shape[1:])}, values "
                             f"{_values_text(data)}); pass a model (bbans compress --model NAME|PATH) or use a "
                             f"classical method (e.g. lzma); {registry.installed_text()}")
        return None, f"no installed model fits items of shape {tuple(data.shape[1:])}"
    return found, None


def classical_payload(method: str, data: np.ndarray) -> bytes:
    """The payload classical ``method`` (one of CLASSICAL) makes of ``data``."""
    if method in image_codecs.METHODS:
        return image_codecs.compress(method, data)
    return classic.compress(method, data.tobytes())


def classic_archive(data: np.ndarray, method: str, extra: bytes) -> tuple[bytes, int]:
    """(the archive of ``data`` coded with classical ``method``, its payload size in bits)."""
    payload = classical_payload(method, data)
    h = archive.ArchiveHeader(method=method, shape=data.shape, data_crc32=data_crc32(data), extra=extra)
    return archive.pack(h, payload), 8 * len(payload)


def classical_for(data: np.ndarray) -> list[str]:
    """The classical methods "auto" tries on ``data``: the byte codecs, and the image codecs that apply to it."""
    return [*classic.METHODS, *(m for m in image_codecs.METHODS
                                if image_codecs.available() and image_codecs.applicable(m, data))]


def best_classic_archive(data: np.ndarray, extra: bytes) -> tuple[bytes, str, int]:
    """The smallest classical archive of ``data``: (blob, method, payload bits); the first of CLASSICAL on ties.
    The image codecs are tried where they apply."""
    best = None
    for m in classical_for(data):
        blob, bits = classic_archive(data, m, extra)
        if best is None or len(blob) < len(best[0]):
            best = (blob, m, bits)
    return best


def bits_back_archive(data: np.ndarray, model: LatentModel, extra: bytes, batch_size: int, particles: int,
                      progress=None, format_version: int = archive.FORMAT_VERSION) -> tuple[bytes, chain.Encoded]:
    """The bits-back archive of ``data`` under ``model`` (``particles`` > 1: Monte-Carlo bits-back): layout 3 (or
    2 with ``format_version`` 2: the same chain, a longer header), a data-seeded chain with the model's coding
    variant, or layout 1 where its seed items cost more than 1% of the
    payload over their rate and a random seed comes out smaller (models whose p(x | z = 0) codes items badly);
    ``format_version`` 1, the random-seed chain at the model's exported settings (no coding variant), as bbans wrote
    before layout 2. ModelError when the model's identity is not final, it cannot weigh
    particles, or its archive would be implausible."""
    sha = str(model.sha256).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelError(f"model {model.name!r} has no valid sha256 ({model.sha256!r}); its weights are not final")
    try:
        archive.settings_json(dict(model.coder_settings))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {model.name!r} has coder settings that are not plain JSON ({exc})") from None
    items, coded_model = data, model
    if tile_size(model):  # an image model: the images' tiles are the chain's items
        if particles > 1:
            raise ModelError(f"model {model.name!r} codes images as tiles, which Monte-Carlo bits-back (--particles) "
                             "does not support; use --particles 1")
        items = tiles.to_tiles(data, model.tile_size, model.tile_fill)
        coded_model = tiles.tile_items(model, data.shape)
    if particles > 1:
        try:
            importance.check_model(model)
        except BBANSError as exc:
            raise ModelError(str(exc)) from None
    if tile_size(model):
        if format_version == 1:
            raise ModelError(f"model {model.name!r} codes images as tiles, which archive layout 1 cannot hold; use "
                             f"--format-version {archive.FORMAT_VERSION}")
        enc = chain.encode(coded_model, items, batch_size, tiles.progress_in_images(progress, len(items), len(data)))
    elif format_version == 1:
        model = exported(model)
        enc = chain.encode_random_seed(model, data, batch_size, progress, particles=particles)
    else:
        enc = chain.encode(model, data, batch_size, progress, particles=particles)
        if seed_excess_bits(enc, len(data)) > SEED_EXCESS_SHARE * 32 * enc.payload.size:
            old = chain.encode_random_seed(exported(model), data, batch_size, None, particles=particles)
            if old.payload.size < enc.payload.size:  # p(x | z = 0) codes these items worse than a random seed
                model, enc = exported(model), old
    if not plausible_item_count(len(items), enc.payload.size):  # the decoder would refuse this archive
        raise TooFewBits(f"model {model.name!r} codes these {len(data)} items in under one bit each, which "
                         "bbans decoders refuse as implausible; use a classical method")
    h = archive.ArchiveHeader(
        method="bits-back-is" if particles > 1 else "bits-back", particles=particles, shape=data.shape,
        data_crc32=data_crc32(data), extra=extra, model_name=str(model.name), model_sha256=sha,
        coder_settings=dict(model.coder_settings), schedule=enc.schedule, seed_words=enc.seed_words,
        prefix_words=enc.prefix_words, version=1 if enc.seed_items is None else max(2, format_version),
        settings_digest=model_digest(model), seed_items=enc.seed_items,
        ramp=None if enc.ramp is None else tuple(enc.ramp)[:4])
    return archive.pack(h, enc.payload), enc


SEED_EXCESS_SHARE = 0.01  # a data seed costing more than this share of the payload over its items' rate: try layout 1


def neg_elbo_bits_total(model: LatentModel, data: np.ndarray, progress=None) -> float:
    """The model's -ELBO summed over the items ``data``, bits; for an image model, over the images' tiles, each
    counting only its pixels inside the image."""
    if not tile_size(model):
        return summed_bits(model.neg_elbo_bits, data, progress=progress)
    total = 0.0
    for i in range(len(data)):
        one = data[i:i + 1]
        items = tiles.to_tiles(one, model.tile_size, model.tile_fill)
        total += float(np.sum(model.neg_elbo_bits(items, extents=tiles.tile_extents(one.shape, model.tile_size))))
        if progress is not None:
            progress(i + 1, len(data))
    return total


def seed_excess_bits(enc: chain.Encoded, n: int) -> float:
    """What a data-seeded chain's seed items cost above the bits-back items' mean net rate, in bits: the seed's
    bits (the ramp's start level) less seed_items times the net bits per bits-back item (0 when none)."""
    if enc.seed_items is None or enc.seed_items >= n:
        return 0.0 if enc.seed_items is None else float(32 * enc.payload.size)
    net = (32 * enc.payload.size - enc.ramp.start_bits) / (n - enc.seed_items)
    return enc.ramp.start_bits - enc.seed_items * net


def summed_bits(fn, data: np.ndarray, batch: int = EVAL_BATCH, progress=None) -> float:
    """sum over items of ``fn(items)`` (float bits per item), ``batch`` items per call; ``progress(done, total)``."""
    total = 0.0
    for i in range(0, len(data), batch):
        total += float(np.asarray(fn(data[i:i + batch]), np.float64).sum())
        if progress is not None:
            progress(min(i + batch, len(data)), len(data))
    return total


def encode_chunk(data: np.ndarray, model: LatentModel | None = None, *, method: str = "auto",
                 batch_size: int = 100, particles: int = 1, extra: bytes = b"", want_elbo: bool = False,
                 progress=None, eval_progress=None, format_version: int = archive.FORMAT_VERSION) -> CodedChunk:
    """Code the items ``data`` (uint8 (N, *item_shape), C-contiguous) into one archive, choosing method and model
    as the module docstring says. ``progress(done_items, total_items)`` while coding; with ``want_elbo`` the
    fitting model's -ELBO (and IWAE-``particles`` bound) is measured too, reporting to ``eval_progress``."""
    check_options(method, batch_size, particles)
    n = len(data)
    used, why_not = resolve_model(data, model, method)

    def coded(blob, m, reason, bits, enc=None) -> CodedChunk:
        out = CodedChunk(blob, m, reason, n, data.nbytes, bits,
                         value_range=(int(data.min()), int(data.max())) if data.size else None,
                         fitting_model=None if used is None else str(used.name))
        if enc is not None:
            out.model_name, out.model_sha256 = str(used.name), str(used.sha256).lower()
            out.initial_bits, out.schedule, out.seed_items = enc.initial_bits, enc.schedule, enc.seed_items
        if progress is not None and m not in archive.BITS_BACK_METHODS:
            progress(n, n)
        if want_elbo and m in archive.BITS_BACK_METHODS and n and isinstance(used, Evaluable):
            out.elbo_bits = neg_elbo_bits_total(used, data, progress=eval_progress)
            if m == "bits-back-is":
                k = int(particles)
                out.iwae_bits = summed_bits(lambda x: used.iwae_bits(x, k), data, max(1, min(EVAL_BATCH, 20_000 // k)),
                                            eval_progress)
        return out

    if method in CLASSICAL:
        blob, bits = classic_archive(data, method, extra)
        return coded(blob, method, f"{method} was requested", bits)
    if used is None:
        blob, m, bits = best_classic_archive(data, extra)
        return coded(blob, m, f"{why_not}; {m} was the smallest classical method", bits)
    verdict = sample_verdict(data, used) if method == "auto" and data.nbytes > FALLBACK_PROBE_BYTES else None
    if verdict is not None and verdict.classical_wins:
        blob, m, bits = best_classic_archive(data, extra)
        return coded(blob, m, f"{verdict.text}; {m} of the whole chunk", bits)
    # "auto" compares with the whole chunk coded classically unless the sample already settled it: start that now,
    # beside the bits-back coding (zlib, lzma and bz2 release the GIL), instead of after it
    classical = _Background(best_classic_archive, data, extra) if (
        method == "auto" and verdict is not None and not verdict.model_clearly_wins) else None
    try:
        blob, enc = bits_back_archive(data, used, extra, int(batch_size), int(particles), progress, format_version)
    except ModelError as exc:
        if method == "bits-back" or (model is not None and not isinstance(exc, TooFewBits)):
            raise
        blob, m, bits = classical.result() if classical else best_classic_archive(data, extra)  # unusable model
        if isinstance(exc, TooFewBits):
            return coded(blob, m, f"bits-back with {used.name!r} codes these items in under one bit each, which "
                                  f"decoders refuse; {m} was the smallest classical method", bits)
        return coded(blob, m, f"the installed model {used.name!r} is unusable ({exc}); used {m}", bits)
    why = "bits-back was requested" if method == "bits-back" else f"model {used.name!r} fits the data"
    if method == "auto":  # keep bits-back only where it wins: small inputs, or a close call on the sample
        if verdict is None or len(blob) > data.nbytes or not verdict.model_clearly_wins:
            fb, m, fb_bits = classical.result() if classical else best_classic_archive(data, extra)
            if len(fb) < len(blob):
                reason = f"{m} ({len(fb)} bytes) is smaller than bits-back with {used.name!r} ({len(blob)} bytes)"
                return coded(fb, m, reason, fb_bits)
            why += f"; bits-back ({len(blob)} bytes) beat the best classical method, {m} ({len(fb)} bytes)"
        else:
            why += f"; {verdict.text}"
    if particles > 1:
        why += f"; Monte-Carlo bits-back with up to {particles} particles per item"
    return coded(blob, "bits-back-is" if particles > 1 else "bits-back", why, 32 * enc.payload.size, enc)


class _Background:
    """``fn(*args)`` on a daemon thread (an interrupted run does not wait for it); ``result()`` waits for it and
    returns its value or raises its exception."""

    def __init__(self, fn, *args):
        self._out: list = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True, name="bbans-classical")
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._out.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._out.append((False, exc))

    def result(self):
        self._thread.join()
        ok, value = self._out[0]
        if not ok:
            raise value
        return value


@dataclass
class SampleVerdict:
    """The model's -ELBO against the best classical codec on a sample of a chunk (bits per value)."""

    model_bpd: float | None
    classical_bpd: float
    classical_method: str
    items: int

    @property
    def classical_wins(self) -> bool:
        """Classical coding beats the model's -ELBO by over CLASSICAL_MARGIN on the sample: skip bits-back."""
        return self.model_bpd is not None and self.classical_bpd < self.model_bpd * (1 - CLASSICAL_MARGIN)

    @property
    def model_clearly_wins(self) -> bool:
        """The model beats the sample's classical rate by over CHECK_MARGIN (classical codecs only gain on the
        whole chunk, which is why the margin is wide): no need to code the whole chunk classically to compare."""
        return self.model_bpd is not None and self.model_bpd < self.classical_bpd * (1 - CHECK_MARGIN)

    @property
    def text(self) -> str:
        model = "n/a" if self.model_bpd is None else f"{self.model_bpd:.4f}"
        return (f"on a sample of {self.items:,} items the model's -ELBO is {model} bits/dim and "
                f"{self.classical_method} {self.classical_bpd:.4f}")


def sample_verdict(data: np.ndarray, model: LatentModel) -> SampleVerdict:
    """Compare ``model``'s -ELBO (when it is ``Evaluable``) with the best classical codec on ``SAMPLE_ITEMS``
    items spread evenly over ``data`` (uint8 (N, *item_shape)), in bits per value."""
    idx = np.unique(np.linspace(0, len(data) - 1, min(SAMPLE_ITEMS, len(data))).astype(np.int64))
    sample = np.ascontiguousarray(data[idx])
    best = min((len(classical_payload(m, sample)), m) for m in classical_for(sample))
    model_bpd = neg_elbo_bits_total(model, sample) / sample.size if isinstance(model, Evaluable) else None
    return SampleVerdict(model_bpd, 8 * best[0] / sample.size, best[1], len(sample))
