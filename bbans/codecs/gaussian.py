# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Integer-exact discretized Gaussians over latent bins, for posteriors q(z|x) and the N(0, I) prior.

Latent symbols are bin indices i in [-H, H) (H = 8 * 2^b): bin i covers [(i - 1/2) 2^-b, (i + 1/2) 2^-b) in latent
units; the two end bins take the tails. A distribution is given by its mean in units of 2^-u bins (an integer) and
its log-std index S (σ = exp(S/64) latent units, ``tables.py``). Its CDF at a bin edge is 2^30 Φ(t), linearly
interpolated (in integers) in the fixed normal-CDF table of step 1/1024, so every machine builds identical tables
(unlike a float erf) and a bin spanning few table steps still gets its mass to ~1e-6.
Coded in two stages (``twostage.py``): (2H/16)-way coarse bins, then 16-way fine bins.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import kernels, tables
from ..errors import BBANSError
from .twostage import TwoStageCodec, table_cdf


class DiscretizedGaussian(TwoStageCodec):
    """Codec over int latent bin indices of ``shape`` in [-H, H), H = 8 * 2^bin_exponent.

    ``mean``: int array of ``shape``, in units of 2^-mean_fraction_bits bins; ``log_sigma``: int array (or scalar)
    broadcastable to ``shape``, σ = exp(log_sigma / 64) latent units.
    """

    def __init__(self, mean: np.ndarray, log_sigma, bin_exponent: int, mean_fraction_bits: int):
        mean = np.asarray(mean, np.int64)
        self.shape = mean.shape
        self.half = 8 << bin_exponent
        self.n_symbols = 2 * self.half
        self._u = int(mean_fraction_bits)
        if not (0 <= bin_exponent <= 10 and 1 <= self._u <= 16):
            raise BBANSError("latent bin exponent or mean precision out of range")
        self._b = int(bin_exponent)
        self._shift = 6 + self._u + bin_exponent  # t * 1024 = D * INV_SIGMA / 2^shift
        lim = (self.half + 1) << self._u
        self._mean = np.clip(mean.reshape(-1), -lim, lim)[:, None]
        self.rows = self._mean.shape[0]
        s = np.broadcast_to(np.asarray(log_sigma, np.int64), self.shape).reshape(-1)
        s = np.clip(s, tables.LOG_SIGMA_MIN, tables.LOG_SIGMA_MAX)
        self._inv_sigma = tables.inv_sigma_table()[s - tables.LOG_SIGMA_MIN][:, None]

    def _edge_cdf(self, edge_j, a, b):
        """Edge j sits at bin index j - H - 1/2, i.e. (j - H) 2^u - 2^(u-1) in mean units."""
        d = ((edge_j - self.half) << self._u) - (1 << (self._u - 1)) - self._mean[a:b]
        return table_cdf(tables.normal_cdf_table(), (d * self._inv_sigma[a:b])[:, None, :], self._shift, interpolate=True)

    def _kernel_tables(self, coarse, a, b, out):
        kernels.gaussian_tables(self._mean[a:b, 0], self._inv_sigma[a:b, 0], coarse, self.n_symbols, self.half,
                                self._u, self._shift, tables.normal_cdf_table(), tables.SIGMOID_HALF, out)
        return True

    def _index(self, latents) -> np.ndarray:
        z = np.asarray(latents)
        if z.shape != tuple(self.shape):
            raise BBANSError(f"codec expected latents of shape {tuple(self.shape)}, got {z.shape}")
        return self._check(z.reshape(-1).astype(np.int64) + self.half)

    def _value(self, index: np.ndarray) -> np.ndarray:
        return (index - self.half).astype(np.int32).reshape(self.shape)


@lru_cache(maxsize=8)
def _standard_tables(bin_exponent: int, mean_fraction_bits: int):
    """(coarse row, fine rows per coarse value) of N(0, 1): the same for every latent, computed once."""
    coarse_count = (16 << bin_exponent) // 16
    g = DiscretizedGaussian(np.zeros(coarse_count, np.int64), 0, bin_exponent, mean_fraction_bits)
    coarse_row = g._tables(None)[0].copy()
    fine_rows = g._tables(np.arange(coarse_count, dtype=np.int64))
    coarse_row.setflags(write=False)
    fine_rows.setflags(write=False)
    return coarse_row, fine_rows


class StandardGaussian(DiscretizedGaussian):
    """The N(0, I) prior over latents of ``shape``: identical to DiscretizedGaussian(0, 0, ...) element for element,
    but its tables are shared by every element and built once per process."""

    def __init__(self, shape: tuple, bin_exponent: int, mean_fraction_bits: int):
        super().__init__(np.zeros(shape, np.int64), 0, bin_exponent, mean_fraction_bits)

    def _tables(self, coarse):
        coarse_row, fine_rows = _standard_tables(self._b, self._u)
        if coarse is None:
            return np.broadcast_to(coarse_row, (self.rows, coarse_row.size))
        return fine_rows[coarse]
