"""The integer discretized-logistic mixture codec: exact round trips and a rate equal to its own probabilities."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from bbans.codecs.logistic import DiscretizedLogisticMixture, bernoulli_from_logits

from helpers import empty_coder


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_round_trip_any_parameters(n, k, seed):
    rng = np.random.default_rng(seed)
    means = rng.integers(-600, 4700, (n, k))      # beyond the clamp range on purpose
    log_scales = rng.integers(-300, 400, (n, k))
    logits = rng.integers(-700, 700, (n, k))
    x = rng.integers(0, 256, n)
    codec = DiscretizedLogisticMixture(means, log_scales, logits)
    coder = empty_coder()
    codec.push(coder, x)
    assert np.array_equal(codec.pop(coder), x)
    assert coder.is_empty()


def test_rate_matches_the_codec_probabilities():
    """Symbols drawn from the mixture itself cost their -log2 probability within 0.5%."""
    rng = np.random.default_rng(0)
    n, k = 5000, 5
    means, log_scales, logits = rng.integers(0, 4080, (n, k)), rng.integers(-100, 200, (n, k)), rng.integers(-200, 200, (n, k))
    codec = DiscretizedLogisticMixture(means, log_scales, logits)
    w = np.exp(logits / 32)
    comp = (rng.random(n)[:, None] > np.cumsum(w / w.sum(1, keepdims=True), 1)).sum(1)
    u = rng.random(n)
    rows = np.arange(n)
    sample = means[rows, comp] / 16 + np.exp(log_scales[rows, comp] / 64) * np.log(u / (1 - u))
    x = np.clip(np.rint(sample), 0, 255).astype(np.int64)
    coder = empty_coder()
    codec.push(coder, x)
    ideal = codec.neg_log2_prob(x).sum()
    assert abs(coder.num_bits() - ideal) < 0.005 * ideal + 64


def test_tails_go_to_the_edge_bins():
    """A logistic centred far below 0 puts nearly all mass on 0; far above 255 on 255."""
    codec = DiscretizedLogisticMixture(np.array([[-512], [4592]]), np.array([[0], [0]]), np.array([[0], [0]]))
    bits = codec.neg_log2_prob(np.array([0, 255]))
    assert bits.max() < 1e-4


def test_from_float_matches_integer_grid():
    a = DiscretizedLogisticMixture.from_float([[10.5, 200.0]], [[0.5, -1.0]], [[0.0, 1.0]])
    b = DiscretizedLogisticMixture(np.array([[168, 3200]]), np.array([[32, -64]]), np.array([[0, 32]]))
    for v in (0, 7, 10, 11, 128, 200, 255):
        assert a.neg_log2_prob(np.array([v])) == b.neg_log2_prob(np.array([v]))


def test_bernoulli_from_logits_round_trip():
    rng = np.random.default_rng(1)
    logits = rng.integers(-20000, 20000, 1000)
    x = rng.integers(0, 2, 1000)
    codec = bernoulli_from_logits(logits)
    coder = empty_coder()
    codec.push(coder, x)
    assert np.array_equal(codec.pop(coder), x)
