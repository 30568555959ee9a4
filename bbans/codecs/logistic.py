# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Integer-exact discretized logistic mixtures over {0..255}, and Bernoulli from integer logits.

A pixel's distribution is a mixture of K logistics (mean m, scale s) discretized to the bins [v - 0.5, v + 0.5];
bin 0 takes the lower tail and bin 255 the upper tail. Parameters are integers (see ``tables.py``):
means ``M`` in 1/16 pixel, log-scales ``L`` in 1/64 (s = exp(L/64) pixels), logits ``W`` in 1/32 nat.

Every probability is computed with integer arithmetic and the fixed tables, so encoder and decoder obtain identical
tables on any machine. The CDF at a bin edge is 2^30 σ(t) read from the sigmoid table at t rounded to 1/1024.

Coding runs in two stages that factor the same distribution exactly: the high nibble ``v >> 4`` under a 16-way
categorical, then the low nibble ``v & 15`` under the 16-way categorical of that coarse bin. Each stage needs the
CDF at 17 edges per component instead of 257, and 16-way categoricals code about 15x faster than 256-way ones.
"""
from __future__ import annotations

import numpy as np

from . import kernels, tables
from .basic import Bernoulli
from ..errors import BBANSError
from .twostage import TwoStageCodec, table_cdf


class DiscretizedLogisticMixture(TwoStageCodec):
    """Codec over uint8-valued symbols of ``shape`` with integer mixture parameters of shape (*shape, K)."""

    n_symbols = 256

    def __init__(self, means: np.ndarray, log_scales: np.ndarray, logits: np.ndarray):
        means, log_scales, logits = (np.asarray(a, np.int64) for a in (means, log_scales, logits))
        if not (means.shape == log_scales.shape == logits.shape) or means.ndim < 1:
            raise BBANSError("logistic mixture parameters must share one shape (*shape, K)")
        self.shape = means.shape[:-1]
        k = means.shape[-1]
        means, log_scales, logits = means.reshape(-1, k), log_scales.reshape(-1, k), logits.reshape(-1, k)
        self.rows = means.shape[0]
        if kernels.AVAILABLE:
            self._means, self._inv_scale, self._weights = (np.empty((self.rows, k), np.int64) for _ in range(3))
            kernels.mixture_rows(means, log_scales, logits, tables.MEAN_MIN, tables.MEAN_MAX, tables.LOG_SCALE_MIN,
                                 tables.LOG_SCALE_MAX, tables.LOGIT_MAX, tables.inv_scale_table(),
                                 tables.mix_weight_table(), self._means, self._inv_scale, self._weights)
            return
        self._means = tables.clamp(means, tables.MEAN_MIN, tables.MEAN_MAX)
        lsc = tables.clamp(log_scales, tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX)
        self._inv_scale = tables.inv_scale_table()[lsc - tables.LOG_SCALE_MIN]
        w = tables.clamp(logits, -tables.LOGIT_MAX, tables.LOGIT_MAX)
        self._weights = tables.mix_weight_table()[w.max(axis=1, keepdims=True) - w]

    @classmethod
    def from_float(cls, means_px, log_scales, logits):
        """Quantize float parameters (pixel units, natural-log scales, nat logits) to the integer grid."""
        return cls(np.rint(np.asarray(means_px, np.float64) * 16),
                   np.rint(np.asarray(log_scales, np.float64) * 64),
                   np.rint(np.asarray(logits, np.float64) * 32))

    def _edge_cdf(self, edge_j, a, b):
        """Edge j sits at pixel value j - 0.5 = (16 j - 8)/16; t = (edge - m)/s = D * INV / 2^20, D in 1/16 px."""
        d = (edge_j[:, None, :] * 16 - 8) - self._means[a:b, :, None]
        return table_cdf(tables.sigmoid_table(), d * self._inv_scale[a:b, :, None], 10)

    def _kernel_tables(self, coarse, a, b, out):
        kernels.logistic_tables(self._means[a:b], self._inv_scale[a:b], self._weights[a:b], coarse, self.n_symbols,
                                tables.sigmoid_table(), tables.SIGMOID_HALF, out)
        return True


def bernoulli_from_logits(logits: np.ndarray) -> Bernoulli:
    """Bernoulli codec with P[1] = σ(logit/1024) read from the sigmoid table (logits in 1/1024 nat)."""
    p1 = tables.sigmoid_of_index(np.asarray(logits, np.int64)).astype(np.float64) / (1 << tables.SIGMOID_BITS)
    return Bernoulli(p1)
