"""The integer discretized-Gaussian latent codec: exact round trips, agreement with the true discretized normal,
and a coded rate equal to its own probabilities."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from scipy.stats import norm

from bbans.codecs.gaussian import DiscretizedGaussian, StandardGaussian

from helpers import empty_coder


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), b=st.integers(2, 6), seed=st.integers(0, 2**31 - 1))
def test_round_trip_any_parameters(n, b, seed):
    rng = np.random.default_rng(seed)
    u = 12 - b
    half = 8 << b
    mean = rng.integers(-(half + 40) << u, (half + 40) << u, n)     # beyond the range on purpose
    log_sigma = rng.integers(-500, 200, n)                          # beyond the table on purpose
    z = rng.integers(-half, half, n)
    codec = DiscretizedGaussian(mean, log_sigma, b, u)
    coder = empty_coder()
    codec.push(coder, z)
    assert np.array_equal(codec.pop(coder), z)
    assert coder.is_empty()


def test_probabilities_match_the_discretized_normal():
    b, u = 5, 7
    mean_latent = np.array([0.0, 0.3, -2.1, 5.0])
    log_sigma = np.array([0, -64, -192, 32])            # σ = 1, e^-1, e^-3, e^0.5
    codec = DiscretizedGaussian(np.rint(mean_latent * 2**12).astype(np.int64), log_sigma, b, u)
    sigma, width = np.exp(log_sigma / 64), 2.0 ** -b
    for z in (-3, 0, 5, 10, -67):
        zz = np.full(4, z)
        centre = zz * width
        true = norm.cdf((centre + width / 2 - mean_latent) / sigma) - norm.cdf((centre - width / 2 - mean_latent) / sigma)
        ours = 2.0 ** -codec.neg_log2_prob(zz)
        big = true > 1e-4
        assert np.allclose(ours[big], true[big], rtol=2e-3)


def test_rate_matches_the_codec_probabilities():
    rng = np.random.default_rng(0)
    n, b, u = 20000, 5, 7
    mu = rng.normal(size=n)
    log_sigma = rng.integers(-250, 30, n)
    z = np.clip(np.rint((mu + np.exp(log_sigma / 64) * rng.normal(size=n)) * 2**b), -256, 255).astype(np.int64)
    codec = DiscretizedGaussian(np.rint(mu * 2**12).astype(np.int64), log_sigma, b, u)
    coder = empty_coder()
    codec.push(coder, z)
    ideal = codec.neg_log2_prob(z).sum()
    assert abs(coder.num_bits() - ideal) < 0.005 * ideal + 64


def test_standard_gaussian_shares_tables_without_changing_the_code():
    rng = np.random.default_rng(5)
    z = rng.integers(-256, 256, (30, 7))
    shared, plain = StandardGaussian((30, 7), 5, 7), DiscretizedGaussian(np.zeros((30, 7), np.int64), 0, 5, 7)
    c1, c2 = empty_coder(), empty_coder()
    shared.push(c1, z)
    plain.push(c2, z)
    assert np.array_equal(c1.get_compressed(), c2.get_compressed())
    assert np.array_equal(shared.pop(c1), z)
