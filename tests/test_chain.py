"""The random-seed bits-back chain (archive layout 1, still written with --format-version 1) and its schedule: exact
round trips, the seed check, determinism, and the rate. The data-seeded chain: tests/test_data_seed.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bbans.bitsback import chain

from bbans.bitsback import schedule
from bbans.errors import ArchiveError
from toy_models import ToyBinary, ToyGrey, quantized_gaussian_logprob2, random_data

FAST = settings(max_examples=100, deadline=None)


models = st.one_of(
    st.builds(ToyBinary, shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), half_bins=st.integers(1, 40),
              settings=st.booleans()),
    st.builds(ToyGrey, shape=st.tuples(st.integers(1, 4)), half_bins=st.integers(1, 64)),
)


@FAST
@given(model=models, n=st.integers(0, 50), b=st.integers(1, 60), seed=st.integers(0, 2 ** 32 - 1))
def test_round_trip(model, n, b, seed):
    x = random_data(model, n, np.random.default_rng(seed))
    enc = chain.encode_random_seed(model, x, b)
    sizes = [batch.items for batch in schedule.expand(enc.schedule, n)]
    assert all(1 <= s <= b for s in sizes)
    first = schedule.next_batch_size(32 * enc.seed_words - 1 - schedule.RESERVE_BITS,
                                     schedule.first_pop_bits(model), n, b)
    assert n == 0 or sizes[0] == first  # top bit of the seed is a sentinel
    assert 0 <= enc.prefix_words <= enc.seed_words == schedule.seed_length(model)
    out = chain.decode(model, enc, n)  # also checks the stack returns to the seed
    assert out.dtype == np.uint8 and out.shape == x.shape
    np.testing.assert_array_equal(out, x)


def test_progress_and_batch_growth():
    model, rng = ToyGrey(), np.random.default_rng(1)
    x = random_data(model, 300, rng)
    calls = []
    enc = chain.encode_random_seed(model, x, 100, progress=lambda d, t: calls.append((d, t)))
    sizes = [batch.items for batch in schedule.expand(enc.schedule, 300)]
    assert sizes[0] == 1 and max(sizes) == 100 and calls[-1] == (300, 300)
    assert sizes == sorted(sizes[:-1]) + sizes[-1:]  # grows, then the remainder
    back = []
    np.testing.assert_array_equal(chain.decode(model, enc, 300, progress=lambda d, t: back.append(d)), x)
    assert back[-1] == 300 and back == sorted(back)


def test_seed_check_catches_a_damaged_payload():
    model, rng = ToyBinary(), np.random.default_rng(2)
    x = random_data(model, 40, rng)
    enc = chain.encode_random_seed(model, x, 8)
    for i in range(0, enc.payload.size, 5):
        bad = enc.payload.copy()
        bad[i] ^= np.uint32(1 << (i % 31))
        with pytest.raises(ArchiveError):
            chain.decode(model, chain.Encoded(bad, enc.seed_words, enc.prefix_words, enc.schedule), 40)


def test_wrong_prefix_or_schedule_is_an_archive_error():
    model, rng = ToyBinary(), np.random.default_rng(3)
    x = random_data(model, 20, rng)
    enc = chain.encode_random_seed(model, x, 8)
    with pytest.raises(ArchiveError):
        chain.decode(model, chain.Encoded(enc.payload, enc.seed_words, enc.prefix_words + 1, enc.schedule), 20)
    with pytest.raises(ArchiveError):
        chain.decode(model, enc, 21)  # schedule does not sum to the count


def test_memory_layout_does_not_change_the_stream():
    model, rng = ToyBinary((4, 4)), np.random.default_rng(4)
    big = random_data(model, 60, rng)
    x = big[::2]  # non-contiguous
    a = chain.encode_random_seed(model, np.ascontiguousarray(x), 7)
    b = chain.encode_random_seed(model, np.asfortranarray(x).copy(order="C"), 7)
    np.testing.assert_array_equal(a.payload, b.payload)


class Recording(ToyBinary):
    """ToyBinary that records the latents the encoder popped (the likelihood is called with them)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen = []

    def likelihood_codec(self, z):
        self.seen.append(z.copy())
        return super().likelihood_codec(z)


def test_rate_is_the_sampled_negative_elbo():
    """Net stack growth = sum over items of -log2 p(x|z) - log2 p(z) + log2 q(z|x) at the popped z, within 1%.

    The probabilities are computed independently of constriction (erf-based quantized Gaussian, exact Bernoulli).
    """
    model, rng = Recording((4, 4), half_bins=20), np.random.default_rng(5)
    n = 400
    # data the model likes: pixels follow a smooth random field, so -ELBO is well below 16 bits per item
    x = (rng.uniform(size=(n, 1, 1)) < 0.5) ^ (rng.uniform(size=(n, 4, 4)) < 0.1)
    x = x.astype(np.uint8)
    enc = chain.encode_random_seed(model, x, 50)
    z = np.concatenate(model.seen)
    K = model.K
    p = model.likelihood_params(z)
    lik = -np.sum(np.log2(np.where(x == 1, p, 1 - p)))
    prior = -np.sum(quantized_gaussian_logprob2(z, *model.prior_params(n), -K, K))
    post = -np.sum(quantized_gaussian_logprob2(z, *model.posterior_params(x), -K, K))
    neg_elbo = lik + prior - post
    net = 32 * (enc.prefix_words + enc.payload.size - enc.seed_words)
    assert abs(net - neg_elbo) <= 0.01 * neg_elbo + 64
    # what the archive stores: the net information plus the initial bits, nothing more than a word or two
    stored = 32 * enc.payload.size
    assert stored <= neg_elbo * 1.01 + enc.initial_bits + 64
    # later batches feed on pushed bits: only about the first item's pop (+ the 64-bit reserve) eats the seed
    first_pop = -np.sum(quantized_gaussian_logprob2(z[:1], *model.posterior_params(x[:1]), -K, K))
    assert enc.initial_bits <= first_pop + schedule.RESERVE_BITS + 2 * schedule.WORD_BITS


def test_splitmix64_reference_values():
    # published splitmix64 outputs for state 0
    assert [int(v) for v in schedule.splitmix64(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    w = schedule.seed_words(5)
    assert w.dtype == np.uint32 and w[0] == 0xE220A839 and w[-1] & 0x80000000
    np.testing.assert_array_equal(schedule.seed_words(7)[:4], w[:4])  # a prefix does not depend on the length


@given(sizes=st.lists(st.integers(1, 5), max_size=30))
def test_run_lengths_round_trip(sizes):
    batches = [schedule.Batch(s, 1) for s in sizes]
    runs = schedule.run_lengths(batches)
    assert schedule.expand(runs, sum(sizes)) == batches
    assert all(a[0] != b[0] for a, b in zip(runs, runs[1:]))


def test_expand_rejects_bad_schedules():
    for runs, n in [([(0, 1, 3)], 0), ([(2, 1, 0)], 0), ([(2, 1, 2)], 5), ([(2, 1, 2)], 3), ([], 1),
                    ([(2, 2, 1)], 2)]:  # the last: two particles where the archive allows one
        with pytest.raises(ArchiveError):
            schedule.expand(runs, n)


def test_next_batch_size():
    assert schedule.next_batch_size(100, 1000.0, 50, 10) == 1  # always at least one item
    assert schedule.next_batch_size(-5, 1000.0, 50, 10) == 1
    assert schedule.next_batch_size(125 * 8, 100.0, 50, 10) == 8  # 1.25 safety factor
    assert schedule.next_batch_size(10 ** 6, 1.0, 3, 10) == 3  # never more than remain
    assert schedule.next_batch_size(10 ** 6, 0.0, 50, 10) == 10  # free pops: full batches
