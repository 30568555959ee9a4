"""Layered latents (bbans.codecs.hierarchy) and raster-order autoregressive likelihoods
(bbans.codecs.autoregressive): exact round trips, stack identities, integer-exact costs, and the tiny two-layer /
autoregressive VAEs coded end to end."""
from __future__ import annotations

import numpy as np
import pytest
import constriction
from hypothesis import given, settings, strategies as st

from bbans import api

from bbans.bitsback import chain

from bbans.bitsback import importance
from bbans.codecs.autoregressive import RasterAutoregressive
from bbans.codecs.basic import Bernoulli, Categorical, Uniform
from bbans.codecs.fixedlog import ONE
from bbans.codecs.hierarchy import LayeredLatents
from bbans.codecs.logistic import DiscretizedLogisticMixture
from bbans.bitsback.schedule import seed_words

AnsCoder = constriction.stream.stack.AnsCoder
FAST = settings(max_examples=40, deadline=None)


# ------------------------------------------------------------------------------------------ layered latents

def _layered(batch: int, sizes: list, order: list) -> LayeredLatents:
    """Layers of values 0..7; each layer's categorical depends on the sum of the layers coded before it."""

    def layer(i, known):
        assert set(known) == set(order[: order.index(i)])  # exactly the layers before i in pop order
        context = sum((v.sum(axis=1, keepdims=True) for v in known.values()), np.zeros((batch, 1), np.int64))
        probs = 1.0 + ((np.arange(8) + context[:, :, None] + i) % 8 == 0) * 20.0  # (batch, 1, 8): peaked
        return Categorical(np.broadcast_to(probs, (batch, sizes[i], 8)))

    return LayeredLatents(batch, sizes, order, layer)


@FAST
@given(batch=st.integers(0, 4), sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 999))
def test_layered_latents_round_trip_both_directions(batch, sizes, seed):
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(sizes)))
    codec = _layered(batch, sizes, order)
    z = rng.integers(0, 8, (batch, sum(sizes)))
    coder = AnsCoder(seed_words(4))
    codec.push(coder, z)
    np.testing.assert_array_equal(codec.pop(coder), z)
    assert np.array_equal(coder.get_compressed(), seed_words(4))
    popped = codec.pop(coder)  # the bits-back direction: pop (sample) then push restores the stack
    codec.push(coder, popped)
    assert np.array_equal(coder.get_compressed(), seed_words(4))


def test_layered_latents_cost_is_the_sum_of_the_layers_and_matches_the_stack():
    batch, sizes, order = 3, [4, 2, 3], [2, 0, 1]

    def layer(i, known):  # uniform over 8 + (sum of the layers coded before) mod 5 values: integer-exact costs
        return Uniform(8 + int(sum(int(v.sum()) for v in known.values())) % 5, (batch, sizes[i]))

    codec = LayeredLatents(batch, sizes, order, layer)
    coder = AnsCoder(seed_words(40))
    before = coder.num_valid_bits()
    z, cost = codec.pop_with_cost(coder)
    assert np.array_equal(cost, codec.cost(z)) and cost.shape == (batch, sum(sizes))
    taken = before - coder.num_valid_bits()
    assert abs(taken - cost.sum() / ONE) < 0.05 * taken + 2  # constriction's 24-bit quantization


def test_layered_latents_reject_a_bad_order_and_shape():
    with pytest.raises(Exception, match="permutation"):
        LayeredLatents(2, [1, 2], [0, 0], lambda i, known: Uniform(2, (2, 1)))
    with pytest.raises(Exception, match="shape"):
        _layered(2, [1, 2], [0, 1]).push(AnsCoder(seed_words(2)), np.zeros((2, 4), np.int64))


# ---------------------------------------------------------------------------------------- autoregressive

def _toy_ar(batch: int, shape: tuple, kind: str) -> RasterAutoregressive:
    """Each value's distribution depends on the value just before it (flat order) and its position."""
    n = {"mixture": 256, "bernoulli": 2}.get(kind, 5)

    def params_all(x):
        prev = np.concatenate([np.zeros((len(x), 1), np.int64), x[:, :-1]], axis=1)
        pos = np.broadcast_to(np.arange(x.shape[1]), x.shape)
        return np.stack([prev, pos], axis=-1)

    def params_at(x, t):
        prev = x[:, t - 1] if t else np.zeros(len(x), np.int64)
        return np.stack([prev, np.full(len(x), t)], axis=-1)

    def codec_for(p):
        prev, pos = p[..., 0], p[..., 1]
        if kind == "mixture":  # a logistic around the previous value, two components
            means = np.stack([prev * 16, (prev * 16 + 800) % 4096], axis=-1)
            scales = np.stack([np.full_like(prev, 60), np.full_like(prev, 200)], axis=-1)
            return DiscretizedLogisticMixture(means, scales, np.stack([pos % 3, -pos % 5], axis=-1) * 8)
        if kind == "bernoulli":
            return Bernoulli(np.where(prev == 1, 0.8, 0.1) + 0.01 * (pos % 7))
        probs = 1.0 + 10.0 * (np.arange(n) == (prev[..., None] + 1) % n) + 0.1 * pos[..., None]
        return Categorical(probs)

    return RasterAutoregressive((batch, *shape), (0, n - 1), params_all, params_at, codec_for)


@FAST
@given(batch=st.integers(0, 4), shape=st.sampled_from([(3,), (2, 3), (1, 1)]), kind=st.sampled_from(["cat", "mixture", "bernoulli"]),
       seed=st.integers(0, 999))
def test_autoregressive_round_trip_and_pop_push_identity(batch, shape, kind, seed):
    rng = np.random.default_rng(seed)
    codec = _toy_ar(batch, shape, kind)
    x = rng.integers(0, {"mixture": 256, "bernoulli": 2}.get(kind, 5), (batch, *shape))
    coder = AnsCoder(seed_words(3))
    codec.push(coder, x)
    out = codec.pop(coder)
    assert out.dtype == np.int32 and out.shape == (batch, *shape)
    np.testing.assert_array_equal(out, x)
    assert np.array_equal(coder.get_compressed(), seed_words(3))
    sample = codec.pop(coder)
    codec.push(coder, sample)
    assert np.array_equal(coder.get_compressed(), seed_words(3))


@pytest.mark.parametrize("kind", ["bernoulli", "mixture"])
def test_autoregressive_push_costs_what_neg_log2_fixed_says(kind):
    """The one-call (interleaved) push writes the per-position distributions whose integer costs it reports."""
    codec = _toy_ar(6, (4, 5), kind)
    x = np.random.default_rng(5).integers(0, 256 if kind == "mixture" else 2, (6, 4, 5))
    coder = AnsCoder(seed_words(2))
    before = coder.num_valid_bits()
    codec.push(coder, x)
    pushed = coder.num_valid_bits() - before
    cost = codec.cost(x).sum() / ONE
    assert abs(pushed - cost) < 0.01 * cost + 40


def test_autoregressive_pop_stops_on_values_out_of_range():
    """A corrupt stream decoding a value the model cannot hold must not feed it to later positions."""
    def codec_for(p):
        return Categorical(np.ones((len(p), 8)))  # can decode 0..7 while the model's range is 0..3
    codec = RasterAutoregressive((2, 3), (0, 3), lambda x: np.zeros((*x.shape, 1)), lambda x, t: np.zeros((2, 1)),
                                 codec_for)
    coder = AnsCoder(np.full(8, 0xFFFFFFFF, np.uint32))
    with pytest.raises(Exception, match="corrupt"):
        codec.pop(coder)


# ----------------------------------------------------------------------------- tiny models end to end

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from bbans_models.coding_model import VAECodingModel
    from tiny_vae import make_tiny_model_file

    folder = tmp_path_factory.mktemp("tiny_layers")
    out = {}
    for lik in ("logistic_mixture", "bernoulli"):
        for top, ar in ((3, 0), (0, 5), (3, 5)):
            path = make_tiny_model_file(folder, lik, 0, top, ar)
            out[(lik, top, ar)] = (VAECodingModel(path), VAECodingModel(path, backend="numpy"))
    return out


CONFIGS = [(lik, top, ar) for lik in ("logistic_mixture", "bernoulli") for top, ar in ((3, 0), (0, 5), (3, 5))]


@pytest.mark.parametrize("key", CONFIGS, ids=lambda k: f"{k[0]}-top{k[1]}-ar{k[2]}")
def test_tiny_model_codes_across_backends(tiny_models, key):
    from tiny_vae import random_images

    model_t, model_n = tiny_models[key]
    x = random_images(9, key[0])
    enc = chain.encode(model_t, x, 4)
    np.testing.assert_array_equal(chain.decode(model_n, enc, len(x)), x)
    assert np.array_equal(chain.encode(model_n, x, 4).payload, enc.payload)
    assert model_t.latent_size == sum(model_t.layer_sizes) == (2 + key[1]) * 49
    if key[1]:
        assert model_t.coder_settings["latent_layers"] == "bottom-up-q-top-down-p-2"
    assert model_t.coder_settings["likelihood"].startswith("raster-ar-") == bool(key[2])


@pytest.mark.parametrize("lik", ["logistic_mixture", "bernoulli"])
def test_ar_head_one_position_equals_all_positions(tiny_models, lik):
    from tiny_vae import random_images

    model = tiny_models[(lik, 0, 5)][0]
    x = random_images(3, lik).astype(np.int64)
    z = model.posterior_codec(x).pop(AnsCoder(seed_words(400)))
    ctx = model.likelihood_params(z)
    head = model._ar
    everything = head.params_all(ctx, x)
    ctx_pos = head.context_by_position(ctx)
    for t in (0, 1, 27, 28, 29, 400, 783):
        np.testing.assert_array_equal(head.params_at(ctx_pos, x, t), everything[:, t])
    later = x.copy().reshape(3, -1)
    later[:, 401:] = 7  # what comes after a position must not change its parameters
    np.testing.assert_array_equal(head.params_at(ctx_pos, later.reshape(x.shape), 401), everything[:, 401])


@pytest.mark.parametrize("key", [("bernoulli", 3, 5), ("logistic_mixture", 3, 0)], ids=str)
def test_particles_work_with_layered_and_autoregressive_models(tiny_models, key):
    from tiny_vae import random_images

    model = tiny_models[key][0]
    importance.check_model(model)
    x = random_images(6, key[0])
    blob = api.compress(x, model, method="bits-back", particles=3, batch_size=3)
    np.testing.assert_array_equal(api.decompress(blob, tiny_models[key][1]), x)
