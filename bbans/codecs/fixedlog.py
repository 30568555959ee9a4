# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Integer-exact base-2 logarithms and powers in fixed point, identical on every machine.

Monte-Carlo bits-back (``bbans/bitsback/importance.py``) weighs particles by their likelihoods. Encoder and
decoder must build the *same* categorical over particles, on any machine, so the weights are computed from the
codecs' integer tables with integer arithmetic and two fixed tables built with ``decimal`` (never libm's log/exp,
which may differ by an ulp between platforms).

Units: a fixed-point log is an int64 count of 2^-FRAC_BITS bits (FRAC_BITS = 20, so 1 bit = 1,048,576 units).
Accuracy: |log2_fixed(n) / 2^20 - log2(n)| < 2e-6 bits; exp2_neg_fixed is accurate to a relative 1e-6.
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from functools import lru_cache

import numpy as np

FRAC_BITS = 20
ONE = 1 << FRAC_BITS            # one bit, in fixed-point units
_STEP_BITS = 10                 # both tables have 2^10 steps per octave, read with linear interpolation
_NORM_BITS = 40                 # log2_fixed normalizes its argument into [2^40, 2^41)
WEIGHT_BITS = 22                # exp2_neg_fixed returns weights in [0, 2^22]: exact in float32


def _round_int(d: Decimal) -> int:
    return int(d.to_integral_value())  # round-half-even, exactly specified


@lru_cache(maxsize=None)
def log2_table() -> np.ndarray:
    """int64 (1025,): entry i = round(2^20 log2(1 + i/1024))."""
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        t = np.array([_round_int((1 + Decimal(i) / 1024).ln() / ln2 * ONE) for i in range(1025)], np.int64)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=None)
def exp2_table() -> np.ndarray:
    """int64 (1025,): entry i = round(2^30 2^(-i/1024)); entry 1024 is exactly 2^29."""
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        t = np.array([_round_int((-(Decimal(i) / 1024) * ln2).exp() * (1 << 30)) for i in range(1025)], np.int64)
    t.setflags(write=False)
    return t


def log2_fixed(n) -> np.ndarray:
    """round(2^20 log2(n)) (to within 2 units) for integers 1 <= n < 2^53; int64 of n's shape."""
    n = np.asarray(n, np.int64)
    if n.size and (n.min() < 1 or n.max() >= 1 << 53):
        raise ValueError("log2_fixed needs integers in 1..2^53-1")
    _, e = np.frexp(n.astype(np.float64))  # exact: n < 2^53, so n lies in [2^(e-1), 2^e)
    top = e.astype(np.int64) - 1
    left = np.maximum(_NORM_BITS - top, 0)
    right = np.maximum(top - _NORM_BITS, 0)
    m = np.right_shift(np.left_shift(n, left), right) - (1 << _NORM_BITS)  # mantissa fraction in [0, 2^40)
    frac_bits = _NORM_BITS - _STEP_BITS
    idx = np.right_shift(m, frac_bits)
    rem = m & ((1 << frac_bits) - 1)
    t = log2_table()
    lo, hi = t[idx], t[idx + 1]
    return top * ONE + lo + np.right_shift((hi - lo) * np.right_shift(rem, frac_bits - 20), 20)


def exp2_neg_fixed(d) -> np.ndarray:
    """round(2^22 2^(-d / 2^20)) for fixed-point bit counts d >= 0 (int64 of d's shape, values in 0..2^22).

    A weight 2^-d relative to the largest (d = 0 gives 2^22); weights below 2^-22 of it become 0.
    """
    d = np.asarray(d, np.int64)
    if d.size and d.min() < 0:
        raise ValueError("exp2_neg_fixed needs d >= 0")
    whole = np.right_shift(d, FRAC_BITS)
    frac = d & (ONE - 1)
    idx = np.right_shift(frac, FRAC_BITS - _STEP_BITS)
    rem = frac & ((1 << (FRAC_BITS - _STEP_BITS)) - 1)
    t = exp2_table()
    lo, hi = t[idx], t[idx + 1]
    v = lo + np.right_shift((hi - lo) * rem, FRAC_BITS - _STEP_BITS)  # 2^30 * 2^-(frac), in (2^29, 2^30]
    shift = np.minimum(whole + (30 - WEIGHT_BITS), 62)
    return np.right_shift(v + np.right_shift(np.left_shift(np.ones_like(v), shift), 1), shift)
