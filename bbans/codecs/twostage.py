# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Two-stage integer-exact coding of symbols 0..n-1 (n a multiple of 16) under a mixture of discretized CDFs.

A symbol s is coded as its coarse part ``s >> 4`` under an (n/16)-way categorical, then its fine part ``s & 15``
under the 16-way categorical of that coarse bin. The two stages factor the distribution exactly; each needs the
CDF at (n/16 + 1) and 17 edges per component instead of n + 1, and small categoricals code much faster.

Subclasses give the components' CDF at bin edges (``_edge_cdf``, 2^30-scaled int64; edge j lies between symbols
j-1 and j) and optional integer mixture weights. Every step is integer arithmetic on fixed tables, so encoder and
decoder build identical tables on any machine. Edges at or beyond the ends are moved to ±``INF_EDGE``, where each
subclass's CDF saturates to exactly 0 or 2^30: the first and last symbols take the tails.
"""
from __future__ import annotations

import numpy as np

from . import blocks, fixedlog, kernels, tables
from .basic import Categorical, Codec
from ..errors import BBANSError

INF_EDGE = kernels.INF_EDGE
_FINE_OFFSETS = np.arange(0, 17, dtype=np.int64)
_NO_ROWS = np.zeros(0, np.int64)  # the kernels' coarse argument for the coarse stage (any slice of it is empty)
_CHUNK = 2048  # rows per vectorized block: keeps the (P, K, E) int64 temporaries in cache (3x faster than 8k)


def _stage_weights(cdf: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Unnormalized mixture mass between consecutive edges, (P, E-1) float32, from the CDF (P, K, E).

    Each row is shifted right so its total stays below 2^22 and floored at 1: the values are then exact in
    float32 and within the dynamic range constriction's lazy categorical quantizes safely (a row mixing 1 and
    2^46 makes it panic).
    """
    mass = cdf[:, :, 1:] - cdf[:, :, :-1]
    if weights is None:
        total = mass[:, 0, :]
    else:
        total = mass[:, 0, :] * weights[:, 0, None]
        for k in range(1, weights.shape[1]):
            total += mass[:, k, :] * weights[:, k, None]
    _, exponent = np.frexp(total.sum(axis=1).astype(np.float64))  # exact: row sums < 2^53
    shift = np.maximum(exponent - 22, 0).astype(np.int64)
    return (np.right_shift(total, shift[:, None]) + 1).astype(np.float32)


class TwoStageCodec(Codec):
    """Base codec over symbols 0..n_symbols-1 with ``rows`` independent elements (flattened ``shape``)."""

    n_symbols: int
    rows: int
    _weights: np.ndarray | None = None

    def _edge_cdf(self, edge_j: np.ndarray, a: int, b: int) -> np.ndarray:
        """2^30 x CDF of rows a..b-1 at edges ``edge_j`` (b-a, E): returns (b-a, K, E) int64."""
        raise NotImplementedError

    def _kernel_tables(self, coarse: np.ndarray, a: int, b: int, out: np.ndarray) -> bool:
        """Fill ``out`` (b-a, W) with the stage weights of rows a..b-1 by a compiled kernel (``kernels.py``), the
        same numbers as ``_stage_weights(_edge_cdf(...))``; ``coarse`` is the rows' coarse bins (fine stage) or
        empty (coarse stage). Called only when ``kernels.AVAILABLE``; returns False for a subclass without one."""
        return False

    def _tables(self, coarse: np.ndarray | None) -> np.ndarray:
        """Coarse-stage weights (rows, n/16) if ``coarse`` is None, else fine weights (rows, 16) within it."""
        n, top = self.rows, self.n_symbols
        width = top // 16 if coarse is None else 16
        out = np.empty((n, width), np.float32)
        rows_coarse = _NO_ROWS if coarse is None else np.ascontiguousarray(coarse, np.int64)

        def fill(a: int, b: int) -> None:
            if kernels.AVAILABLE and self._kernel_tables(rows_coarse[a:b], a, b, out[a:b]):
                return
            if coarse is None:
                edges = np.broadcast_to(np.arange(0, top + 1, 16, dtype=np.int64), (b - a, width + 1))
            else:
                edges = rows_coarse[a:b, None] * 16 + _FINE_OFFSETS
            edges = np.where(edges <= 0, -INF_EDGE, np.where(edges >= top, INF_EDGE, edges))
            w = None if self._weights is None else self._weights[a:b]
            out[a:b] = _stage_weights(self._edge_cdf(edges, a, b), w)

        blocks.run_blocks(fill, n, _CHUNK)
        return out

    def _check(self, symbols) -> np.ndarray:
        s = np.asarray(symbols).reshape(-1).astype(np.int64)
        if s.size != self.rows:
            raise BBANSError(f"expected {self.rows} symbols, got {s.size}")
        if s.size and (s.min() < 0 or s.max() >= self.n_symbols):
            raise BBANSError(f"symbols must lie in 0..{self.n_symbols - 1}")
        return s

    def _coarse_tables(self) -> np.ndarray:
        """The coarse-stage weights, built once per codec (a codec popped K times reuses them)."""
        if getattr(self, "_coarse", None) is None:
            self._coarse = self._tables(None)
        return self._coarse

    def _index(self, symbols) -> np.ndarray:
        """The codec's symbols -> flat int64 table indices 0..n_symbols-1 (checked). Subclasses whose symbols are
        offset (latent bins) override it together with ``_value``."""
        return self._check(symbols)

    def _value(self, index: np.ndarray) -> np.ndarray:
        """Flat table indices -> the codec's symbols, int32 of ``shape``."""
        return index.astype(np.int32).reshape(self.shape)

    def push(self, coder, symbols) -> None:
        s = self._index(symbols)
        coarse = s >> 4
        Categorical.from_weights(self._tables(coarse)).push(coder, s & 15)
        Categorical.from_weights(self._coarse_tables()).push(coder, coarse)

    def pop(self, coder) -> np.ndarray:
        return self._value(self._pop_index(coder)[0])

    def pop_with_cost(self, coder):
        """Pop symbols and their ``cost`` from the tables the pop built: (int32, int64), each of ``shape``."""
        s, ct, ft = self._pop_index(coder)
        return self._value(s), _table_cost(ct, ft, s).reshape(self.shape)

    def _pop_index(self, coder):
        """Pop flat table indices (int64); also returns the coarse and fine tables they were read with."""
        ct = self._coarse_tables()
        coarse = Categorical.from_weights(ct).pop(coder).astype(np.int64)
        ft = self._tables(coarse)
        return coarse * 16 + Categorical.from_weights(ft).pop(coder), ct, ft

    def stages(self, symbols) -> list:
        """[(coarse probabilities (rows, n/16), coarse parts), (fine probabilities (rows, 16), fine parts)]: the
        two categoricals ``pop`` reads, in its order, for ``symbols``."""
        s = self._index(symbols)
        return [(self._coarse_tables(), s >> 4), (self._tables(s >> 4), s & 15)]

    def cost(self, symbols) -> np.ndarray:
        """-log2 of each symbol's table probability in 2^-20 bits (``fixedlog``), integer-exact; int64 ``shape``."""
        s = self._index(symbols)
        return _table_cost(self._coarse_tables(), self._tables(s >> 4), s).reshape(self.shape)

    def neg_log2_prob(self, symbols) -> np.ndarray:
        """-log2 of each symbol's (unquantized) table probability, float64 bits of ``shape`` (for measuring)."""
        s = self._index(symbols)
        ct, ft = self._tables(None).astype(np.float64), self._tables(s >> 4).astype(np.float64)
        rows = np.arange(s.size)
        bits = -np.log2(ct[rows, s >> 4] / ct.sum(1)) - np.log2(ft[rows, s & 15] / ft.sum(1))
        return bits.reshape(self.shape)


def _table_cost(coarse: np.ndarray, fine: np.ndarray, s: np.ndarray) -> np.ndarray:
    """-log2(coarse[s >> 4] / sum(coarse)) - log2(fine[s & 15] / sum(fine)) per row, in 2^-20 bits (int64).

    The tables hold integers below 2^23 (``_stage_weights``), so the int64 sums and the fixed-point logs are exact
    functions of them."""
    rows = np.arange(s.size)
    ct, ft = coarse.astype(np.int64), fine.astype(np.int64)
    return (fixedlog.log2_fixed(ct.sum(1)) - fixedlog.log2_fixed(ct[rows, s >> 4])
            + fixedlog.log2_fixed(ft.sum(1)) - fixedlog.log2_fixed(ft[rows, s & 15]))


def table_cdf(table: np.ndarray, numerator: np.ndarray, shift: int, interpolate: bool = False) -> np.ndarray:
    """Read a 2^30-scaled CDF table (entry i + T is the CDF at t = i/1024) at t = numerator / 2^shift / 1024, int64.

    Without ``interpolate``: the nearest entry. With it: exact integer linear interpolation between entries, for
    distributions whose bins span few table steps. Arguments beyond the table saturate to its end values.
    """
    if not interpolate:
        idx = np.right_shift(numerator + (1 << (shift - 1)), shift)
        idx = tables.clamp(idx, -tables.SIGMOID_HALF, tables.SIGMOID_HALF)
        return table[idx + tables.SIGMOID_HALF]
    lim = tables.SIGMOID_HALF << shift
    num = tables.clamp(numerator, -lim, lim)
    idx = np.right_shift(num, shift) + tables.SIGMOID_HALF     # floor
    frac = num & ((1 << shift) - 1)
    lo = table[idx]
    hi = table[np.minimum(idx + 1, 2 * tables.SIGMOID_HALF)]
    return lo + np.right_shift((hi - lo) * frac, shift)
