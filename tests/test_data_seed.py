"""The data-seeded bits-back chain (archive layout 2, bbans/bitsback/chain.py ``encode``): exact round trips for any
item count, batch size and particle count; the seed covers the first pop and nothing is wasted; the ramp both sides
compute; an empty stack at the end as the integrity check; and the cost of the seed items against their -log2 p(x|0).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from bbans.bitsback import chain, schedule
from bbans.errors import ArchiveError
from bbans_models.coding_model import VAECodingModel
from tiny_vae import make_tiny_model_file, random_images
from toy_models import ToyBinary, ToyCoin, ToyGrey, random_data

FAST = settings(max_examples=60, deadline=None)


models = st.one_of(
    st.builds(ToyBinary, shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), half_bins=st.integers(1, 40)),
    st.builds(ToyGrey, shape=st.tuples(st.integers(1, 4)), half_bins=st.integers(1, 64)),
)


@FAST
@given(model=models, n=st.integers(0, 60), b=st.integers(1, 40), seed=st.integers(0, 2 ** 32 - 1))
def test_round_trip(model, n, b, seed):
    x = random_data(model, n, np.random.default_rng(seed))
    enc = chain.encode(model, x, b)
    assert enc.seed_words == enc.prefix_words == 0 and enc.initial_bits == 0
    assert 0 <= enc.seed_items <= n
    batches = enc.ramp.batches(n - enc.seed_items)
    assert all(1 <= batch.items <= b for batch in batches)
    assert schedule.run_lengths(batches) == enc.schedule  # the decoder's batches are the encoder's
    np.testing.assert_array_equal(chain.decode(model, enc, n), x)


@pytest.mark.parametrize("variant", [{}, {"latent_coarsening": 3}])
def test_round_trip_with_particles_and_coarser_bins(tmp_path, variant):
    model = VAECodingModel(make_tiny_model_file(tmp_path, "bernoulli", seed=3, top=2)).with_coding_variant(variant)
    x = random_images(40, "bernoulli")
    enc = chain.encode(model, x, 16, particles=4)
    assert max(batch.particles for batch in enc.ramp.batches(40 - enc.seed_items)) == 4
    np.testing.assert_array_equal(chain.decode(model, enc, 40), x)


def test_seed_covers_one_pop_and_the_batches_grow():
    model, rng = ToyGrey((4,), half_bins=64), np.random.default_rng(1)
    x = random_data(model, 400, rng)
    calls = []
    enc = chain.encode(model, x, 50, progress=lambda d, t: calls.append(d))
    assert 1 <= enc.seed_items < 400 and calls[0] == enc.seed_items and calls[-1] == 400
    assert calls == sorted(calls)
    sizes = [batch.items for batch in enc.ramp.batches(400 - enc.seed_items)]
    assert sizes[0] >= 1 and max(sizes) == 50  # reaches the full batch
    # the seed items' code holds the first pop (with the ramp's margin) but one item fewer would not
    assert chain.seed_count(model, x, enc.ramp.pop_bits + schedule.RESERVE_BITS) == enc.seed_items


def test_all_seed_when_the_items_cannot_feed_a_pop():
    model = ToyCoin((2, 2), half_bins=64)  # 4 bits per item at most, a pop takes several
    x = np.ones((3, 2, 2), np.uint8)
    enc = chain.encode(model, x, 10)
    assert enc.seed_items == 3 and enc.schedule == []
    np.testing.assert_array_equal(chain.decode(model, enc, 3), x)


def test_the_payload_is_the_seed_code_plus_the_net_bits():
    """Nothing is wasted: the stack holds the seed items under p(x|0) plus every bits-back item's net bits."""
    model, rng = ToyGrey((4,), half_bins=64), np.random.default_rng(3)
    x = random_data(model, 300, rng)
    enc = chain.encode(model, x, 50)
    seed = chain.seed_codec(model, enc.seed_items)
    coder = chain.AnsCoder()
    seed.push(coder, x[: enc.seed_items])
    seed_bits = coder.num_valid_bits()
    scratch = chain.AnsCoder(schedule.seed_words(100_000))
    before = scratch.num_valid_bits()
    chain.push_batch(model, scratch, x[enc.seed_items:])  # the same items' net bits, on a random-seeded stack
    net = scratch.num_valid_bits() - before
    stored = 32 * enc.payload.size
    assert abs(stored - (seed_bits + net)) <= 0.02 * (seed_bits + net) + 64


def test_damage_is_caught():
    model, rng = ToyBinary(), np.random.default_rng(2)
    x = random_data(model, 60, rng)
    enc = chain.encode(model, x, 8)
    caught = 0
    for i in range(enc.payload.size):
        bad = enc.payload.copy()
        bad[i] ^= np.uint32(1 << (i % 31))
        try:
            out = chain.decode(model, chain.Encoded(bad, 0, 0, enc.schedule, 1, enc.seed_items, enc.ramp), 60)
        except ArchiveError:
            caught += 1
        else:
            assert not np.array_equal(out, x), "a flipped bit decoded to the input"  # the data CRC catches it
    # the empty-stack check alone catches nearly every flip (a flip in the bottom word can still end empty with
    # other seed items: the archive's data crc32 catches those)
    assert caught >= enc.payload.size - 2


def test_corrupt_counts_are_archive_errors():
    model, rng = ToyBinary(), np.random.default_rng(4)
    x = random_data(model, 30, rng)
    enc = chain.encode(model, x, 8)
    for seed_items in (31, -1):
        with pytest.raises(ArchiveError):
            chain.decode(model, chain.Encoded(enc.payload, 0, 0, [], 1, seed_items, enc.ramp), 30)
    with pytest.raises(ArchiveError):  # more items than the payload can hold
        chain.decode(model, enc, 10 ** 9)
    ramp = enc.ramp._replace(start_bits=4 * enc.ramp.start_bits)  # other batches than the encoder's
    assert ramp.batches(30 - enc.seed_items) != enc.ramp.batches(30 - enc.seed_items)
    try:
        out = chain.decode(model, chain.Encoded(enc.payload, 0, 0, [], 1, enc.seed_items, ramp), 30)
    except ArchiveError:
        pass
    else:
        assert not np.array_equal(out, x)


@given(start=st.integers(0, 10 ** 6), net=st.integers(0, 10 ** 4), pop=st.integers(1, 10 ** 5),
       b=st.integers(1, 300), k=st.integers(1, 64), n=st.integers(0, 2000))
def test_ramp_batches_cover_the_items(start, net, pop, b, k, n):
    batches = schedule.Ramp(start, net, pop, b, k).batches(n)
    assert sum(batch.items for batch in batches) == n
    assert all(1 <= batch.items <= b and 1 <= batch.particles <= k for batch in batches)
    assert len(batches) <= n
