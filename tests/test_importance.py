"""Monte-Carlo bits-back (BB-IS, bbans/bitsback/importance.py): exact round trips, the rate identity, the schedule ramp,
the fixed-point logs the particle weights use, and the archive/CLI/API surface."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import bbans
from bbans.container import archive
from bbans.bitsback import chain
from bbans.codecs import fixedlog
from bbans.bitsback import importance
from bbans.bitsback.protocol import exported
from bbans.bitsback import schedule
from bbans.errors import ArchiveError, InputError, ModelError
from bbans.container.registry import load_model
from bbans_cli.main import cli
from bbans_models.coding_model import VAECodingModel
from tiny_vae import make_tiny_model_file, random_images
from toy_models import ToyBinary

ROOT = Path(__file__).resolve().parents[1]
BINARY_SAMPLES = ROOT / "samples" / "binarized-mnist-test-100.npy"


@pytest.fixture(scope="module", params=["bernoulli", "logistic_mixture"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-is")
    return VAECodingModel(make_tiny_model_file(folder, request.param, seed=3)), request.param


# ---------------------------------------------------------------- fixed-point logs


def test_fixed_point_logs_are_accurate():
    n = np.unique(np.concatenate([np.arange(1, 3000), 2 ** np.arange(53), 2 ** np.arange(1, 53) - 1,
                                  np.random.default_rng(0).integers(1, 2 ** 53 - 1, 20000)]).astype(np.int64))
    err = fixedlog.log2_fixed(n) / fixedlog.ONE - np.log2(n.astype(np.float64))
    assert np.abs(err).max() < 3e-6
    d = np.random.default_rng(1).integers(0, 40 * fixedlog.ONE, 20000)
    w = fixedlog.exp2_neg_fixed(d)
    assert np.abs(w - 2.0 ** (fixedlog.WEIGHT_BITS - d / fixedlog.ONE)).max() <= 1.0
    assert fixedlog.exp2_neg_fixed([0])[0] == 1 << fixedlog.WEIGHT_BITS
    assert fixedlog.exp2_neg_fixed([64 * fixedlog.ONE])[0] == 0
    with pytest.raises(ValueError):
        fixedlog.log2_fixed([0])


def test_fixed_point_tables_are_pinned():
    """Built with `decimal`, so these hashes hold on every machine; a change would break old BB-IS archives."""
    got = {fn.__name__: hashlib.sha256(fn().astype("<i8").tobytes()).hexdigest()[:16]
           for fn in (fixedlog.log2_table, fixedlog.exp2_table)}
    assert got == {"log2_table": "24f182d52f497a64", "exp2_table": "0b7df3e93b350ba1"}


# ---------------------------------------------------------------- round trips


@settings(max_examples=8, deadline=None)
@given(n=st.integers(0, 20), k=st.integers(2, 6), b=st.integers(1, 12), seed=st.integers(0, 2 ** 16))
def test_round_trip_any_particles_and_batches(tiny, n, k, b, seed):
    model, likelihood = tiny
    x = random_images(n, likelihood, seed=seed)
    enc = chain.encode(model, x, b, particles=k)
    batches = enc.ramp.batches(n - enc.seed_items)
    assert all(1 <= size <= b and 1 <= kk <= k for size, kk in batches)
    np.testing.assert_array_equal(chain.decode(model, enc, n), x)
    old = chain.encode_random_seed(model, x, b, particles=k)  # layout 1
    batches = schedule.expand(old.schedule, n, k)
    assert not batches or batches[0] == (1, 1)  # the first batch feeds on the seed with one particle
    np.testing.assert_array_equal(chain.decode(model, old, n), x)


def test_api_round_trip_and_header(tiny):
    model, likelihood = tiny
    x = random_images(25, likelihood)
    blob, report = bbans.compress_with_report(x, model, method="bits-back", particles=4, batch_size=8)
    h = bbans.read_header(blob)
    assert (report.method, h.method, h.particles) == ("bits-back-is", "bits-back-is", 4)
    assert all(len(run) == 3 for run in h.schedule)
    np.testing.assert_array_equal(bbans.decompress(blob, model), x)
    one = bbans.compress(x, model, method="bits-back", batch_size=8)  # particles=1: the standard archive
    assert bbans.read_header(one).method == "bits-back"


# ---------------------------------------------------------------- the rate


def _spy_costs(monkeypatch):
    seen = []
    original = importance.selection_weights

    def spy(costs):
        seen.append(costs.copy())
        return original(costs)

    monkeypatch.setattr(importance, "selection_weights", spy)
    return seen


@pytest.mark.parametrize("k", [2, 8, 32])
def test_net_bits_equal_minus_log_of_the_importance_estimate(monkeypatch, k):
    """Per batch, pushes minus pops = sum_i -log2((1/K) sum_k w_ik): the IWAE-K estimate, not only on average."""
    model = load_model("binarized-mnist")
    x = np.load(BINARY_SAMPLES)[:20]
    seen = _spy_costs(monkeypatch)
    coder = chain.AnsCoder(np.full(300_000, 0x9E3779B9, np.uint32))
    before = coder.num_valid_bits()
    importance.push_batch(model, coder, x, k)
    net = coder.num_valid_bits() - before
    (costs,) = seen
    estimate = float(-(np.logaddexp2.reduce(-costs / fixedlog.ONE, axis=1) - np.log2(k)).sum())
    assert abs(net - estimate) < 0.002 * estimate + 8
    # ... and the weights the decoder rebuilds are the same integers
    seen.clear()
    np.testing.assert_array_equal(importance.pop_batch(model, coder, len(x), k), x)
    np.testing.assert_array_equal(seen[0], costs)


def test_particles_lower_the_rate_toward_the_iwae_bound():
    """The expected code length is the IWAE-K bound: 50 real images, K = 8 beats K = 1 and lands near the
    float model's IWAE-8 estimate (the one-off initial bits excluded)."""
    model = exported(load_model("binarized-mnist"))  # as exported: the identity, not the coding variant, is tested
    x = np.load(BINARY_SAMPLES)[:50]
    rates = {}
    for k in (1, 8):
        coder = chain.AnsCoder(np.full(600_000, 0x9E3779B9, np.uint32))
        before = coder.num_valid_bits()
        for i in range(0, len(x), 25):
            (chain.push_batch(model, coder, x[i:i + 25]) if k == 1
             else importance.push_batch(model, coder, x[i:i + 25], k))
        rates[k] = (coder.num_valid_bits() - before) / x.size
    iwae8 = float(model.iwae_bits(x, 8).sum()) / x.size
    assert rates[8] < 0.985 * rates[1]
    assert abs(rates[8] - iwae8) < 0.02 * iwae8


# ---------------------------------------------------------------- the schedule


@settings(max_examples=200, deadline=None)
@given(avail=st.floats(-100, 1e7), per=st.floats(0, 1e4), rem=st.integers(1, 10 ** 6),
       b=st.integers(1, 1000), k=st.integers(2, 300))
def test_particle_batches_stay_within_their_limits(avail, per, rem, b, k):
    n, kk = schedule.next_particle_batch(avail, per, rem, b, k)
    assert 1 <= kk <= k and 1 <= n <= min(rem, b)
    assert kk == k or kk & (kk - 1) == 0  # ramps through powers of two
    assert n * kk <= max(schedule.PARTICLE_ROWS, kk)


def test_run_lengths_of_particle_batches_round_trip():
    sizes = [schedule.Batch(*b) for b in [(1, 1), (1, 2), (1, 2), (3, 4), (5, 4), (5, 4)]]
    runs = schedule.run_lengths(sizes)
    assert runs == [(1, 1, 1), (1, 2, 2), (3, 4, 1), (5, 4, 2)]
    assert schedule.expand(runs, 16, 4) == sizes
    with pytest.raises(ArchiveError):
        schedule.expand(runs, 16, 3)  # a batch with more particles than the archive allows
    with pytest.raises(ArchiveError, match="rows"):
        schedule.expand([(10 ** 6, 4, 1)], 10 ** 6, 4)  # larger than any encoder writes


# ---------------------------------------------------------------- errors


def test_bad_particle_arguments():
    x = np.zeros((2, 4, 4), np.uint8)
    for bad in (0, -1, 2.0, True, 10 ** 6):
        with pytest.raises(InputError):
            bbans.compress(x, ToyBinary((4, 4)), particles=bad)
    with pytest.raises(InputError, match="classical"):
        bbans.compress(x, method="lzma", particles=4)


def test_model_without_integer_probabilities_is_refused():
    with pytest.raises(ModelError, match="particles"):
        bbans.compress(np.zeros((3, 4, 4), np.uint8), ToyBinary((4, 4)), method="bits-back", particles=3)


def test_corrupt_particle_fields(tiny):
    model, likelihood = tiny
    x = random_images(6, likelihood)
    h, payload = archive.unpack(bbans.compress(x, model, method="bits-back", particles=3))
    for particles in (1, archive.MAX_PARTICLES + 1):
        h.particles = particles
        with pytest.raises(ArchiveError, match="particles"):
            bbans.decompress(archive.pack(h, payload), model)
    h, payload = archive.unpack(bbans.compress(x, model, method="bits-back", particles=3, format_version=1))
    h.schedule = [(size, 9, repeat) for size, _, repeat in h.schedule]  # layout 1 lists each batch's particles
    with pytest.raises(ArchiveError, match="particles"):
        bbans.decompress(archive.pack(h, payload), model)


# ---------------------------------------------------------------- CLI


def test_cli_compress_info_decompress_eval(tmp_path):
    x = np.load(BINARY_SAMPLES)[:12]
    src = tmp_path / "few.npy"
    np.save(src, x)
    runner = CliRunner()
    res = runner.invoke(cli, ["compress", str(src), "--particles", "4", "--method", "bits-back"])
    assert res.exit_code == 0, res.output
    assert "bits-back-is" in res.output and "IWAE-4" in res.output
    res = runner.invoke(cli, ["info", str(src) + ".bba"])
    assert res.exit_code == 0 and "up to 4 per item" in res.output, res.output
    src.rename(tmp_path / "original.npy")
    res = runner.invoke(cli, ["decompress", str(src) + ".bba"])
    assert res.exit_code == 0, res.output
    assert src.read_bytes() == (tmp_path / "original.npy").read_bytes()
    res = runner.invoke(cli, ["eval", str(src), "--particles", "4", "-k", "4"])
    assert res.exit_code == 0 and "IWAE-4 bound" in res.output and "round trip verified" in res.output, res.output
    res = runner.invoke(cli, ["compress", str(src), "--particles", "0", "-f"])
    assert res.exit_code != 0 and "Traceback" not in res.output
