# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Codecs: a push/pop pair over one constriction ``AnsCoder`` (a stack).

A codec holds the parameters of one distribution over a whole batch of symbols. ``push(coder, symbols)`` puts the
symbols on the stack so that a later ``pop(coder)`` returns them exactly (LIFO across codecs). Symbols are integer
numpy arrays of the codec's ``shape``; ``pop`` returns int32. Rates are the distribution's -log2 probability,
in bits, up to constriction's 24-bit fixed-point quantization.

Hazards handled here (docs/design.md, "Hazards"): constriction wants int32 symbols, contiguous float
parameters, ``perfect=False`` for Categorical/Bernoulli, and panics (a BaseException) on invalid parameters,
so parameters are validated before every call.
"""
from __future__ import annotations

import math

import numpy as np
import constriction

from . import fixedlog, kernels
from ..errors import ArchiveError, BBANSError

_model = constriction.stream.model
# Model families hold no state, so one object of each serves every call (creating one per call showed up in
# autoregressive decoding, which codes two categoricals per pixel position).
_CATEGORICAL = _model.Categorical(perfect=False)
_BERNOULLI = _model.Bernoulli(perfect=False)


def _as_symbols(symbols: np.ndarray, shape: tuple, lo: int, hi: int) -> np.ndarray:
    """Flat C-contiguous int32 symbols, after checking shape, integer type and the range lo..hi."""
    s = np.asarray(symbols)
    if s.shape != tuple(shape):
        raise BBANSError(f"codec expected symbols of shape {tuple(shape)}, got {s.shape}")
    if s.dtype.kind not in "iub":
        raise BBANSError(f"codec symbols must be integers, got {s.dtype}")
    if s.size and (int(s.min()) < lo or int(s.max()) > hi):
        raise BBANSError(f"symbol out of the codec's alphabet {lo}..{hi}")
    return np.ascontiguousarray(s.reshape(-1), dtype=np.int32)


def _floats(a, dtype=np.float64) -> np.ndarray:
    """A C-contiguous float copy/view of ``a`` keeping its shape (np.ascontiguousarray turns 0-d into 1-d)."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype=dtype).reshape(a.shape)


def _finite(name: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise BBANSError(f"model produced non-finite {name}; the model or its weights are broken")


class Codec:
    """Base class: a distribution over an integer array of ``shape`` that can be pushed onto and popped off a stack.

    Every codec implements ``push`` and ``pop``. ``cost`` (integer-exact -log2 probabilities) is needed only where
    costs must be identical on every machine (Monte-Carlo bits-back weighs particles with it); ``pop_with_cost``
    and ``stages`` have defaults that subclasses may specialize for speed.
    """

    shape: tuple = ()

    def push(self, coder, symbols: np.ndarray) -> None:
        """Push ``symbols`` (integers of ``shape``) so that the next ``pop`` returns them."""
        raise NotImplementedError

    def pop(self, coder) -> np.ndarray:
        """Pop symbols of ``shape`` (int32) off ``coder``."""
        raise NotImplementedError

    def cost(self, symbols: np.ndarray) -> np.ndarray:
        """-log2 P(symbol) per element: int64 of the codec's shape, in units of 2^-20 bits (``fixedlog.ONE``),
        computed with integer arithmetic only, so every machine gets the same numbers."""
        raise BBANSError(f"{type(self).__name__} codecs have no integer-exact probabilities, so they cannot weigh "
                         "particles; use particles=1 (standard bits-back) with this model")

    def pop_with_cost(self, coder) -> tuple[np.ndarray, np.ndarray]:
        """Pop symbols and their ``cost``: (int32 symbols, int64 costs in 2^-20 bits), both of the codec's shape.
        Codecs that build tables to pop override it to reuse them for the cost."""
        symbols = self.pop(coder)
        return symbols, self.cost(symbols)

    def stages(self, symbols: np.ndarray) -> list | None:
        """The categoricals ``pop`` reads for ``symbols``, in its order, as [(probabilities (n, W), parts (n,))];
        None for a codec that is not a sequence of categoricals. Lets a caller push many such codecs interleaved
        in one call (``codecs.autoregressive``)."""
        return None


def _reraise(exc: BaseException, what: str):
    """Turn a constriction failure (ValueError, KeyError, or a PanicException, which is a BaseException) into ours."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc
    raise BBANSError(f"the entropy coder refused to {what} ({exc}); the model's parameters are invalid") from None


class _ConstrictionCodec(Codec):
    """A codec over one constriction model family with per-symbol parameter arrays (flattened).

    Subclasses give the inclusive symbol range ``(lo, hi)``; a family with a single symbol (lo == hi) is coded in
    zero bits without calling constriction, which refuses such models.
    """

    def _family_and_params(self):
        raise NotImplementedError

    def _symbol_range(self) -> tuple:
        raise NotImplementedError

    def push(self, coder, symbols):
        lo, hi = self._symbol_range()
        flat = _as_symbols(symbols, self.shape, lo, hi)
        if flat.size == 0 or lo == hi:
            return
        family, params = self._family_and_params()
        try:
            coder.encode_reverse(flat, family, *params)
        except BaseException as exc:
            _reraise(exc, "encode")

    def pop(self, coder):
        n = math.prod(self.shape)
        lo, hi = self._symbol_range()
        if n == 0 or lo == hi:
            return np.full(self.shape, lo, np.int32)
        family, params = self._family_and_params()
        try:
            out = coder.decode(family, *params) if params else coder.decode(family, n)  # fixed model: a count
        except BaseException as exc:  # constriction panics are BaseException; the stream is unusable
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise ArchiveError(f"the entropy decoder failed ({exc}); the archive is corrupt") from None
        return np.asarray(out, np.int32).reshape(self.shape)


class Uniform(_ConstrictionCodec):
    """Uniform over {0, ..., size-1} for every element of ``shape``: log2(size) bits each."""

    def __init__(self, size: int, shape: tuple):
        if not 1 <= size <= 2 ** 24:
            raise BBANSError(f"uniform alphabet size {size} out of range 1..2^24")
        self.size, self.shape = int(size), tuple(shape)

    def _family_and_params(self):
        return _model.Uniform(self.size), ()

    def _symbol_range(self):
        return 0, self.size - 1

    def cost(self, symbols):
        lo, hi = self._symbol_range()
        _as_symbols(symbols, self.shape, lo, hi)
        return np.full(self.shape, fixedlog.log2_fixed(self.size), np.int64)


class Bernoulli(_ConstrictionCodec):
    """Independent Bernoulli(p) per element; ``p`` (float64, P[symbol = 1]) has the codec's shape."""

    def __init__(self, p: np.ndarray):
        p = _floats(p)
        _finite("Bernoulli probabilities", p)
        self.p = np.clip(p, 0.0, 1.0)
        self.shape = p.shape

    def _family_and_params(self):
        return _BERNOULLI, (self.p.reshape(-1),)

    def cost(self, symbols):
        """From P[1] rounded to a multiple of 2^-30 (exact for the shipped models' table sigmoids), in 1..2^30-1."""
        flat = _as_symbols(symbols, self.shape, 0, 1)
        one = np.clip(np.rint(np.ldexp(self.p.reshape(-1), 30)).astype(np.int64), 1, (1 << 30) - 1)
        mass = np.where(flat == 1, one, (1 << 30) - one)
        return (30 * fixedlog.ONE - fixedlog.log2_fixed(mass)).reshape(self.shape)

    def _symbol_range(self):
        return 0, 1


class Categorical(_ConstrictionCodec):
    """Categorical per element over {0..n-1}; ``probs`` shape (*shape, n), non-negative, need not sum to 1.

    constriction guarantees every symbol at least the smallest representable probability (leaky), so any symbol
    in range can be coded -- except, in constriction 0.5's lazy categorical, the LAST symbol: its quantized
    probability is 2^24 minus a float-rounded cumulative, which reaches 2^24 (zero probability; encoding it panics)
    when the last float mass is below about 3 * 2^-24 of the row's sum. Measured: each of 200 random 64-row tables
    (n in 2..300) with a zero last probability panicked. So the last probability is floored at
    max(row) * 2^-(20 - ceil(log2 n)) >= 2^-20 of the row's sum, a 16x margin. The floor is exact float arithmetic
    (a max, a power-of-two scaling, a maximum), so encoder and decoder on any machine get identical parameters.
    Cost: at most -log2(1 - 2^-(20 - ceil(log2 n))) bits per symbol (3.5e-4 bits for n = 256, 2e-5 for n = 16),
    and only in rows whose last probability is that small.
    """

    def __init__(self, probs: np.ndarray):
        probs = np.asarray(probs)
        if probs.ndim < 1 or probs.shape[-1] < 1:
            raise BBANSError("categorical probabilities need a last axis of at least one symbol")
        self.n = probs.shape[-1]
        self.shape = probs.shape[:-1]
        self.probs = np.ascontiguousarray(probs.reshape(-1, self.n), dtype=np.float32)
        _finite("categorical probabilities", self.probs)
        if self.probs.size and self.probs.min() < 0:
            raise BBANSError("categorical probabilities must be non-negative")
        if self.probs.size and self.n > 1:
            row_max = self.probs.max(axis=1)
            if not np.all(row_max > 0):
                raise BBANSError("every categorical distribution needs at least one positive probability")
            self._floor_last(row_max)

    def _floor_exponent(self) -> int:
        return -max(0, 20 - (self.n - 1).bit_length())  # bit_length = ceil(log2 n)

    def _floor_last(self, row_max: np.ndarray) -> None:
        floor = np.ldexp(row_max, self._floor_exponent())
        if np.any(self.probs[:, -1] < floor):
            self.probs = self.probs.copy()  # never write into the caller's array
            np.maximum(self.probs[:, -1], floor, out=self.probs[:, -1])

    @classmethod
    def from_weights(cls, weights: np.ndarray) -> "Categorical":
        """A Categorical over rows of ``weights`` (n_rows, n) float32 that the caller guarantees finite and at least
        1 everywhere (e.g. ``twostage.py`` tables): skips the input checks, which dominate the cost of the
        small per-position codecs of autoregressive decoding. Same distribution as ``Categorical(weights)``."""
        self = cls.__new__(cls)
        self.n = weights.shape[-1]
        self.shape = weights.shape[:-1]
        if kernels.AVAILABLE and weights.size and self.n > 1:
            self.probs = np.array(weights, np.float32, order="C")  # our own copy (the caller's stays as it was)
            kernels.floor_last(self.probs, self._floor_exponent())
            return self
        self.probs = weights if weights.flags.c_contiguous else np.ascontiguousarray(weights)  # e.g. broadcast rows
        if weights.size and self.n > 1:
            self._floor_last(weights.max(axis=1))
        return self

    def _family_and_params(self):
        return _CATEGORICAL, (self.probs,)

    def _symbol_range(self):
        return 0, self.n - 1


class QuantizedGaussian(_ConstrictionCodec):
    """Gaussian discretized to unit bins centred on the integers lo..hi (tails folded into the range).

    ``mean`` and ``std`` are float64 arrays of the codec's shape, in bin units; std must be > 0.
    Used for latents: a latent value z is the bin index times the model's bin width.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, lo: int, hi: int):
        mean = _floats(mean)
        std = _floats(np.broadcast_to(std, mean.shape))
        _finite("Gaussian means", mean)
        _finite("Gaussian stds", std)
        if std.size and std.min() <= 0:
            raise BBANSError("Gaussian std must be positive")
        if int(lo) > int(hi):
            raise BBANSError(f"quantized Gaussian range {lo}..{hi} is empty")
        self.mean, self.std, self.lo, self.hi = mean, std, int(lo), int(hi)
        self.shape = mean.shape

    def _family_and_params(self):
        return _model.QuantizedGaussian(self.lo, self.hi), (self.mean.reshape(-1), self.std.reshape(-1))

    def _symbol_range(self):
        return self.lo, self.hi


class Sequence(Codec):
    """Several codecs over consecutive slices of the last axis, pushed last-to-first so pops run first-to-last."""

    def __init__(self, parts: list, axis_sizes: list):
        self.parts, self.sizes = parts, axis_sizes
        lead = parts[0].shape[:-1]
        self.shape = (*lead, sum(axis_sizes))

    def push(self, coder, symbols):
        edges = np.cumsum([0, *self.sizes])
        for codec, a, b in reversed(list(zip(self.parts, edges[:-1], edges[1:]))):
            codec.push(coder, np.asarray(symbols)[..., a:b])

    def pop(self, coder):
        return np.concatenate([c.pop(coder) for c in self.parts], axis=-1)
