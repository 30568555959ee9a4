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

Uncoded positions: with ``coded`` (a bool (B, *item_shape) mask, both sides know it), only the positions marked
True are coded; the others must hold ``fill`` (the encoder checks) and the decoder sets them to ``fill`` before it
computes later positions' parameters. Tiles of a photo that reach past the image's edge use it
(``bbans.container.tiles``): the pixels outside the image cost nothing.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .basic import Categorical, Codec
from ..errors import ArchiveError, BBANSError


class RasterAutoregressive(Codec):
    """Codec over int items of ``shape`` = (B, *item_shape) with values in ``value_range`` (inclusive)."""

    def __init__(self, shape: tuple, value_range: tuple, params_all: Callable, params_at: Callable,
                 codec_for: Callable, coded: np.ndarray | None = None, fill: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.batch, self.positions = self.shape[0], int(np.prod(self.shape[1:], dtype=np.int64))
        self.lo, self.hi = (int(v) for v in value_range)
        self._all, self._at, self._codec_for = params_all, params_at, codec_for
        self.fill = int(fill)
        self.coded = None  # (B, P) bool, or None: every position coded
        if coded is not None:
            coded = np.asarray(coded, bool)
            if coded.shape != self.shape:
                raise BBANSError(f"coded-position mask of shape {coded.shape} for items of shape {self.shape}")
            if not coded.all():
                self.coded = coded.reshape(self.batch, self.positions)

    def _flat(self, symbols) -> np.ndarray:
        x = np.asarray(symbols)
        if x.shape != self.shape:
            raise BBANSError(f"codec expected items of shape {self.shape}, got {x.shape}")
        if x.dtype.kind not in "iub":
            raise BBANSError(f"codec symbols must be integers, got {x.dtype}")
        flat = x.reshape(self.batch, self.positions).astype(np.int64)
        if flat.size and (int(flat.min()) < self.lo or int(flat.max()) > self.hi):
            raise BBANSError(f"symbol out of the codec's alphabet {self.lo}..{self.hi}")
        if self.coded is not None and np.any(flat[~self.coded] != self.fill):
            raise BBANSError(f"uncoded positions must hold {self.fill}")
        return flat

    def _all_positions(self, x: np.ndarray):
        """(one codec over the coded elements in position-major order, the symbols in that order, and the
        positions of those elements (None: all B*P))."""
        params = self._all(x)
        tmajor = np.swapaxes(params, 0, 1).reshape(self.positions * self.batch, *params.shape[2:])
        sym = np.ascontiguousarray(x.T).reshape(-1)
        if self.coded is None:
            return self._codec_for(tmajor), sym, None
        keep = np.flatnonzero(self.coded.T.reshape(-1))
        return self._codec_for(tmajor[keep]), sym[keep], keep // self.batch

    def push(self, coder, symbols) -> None:
        """Push every position in one call: the position-major sequence that ``pop`` reads position by position.
        A codec with several stages per symbol (``stages``, e.g. ``TwoStageCodec``) has its stages interleaved
        per position, in the order its own pop reads them."""
        x = self._flat(symbols)
        if x.size == 0:
            return
        codec, sym, where = self._all_positions(x)
        if sym.size == 0:
            return
        parts = codec.stages(sym)  # [(probabilities (N, W), symbols (N,))] in pop order, or None
        if parts is None:
            codec.push(coder, sym)
            return
        widths = {probs.shape[1] for probs, _ in parts}
        if len(widths) != 1:
            raise BBANSError("stages of different alphabet sizes cannot be interleaved in one push")
        width = widths.pop()
        if where is None:
            p, b = self.positions, self.batch
            probs = np.stack([pr.reshape(p, b, -1) for pr, _ in parts], axis=1).reshape(-1, width)
            Categorical(probs).push(coder, np.stack([s.reshape(p, b) for _, s in parts], axis=1).reshape(-1))
            return
        # per position, every stage of its coded elements in turn (what pop reads): order by (position, stage, row)
        n, stages = sym.size, len(parts)
        order = np.lexsort((np.tile(np.arange(n), stages), np.repeat(np.arange(stages), n), np.tile(where, stages)))
        probs = np.concatenate([pr for pr, _ in parts])[order]
        Categorical(probs).push(coder, np.concatenate([s for _, s in parts])[order])

    def pop(self, coder) -> np.ndarray:
        x = np.zeros((self.batch, self.positions), np.int64)
        if x.size == 0:
            return x.astype(np.int32).reshape(self.shape)
        if self.coded is None:
            for t in range(self.positions):
                x[:, t] = self._codec_for(self._at(x, t)).pop(coder)
        else:
            for t in range(self.positions):
                rows = self.coded[:, t]
                if rows.all():
                    x[:, t] = self._codec_for(self._at(x, t)).pop(coder)
                    continue
                x[~rows, t] = self.fill
                if rows.any():
                    x[rows, t] = self._codec_for(self._at(x, t)[rows]).pop(coder)
        # A corrupt stream can decode values the model cannot take (they fed later positions' parameters as plain
        # numbers, so checking once here costs nothing in safety and saves two reductions per position).
        if int(x.min()) < self.lo or int(x.max()) > self.hi:
            raise ArchiveError("the decoded values leave the model's range; the archive is corrupt")
        return x.astype(np.int32).reshape(self.shape)

    def cost(self, symbols) -> np.ndarray:
        """-log2 P(x_t | x_<t) per element, int64 of ``shape``, in 2^-20 bits (integer-exact, ``fixedlog.py``);
        0 at uncoded positions."""
        x = self._flat(symbols)
        if x.size == 0:
            return np.zeros(self.shape, np.int64)
        codec, sym, where = self._all_positions(x)
        if where is None:
            cost = np.asarray(codec.cost(sym), np.int64).reshape(self.positions, self.batch)
        else:
            cost = np.zeros(self.positions * self.batch, np.int64)
            cost[np.flatnonzero(self.coded.T.reshape(-1))] = np.asarray(codec.cost(sym), np.int64) if sym.size else 0
            cost = cost.reshape(self.positions, self.batch)
        return np.ascontiguousarray(cost.T).reshape(self.shape)
