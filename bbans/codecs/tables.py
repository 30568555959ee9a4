# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Fixed integer lookup tables, computed with Python's ``decimal`` so they are identical on every machine.

libm's ``exp`` may differ by an ulp between platforms; ``decimal`` arithmetic is exactly specified, so these tables
(and every distribution built from them with integer arithmetic) are bit-identical everywhere. Each table is built
once per process (about 0.1 s) and cached.

Fixed-point conventions shared with the integer networks in ``bbans_models``:

=====================  ==========================  ==========================================
quantity               integer stored              real value
=====================  ==========================  ==========================================
logistic argument t    index i in [-T, T], T=2^14  t = i / 1024   (SIGMOID[i + T] = 2^30 σ(t))
logistic mean          M in [-65536, 69616]        m = M / 16 pixels
log-scale (pixels)     L in [-250, 340]            s = exp(L / 64) pixels
mixture logit          W in [-512, 512]            w = W / 32 nats
posterior log-sigma    S in [-384, 96]             σ = exp(S / 64)
Gaussian argument t    index i in [-T, T]          t = i / 1024   (NORMAL_CDF[i + T] = 2^30 Φ(t))
=====================  ==========================  ==========================================
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np

SIGMOID_BITS = 30            # sigmoid values are integers in [0, 2^30]
SIGMOID_STEP_BITS = 10       # table step 2^-10 in t
SIGMOID_HALF = 16 * 1024     # table covers t in [-16, 16]
LOG_SCALE_MIN, LOG_SCALE_MAX = -250, 340   # 1/64 units
MEAN_MIN, MEAN_MAX = -4096 * 16, 4351 * 16  # logistic means in 1/16 pixel
INV_SCALE_BITS = 16          # INV_SCALE[L] = round(2^16 / s)
LOGIT_MAX = 512              # 1/32 nat units
MIX_WEIGHT_BITS = 16         # MIX_WEIGHT[d] = round(2^16 exp(-d/32))
LOG_SIGMA_MIN, LOG_SIGMA_MAX = -384, 96    # 1/64 units


def _round_int(d: Decimal) -> int:
    return int(d.to_integral_value())  # round-half-even, exactly specified


@lru_cache(maxsize=None)
def sigmoid_table() -> np.ndarray:
    """int64 (2*SIGMOID_HALF + 1,): entry i + SIGMOID_HALF = round(2^30 / (1 + exp(-i/1024))), symmetric;
    the two end entries are exactly 0 and 2^30 so tails beyond |t| = 16 saturate."""
    with localcontext() as ctx:
        ctx.prec = 50
        step = (Decimal(-1) / 1024).exp()  # exp(-1/1024)
        one, scale = Decimal(1), Decimal(2) ** SIGMOID_BITS
        pos = np.empty(SIGMOID_HALF + 1, np.int64)
        e = one  # exp(-i/1024)
        for i in range(SIGMOID_HALF + 1):
            pos[i] = _round_int(scale / (one + e))
            e *= step
    pos[-1] = 1 << SIGMOID_BITS  # saturate: beyond |t| = 16 the CDF is exactly 0 or 1
    full = np.concatenate([(1 << SIGMOID_BITS) - pos[:0:-1], pos])
    full.setflags(write=False)
    return full


def _exp_table(indices: range, denom: int, mult: int, sign: int) -> np.ndarray:
    with localcontext() as ctx:
        ctx.prec = 50
        vals = [_round_int(Decimal(mult) * (Decimal(sign * i) / denom).exp()) for i in indices]
    out = np.asarray(vals, np.int64)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def inv_scale_table() -> np.ndarray:
    """int64: entry L - LOG_SCALE_MIN = round(2^16 * exp(-L/64)), the inverse logistic scale."""
    return _exp_table(range(LOG_SCALE_MIN, LOG_SCALE_MAX + 1), 64, 1 << INV_SCALE_BITS, -1)


@lru_cache(maxsize=None)
def mix_weight_table() -> np.ndarray:
    """int64: entry d = round(2^16 * exp(-d/32)) for d in 0..2*LOGIT_MAX (unnormalized softmax weights)."""
    return _exp_table(range(0, 2 * LOGIT_MAX + 1), 32, 1 << MIX_WEIGHT_BITS, -1)


@lru_cache(maxsize=None)
def sigma_table() -> np.ndarray:
    """float64: entry S - LOG_SIGMA_MIN = exp(S/64), exactly representable (rounded from 50 digits)."""
    with localcontext() as ctx:
        ctx.prec = 50
        vals = [float((Decimal(s) / 64).exp()) for s in range(LOG_SIGMA_MIN, LOG_SIGMA_MAX + 1)]
    out = np.asarray(vals, np.float64)
    out.setflags(write=False)
    return out


_PI = "3.14159265358979323846264338327950288419716939937510582097494459"


@lru_cache(maxsize=None)
def normal_cdf_table() -> np.ndarray:
    """int64 (2*SIGMOID_HALF + 1,): entry i + SIGMOID_HALF = round(2^30 Φ(i/1024)), symmetric, ends exactly 0, 2^30.

    Φ is integrated with Simpson's rule (step 1/2048) over the standard normal density, whose values come from an
    exact recurrence in 50-digit ``decimal`` arithmetic: e^{-(x+h)^2/2} = e^{-x^2/2} e^{-xh - h^2/2}. The
    quadrature error (~1e-19) is far below the table's 2^-30 resolution.
    """
    with localcontext() as ctx:
        ctx.prec = 50
        h = Decimal(1) / 2048                       # half the table step: Simpson nodes at multiples of h
        step_factor = (-(h * h)).exp()              # ratio between consecutive e^{-xh - h^2/2} factors
        density, g, c = [], Decimal(1), (-(h * h) / 2).exp()  # g = e^{-x^2/2}, c = e^{-xh - h^2/2}
        for _ in range(2 * SIGMOID_HALF + 1):
            density.append(g)
            g *= c
            c *= step_factor
        half = Decimal(2) ** (SIGMOID_BITS - 1)
        scale = Decimal(2) ** SIGMOID_BITS / (2 * Decimal(_PI)).sqrt()
        pos = np.empty(SIGMOID_HALF + 1, np.int64)
        pos[0] = _round_int(half)
        area = Decimal(0)
        for i in range(SIGMOID_HALF):               # Simpson over [2ih, (2i+2)h]
            area += (density[2 * i] + 4 * density[2 * i + 1] + density[2 * i + 2]) * h / 3
            pos[i + 1] = _round_int(half + scale * area)
    pos[-1] = 1 << SIGMOID_BITS  # saturate beyond |t| = 16
    full = np.concatenate([(1 << SIGMOID_BITS) - pos[:0:-1], pos])
    full.setflags(write=False)
    return full


@lru_cache(maxsize=None)
def inv_sigma_table() -> np.ndarray:
    """int64: entry S - LOG_SIGMA_MIN = round(2^16 * exp(-S/64)), the inverse posterior std (latent units)."""
    return _exp_table(range(LOG_SIGMA_MIN, LOG_SIGMA_MAX + 1), 64, 1 << INV_SCALE_BITS, -1)


def clamp(a, lo, hi) -> np.ndarray:
    """np.clip(a, lo, hi) for finite inputs, as two ufunc calls: np.clip's Python-side checks cost several times more
    on the small arrays of autoregressive decoding, which clamps a few thousand times per batch."""
    return np.minimum(np.maximum(a, lo), hi)


def sigmoid_of_index(i: np.ndarray) -> np.ndarray:
    """2^30 σ(i/1024) for integer i (clamped to the table), int64."""
    return sigmoid_table()[clamp(i, -SIGMOID_HALF, SIGMOID_HALF) + SIGMOID_HALF]
