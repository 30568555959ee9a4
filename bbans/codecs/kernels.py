# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Compiled kernels for the codecs' table work: the same numbers as the numpy code they stand beside, faster.

Autoregressive decoding builds two small tables per pixel position (coarse, then fine) for a whole batch; in numpy
each table is some thirty array operations whose Python overhead, not their arithmetic, dominated decoding
(``benchmarks/profile.py``). These kernels do that work row by row in one compiled call each (numba):

- ``logistic_tables`` / ``gaussian_tables``: ``TwoStageCodec._stage_weights`` over the subclasses' ``_edge_cdf``;
- ``mixture_rows``: ``DiscretizedLogisticMixture.__init__``'s clamps and table reads;
- ``floor_last``: ``basic.Categorical._floor_last``.

Integer arithmetic only (int64 products, arithmetic right shifts, table reads), plus ``math.frexp`` of a row sum as a
float64 and float32 steps exactly as numpy takes them, so every number is identical — checked against the numpy
path by ``tests/test_kernels.py`` on random and extreme parameters, and by the golden archives. ``compiled`` is also
how ``bbans_models`` compiles its own loops (the AR head's pixel step).

numba is optional: without it (or with ``BBANS_KERNELS=numpy`` in the environment) ``AVAILABLE`` is False and the
numpy path runs; archives are the same either way. Compiled code is cached on disk (numba's ``cache=True``), so
only the first run on a machine pays the compilation (a few seconds).
"""
from __future__ import annotations

import math
import os

import numpy as np

INF_EDGE = 1 << 20   # where table edges at or beyond the ends move (twostage.py takes it from here)

try:
    if os.environ.get("BBANS_KERNELS", "").lower() == "numpy":
        raise ImportError("disabled by BBANS_KERNELS=numpy")
    import numba
    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised by BBANS_KERNELS=numpy in tests/test_kernels.py
    numba = None
    AVAILABLE = False


def compiled(fn=None, *, exact_sums: bool = False):
    """``fn`` compiled by numba (cached on disk, releasing the GIL) when ``AVAILABLE``, else ``fn`` itself. Callers
    check ``AVAILABLE`` and keep a numpy path: uncompiled, these loops would be far slower than numpy.

    ``exact_sums=True`` lets the compiler reorder float additions (LLVM's ``reassoc``, so reductions vectorize): only
    for kernels whose every float is an integer with partial sums below 2^53, which are exact in any order."""
    if fn is None:
        return lambda f: compiled(f, exact_sums=exact_sums)
    if not AVAILABLE:
        return fn
    return numba.njit(cache=True, nogil=True, fastmath={"reassoc"} if exact_sums else False)(fn)


@compiled
def _edge(j, top):
    """A table edge index, moved to -INF_EDGE / +INF_EDGE at or beyond the ends (``TwoStageCodec._tables``)."""
    if j <= 0:
        return -INF_EDGE
    if j >= top:
        return INF_EDGE
    return j


@compiled
def _normalize_row(total, out_row):
    """``_stage_weights``' last step for one row: shift so the row sum stays below 2^22, add 1, float32."""
    s = 0
    for e in range(total.shape[0]):
        s += total[e]
    exponent = math.frexp(float(s))[1]
    shift = max(exponent - 22, 0)
    for e in range(total.shape[0]):
        out_row[e] = np.float32((total[e] >> shift) + 1)


@compiled
def logistic_tables(means, inv_scale, weights, coarse, top, sigmoid, half, out):
    """Stage weights of discretized logistic mixtures (``logistic.DiscretizedLogisticMixture``).

    means, inv_scale, weights: int64 (R, K) (1/16 pixel, 2^16/s, integer mixture weights); coarse: int64 (R,) coarse
    bins for the fine stage, or an empty array for the coarse stage; top: symbols (256); sigmoid: the 2^30-scaled
    sigmoid table of step 1/1024 with ``half`` entries each side of 0; out: float32 (R, W), W = top/16 or 16.
    """
    rows, k_count = means.shape
    width = out.shape[1]
    fine = coarse.shape[0] > 0
    total = np.empty(width, np.int64)
    edge = np.empty(width + 1, np.int64)   # a row's edges in 1/16 pixel
    cdf = np.empty(width + 1, np.int64)    # one component's CDF at them
    for r in range(rows):  # separate loops without carried values, so that the compiler can vectorize each
        base = coarse[r] * 16 if fine else 0
        step = 1 if fine else 16
        for e in range(width + 1):
            edge[e] = _edge(base + e * step, top) * 16 - 8
        for e in range(width):
            total[e] = 0
        for k in range(k_count):
            m, inv, w = means[r, k], inv_scale[r, k], weights[r, k]
            for e in range(width + 1):
                cdf[e] = sigmoid[min(max((((edge[e] - m) * inv + 512) >> 10), -half), half) + half]
            for e in range(width):
                total[e] += (cdf[e + 1] - cdf[e]) * w
        _normalize_row(total, out[r])


@compiled
def gaussian_tables(mean, inv_sigma, coarse, top, half_bins, u, shift, normal, half, out):
    """Stage weights of discretized Gaussians over latent bins (``gaussian.DiscretizedGaussian``).

    mean, inv_sigma: int64 (R,) (mean in 2^-u bins, 2^16/σ); coarse as in ``logistic_tables``; top = 2 half_bins
    symbols; CDF 2^30 Φ read from ``normal`` (step 1/1024, ``half`` entries each side) with exact integer linear
    interpolation at t = D inv_sigma / 2^shift / 1024; out: float32 (R, W).
    """
    rows = mean.shape[0]
    width = out.shape[1]
    fine = coarse.shape[0] > 0
    total = np.empty(width, np.int64)
    lim = half << shift
    mask = (1 << shift) - 1
    last = 2 * half
    for r in range(rows):
        base = coarse[r] * 16 if fine else 0
        step = 1 if fine else 16
        m, inv = mean[r], inv_sigma[r]
        prev = 0
        for e in range(width + 1):
            j = _edge(base + e * step, top)
            num = ((((j - half_bins) << u) - (1 << (u - 1))) - m) * inv
            num = min(max(num, -lim), lim)
            idx = (num >> shift) + half
            lo = normal[idx]
            hi = normal[min(idx + 1, last)]
            cur = lo + (((hi - lo) * (num & mask)) >> shift)
            if e > 0:
                total[e - 1] = cur - prev
            prev = cur
        _normalize_row(total, out[r])


@compiled
def mixture_rows(means, log_scales, logits, mean_lo, mean_hi, scale_lo, scale_hi, logit_max, inv_scale_table,
                 mix_weight_table, out_means, out_inv_scale, out_weights):
    """``DiscretizedLogisticMixture.__init__``'s integer work in one pass over (R, K) int64 parameters: means
    clamped to [mean_lo, mean_hi]; the inverse scale read at the clamped log-scale; the mixture weight read at
    (row's largest clamped logit - clamped logit)."""
    rows, k_count = means.shape
    for r in range(rows):
        top = -logit_max
        for k in range(k_count):
            top = max(top, min(max(logits[r, k], -logit_max), logit_max))
        for k in range(k_count):
            out_means[r, k] = min(max(means[r, k], mean_lo), mean_hi)
            out_inv_scale[r, k] = inv_scale_table[min(max(log_scales[r, k], scale_lo), scale_hi) - scale_lo]
            out_weights[r, k] = mix_weight_table[top - min(max(logits[r, k], -logit_max), logit_max)]


@compiled
def floor_last(probs, exponent):
    """``basic.Categorical._floor_last`` in place on ``probs`` (float32 (R, n), the caller's own copy): each row's
    last entry raised to at least ldexp(row max, exponent), in float32 as numpy computes it (an exact scaling)."""
    scale = np.float32(2.0 ** exponent)
    last = probs.shape[1] - 1
    for r in range(probs.shape[0]):
        top = probs[r, 0]
        for e in range(1, probs.shape[1]):
            top = max(top, probs[r, e])
        probs[r, last] = max(probs[r, last], top * scale)
