# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""A codec for autoregressive likelihoods: p(x) = prod_t p(x_t | x_<t), positions t in raster (C) order.

Items (B, *item_shape) are flattened to (B, P) and coded one position at a time for all B items together. A
position's distribution may depend on the values at earlier positions (and on anything the model fixed before,
such as the latents of a VAE), so decoding must run position by position, while encoding and weighing, where every
value is known, compute all positions' parameters in one vectorized call.

The model supplies three functions over numpy arrays:

- ``params_all(x)``: x int64 (B, P) -> parameters of every position, an array (B, P, ...);
- ``params_at(x, t)``: the parameters of position t, (B, ...), reading only ``x[:, :t]`` (later entries are
  unspecified while decoding);
- ``codec_for(params)``: the codec of one position over B symbols, (B,) ints, from (B, ...) parameters.

``params_all(x)[:, t]`` must equal ``params_at(x, t)`` exactly (integers, or bit-identical floats): the decoder
rebuilds each position's distribution from ``params_at`` and must meet the encoder's. Tests check this.

Stack order: ``push`` pushes position P-1 first and position 0 last, so ``pop`` gets position 0 first, which is
what the decoder needs to compute position 1's parameters, and so on.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .basic import Categorical, Codec
from ..errors import ArchiveError, BBANSError


class RasterAutoregressive(Codec):
    """Codec over int items of ``shape`` = (B, *item_shape) with values in ``value_range`` (inclusive)."""

    def __init__(self, shape: tuple, value_range: tuple, params_all: Callable, params_at: Callable,
                 codec_for: Callable):
        self.shape = tuple(int(s) for s in shape)
        self.batch, self.positions = self.shape[0], int(np.prod(self.shape[1:], dtype=np.int64))
        self.lo, self.hi = (int(v) for v in value_range)
        self._all, self._at, self._codec_for = params_all, params_at, codec_for

    def _flat(self, symbols) -> np.ndarray:
        x = np.asarray(symbols)
        if x.shape != self.shape:
            raise BBANSError(f"codec expected items of shape {self.shape}, got {x.shape}")
        if x.dtype.kind not in "iub":
            raise BBANSError(f"codec symbols must be integers, got {x.dtype}")
        flat = x.reshape(self.batch, self.positions).astype(np.int64)
        if flat.size and (int(flat.min()) < self.lo or int(flat.max()) > self.hi):
            raise BBANSError(f"symbol out of the codec's alphabet {self.lo}..{self.hi}")
        return flat

    def _all_positions(self, x: np.ndarray):
        """(one codec over all B*P elements in position-major order, the symbols in that order (B*P,))."""
        params = self._all(x)
        tmajor = np.swapaxes(params, 0, 1).reshape(self.positions * self.batch, *params.shape[2:])
        return self._codec_for(tmajor), np.ascontiguousarray(x.T).reshape(-1)

    def push(self, coder, symbols) -> None:
        """Push every position in one call: the position-major sequence that ``pop`` reads position by position.
        A codec with several stages per symbol (``stages``, e.g. ``TwoStageCodec``) has its stages interleaved
        per position, in the order its own pop reads them."""
        x = self._flat(symbols)
        if x.size == 0:
            return
        codec, sym = self._all_positions(x)
        parts = codec.stages(sym)  # [(probabilities (B*P, W), symbols (B*P,))] in pop order, or None
        if parts is None:
            codec.push(coder, sym)
            return
        widths = {probs.shape[1] for probs, _ in parts}
        if len(widths) != 1:
            raise BBANSError("stages of different alphabet sizes cannot be interleaved in one push")
        p, b = self.positions, self.batch
        probs = np.stack([pr.reshape(p, b, -1) for pr, _ in parts], axis=1).reshape(-1, widths.pop())
        Categorical(probs).push(coder, np.stack([s.reshape(p, b) for _, s in parts], axis=1).reshape(-1))

    def pop(self, coder) -> np.ndarray:
        x = np.zeros((self.batch, self.positions), np.int64)
        if x.size == 0:
            return x.astype(np.int32).reshape(self.shape)
        for t in range(self.positions):
            x[:, t] = self._codec_for(self._at(x, t)).pop(coder)
        # A corrupt stream can decode values the model cannot take (they fed later positions' parameters as plain
        # numbers, so checking once here costs nothing in safety and saves two reductions per position).
        if int(x.min()) < self.lo or int(x.max()) > self.hi:
            raise ArchiveError("the decoded values leave the model's range; the archive is corrupt")
        return x.astype(np.int32).reshape(self.shape)

    def cost(self, symbols) -> np.ndarray:
        """-log2 P(x_t | x_<t) per element, int64 of ``shape``, in 2^-20 bits (integer-exact, ``fixedlog.py``)."""
        x = self._flat(symbols)
        if x.size == 0:
            return np.zeros(self.shape, np.int64)
        codec, sym = self._all_positions(x)
        cost = np.asarray(codec.cost(sym), np.int64).reshape(self.positions, self.batch)
        return np.ascontiguousarray(cost.T).reshape(self.shape)
