"""The compiled kernels (bbans/codecs/kernels.py, the AR head's position kernel in models/ar_head.py) give exactly
the numbers of the numpy code they replace, on random and extreme parameters, and archives are the same bytes with
and without them (BBANS_KERNELS=numpy in a fresh process)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bbans.codecs import kernels, tables
from bbans.codecs.gaussian import DiscretizedGaussian
from bbans.codecs.logistic import DiscretizedLogisticMixture

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: the numpy path runs alone")


def _both(fn, monkeypatch):
    """fn() with the kernels, then with the numpy path."""
    fast = fn()
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    slow = fn()
    monkeypatch.setattr(kernels, "AVAILABLE", True)
    return fast, slow


@needs_numba
@pytest.mark.parametrize("seed", range(6))
def test_logistic_tables_match_numpy(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    rows, k = 3000, int(rng.integers(1, 11))
    codec = DiscretizedLogisticMixture(rng.integers(tables.MEAN_MIN - 99, tables.MEAN_MAX + 99, (rows, k)),
                                       rng.integers(tables.LOG_SCALE_MIN - 9, tables.LOG_SCALE_MAX + 9, (rows, k)),
                                       rng.integers(-600, 600, (rows, k)))
    coarse = rng.integers(0, 16, rows)
    for stage in (None, coarse):
        fast, slow = _both(lambda: codec._tables(stage), monkeypatch)
        assert fast.dtype == slow.dtype == np.float32
        np.testing.assert_array_equal(fast, slow)


@needs_numba
@pytest.mark.parametrize("seed", range(6))
def test_gaussian_tables_match_numpy(seed, monkeypatch):
    rng = np.random.default_rng(100 + seed)
    rows, bins, frac = 3000, int(rng.integers(0, 8)), int(rng.integers(1, 17))
    half = 8 << bins
    codec = DiscretizedGaussian(rng.integers(-(half + 3) << frac, (half + 3) << frac, rows),
                                rng.integers(tables.LOG_SIGMA_MIN - 9, tables.LOG_SIGMA_MAX + 9, rows), bins, frac)
    coarse = rng.integers(0, 2 * half // 16, rows)
    for stage in (None, coarse):
        fast, slow = _both(lambda: codec._tables(stage), monkeypatch)
        np.testing.assert_array_equal(fast, slow)


@needs_numba
@pytest.mark.parametrize("model_name", ["mnist", "binarized-mnist"])
def test_ar_head_kernels_match_numpy(model_name, monkeypatch):
    from bbans.container.registry import load_model

    from bbans_models.ar_head import CTX_CLIP

    head = load_model(model_name)._ar
    rng = np.random.default_rng(7)
    hi = 255 if model_name == "mnist" else 1
    x = rng.integers(0, hi + 1, (50, 28, 28)).astype(np.int64)
    x[:5] = hi                                              # saturated images and contexts
    ctx = rng.integers(-CTX_CLIP, CTX_CLIP + 1, (50, head.weight.shape[1], 28, 28)).astype(np.int64)
    ctx[5:10] = CTX_CLIP
    by_position = head.context_by_position(ctx)
    for t in (0, 1, 27, 28, 29, 400, 783):
        fast, slow = _both(lambda: head.params_at(by_position, x, t), monkeypatch)
        np.testing.assert_array_equal(fast, slow)
    fast, slow = _both(lambda: head.params_all(ctx, x), monkeypatch)
    np.testing.assert_array_equal(fast, slow)


_ENCODE = """
import hashlib, sys, numpy as np, bbans
x = np.load(sys.argv[1])
print(hashlib.sha256(bbans.compress(x, method="bits-back")).hexdigest())
"""


@needs_numba
@pytest.mark.parametrize("sample", ["samples/mnist-test-100.npy", "samples/binarized-mnist-test-100.npy"])
def test_archives_are_the_same_bytes_without_numba(sample):
    """The bundled samples' archives (AR head, logistic and Bernoulli likelihoods, Gaussian latents) with and
    without the kernels, each in a fresh process so the switch is read at import."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shas = []
    for switch in ("", "numpy"):
        env = dict(os.environ, BBANS_KERNELS=switch)
        run = subprocess.run([sys.executable, "-c", _ENCODE, os.path.join(root, sample)], env=env, cwd=root,
                             capture_output=True, text=True, check=True)
        shas.append(run.stdout.strip())
    assert len(shas[0]) == 64 and shas[0] == shas[1]


@needs_numba
def test_mixture_parameters_match_numpy(monkeypatch):
    """DiscretizedLogisticMixture's clamped means, inverse scales and weights, in and far out of range, any layout."""
    rng = np.random.default_rng(3)
    shape = (40, 28, 5)
    args = (rng.integers(tables.MEAN_MIN - 5000, tables.MEAN_MAX + 5000, shape),
            rng.integers(tables.LOG_SCALE_MIN - 50, tables.LOG_SCALE_MAX + 50, shape),
            rng.integers(-3 * tables.LOGIT_MAX, 3 * tables.LOGIT_MAX, shape))
    args = tuple(np.asfortranarray(a) for a in args)   # the kernel must read any memory layout
    fast, slow = _both(lambda: DiscretizedLogisticMixture(*args), monkeypatch)
    for name in ("_means", "_inv_scale", "_weights"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    np.testing.assert_array_equal(fast._tables(None), slow._tables(None))


@needs_numba
def test_categorical_last_entry_floor_agrees_with_numpy(monkeypatch):
    """Rows whose last weight is tiny next to their largest get floored by both paths; others by neither."""
    from bbans.codecs.basic import Categorical

    rng = np.random.default_rng(4)
    for n in (2, 16, 17, 256):
        weights = rng.integers(1, 1 << 22, (64, n)).astype(np.float32)
        weights[::7, -1] = 1.0                      # 2^-22 of a large row: floored
        weights[1::9, :] = 1.0                      # flat rows: never floored
        given = weights.copy()
        fast, slow = _both(lambda: Categorical.from_weights(given), monkeypatch)
        np.testing.assert_array_equal(fast.probs, slow.probs)
        np.testing.assert_array_equal(given, weights)  # the caller's array is never written
        assert not np.array_equal(fast.probs, weights) or n == 2


@needs_numba
def test_bounded_parameters_match_numpy(monkeypatch):
    """The models' bounded log-scales (models/coding_model._bounded), far beyond the sigmoid table's ends too."""
    from bbans_models.coding_model import _bounded

    raw = np.random.default_rng(5).integers(-3 * tables.SIGMOID_HALF, 3 * tables.SIGMOID_HALF, (30, 28, 28, 5))
    fast, slow = _both(lambda: _bounded(raw[..., 1:4], tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX), monkeypatch)
    assert fast.shape == slow.shape == (30, 28, 28, 3)
    np.testing.assert_array_equal(fast, slow)
