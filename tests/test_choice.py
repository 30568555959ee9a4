"""Method choice in "auto" (bbans/container/choice.py): never worse than the classical codecs, decided on a sample
of each large chunk and checked on the whole chunk when the sample is a close call."""
from __future__ import annotations

import lzma

import numpy as np
import pytest

import bbans
from bbans.container import choice, classic
from toy_models import ToyCoin, ToyGrey, install_providers


@pytest.fixture(autouse=True)
def no_installed_models(monkeypatch):
    install_providers(monkeypatch)


class Evaluated(ToyGrey):
    """ToyGrey reporting a fixed -ELBO per item (``bits`` per value), to steer the sample comparison."""

    def __init__(self, bits_per_value: float, **kw):
        super().__init__(**kw)
        self.bits = bits_per_value

    def neg_elbo_bits(self, x):
        return np.full(len(x), self.bits * int(np.prod(self.data_shape)))

    def iwae_bits(self, x, k):
        return self.neg_elbo_bits(x)


def big_constant_data(n=6000, shape=(4, 4)) -> np.ndarray:
    return np.full((n, *shape), 7, np.uint8)  # > 64 KiB of what any classical codec crushes


def test_classical_wins_on_the_sample_and_bits_back_is_skipped():
    x = big_constant_data()
    blob, rep = bbans.compress_with_report(x, Evaluated(5.0, shape=(4, 4)), want_elbo=True)
    assert rep.method in classic.METHODS and "on a sample of 256 items" in rep.reason
    assert rep.elbo_bits is None  # no -ELBO pass for a chunk that bits-back did not code
    assert np.array_equal(bbans.decompress(blob), x)


def test_a_close_call_is_checked_on_the_whole_chunk():
    x = big_constant_data()  # the model claims a rate near the classical one: bits-back runs, then loses
    blob, rep = bbans.compress_with_report(x, Evaluated(0.001, shape=(4, 4)))
    assert rep.method in classic.METHODS and "is smaller than bits-back" in rep.reason
    best = min(len(choice.classic_archive(x, m, b"")[0]) for m in classic.METHODS)
    assert len(blob) == best


def test_bits_back_kept_where_the_model_clearly_wins():
    rng = np.random.default_rng(0)
    coin = ToyCoin((8, 8))
    x = (rng.uniform(size=(1200, 8, 8)) < rng.uniform(0.02, 0.3, (1200, 1, 1))).astype(np.uint8)  # coin items
    blob, rep = bbans.compress_with_report(x, coin)
    assert rep.method == "bits-back", rep.reason
    assert np.array_equal(bbans.decompress(blob, coin), x)


def test_sample_verdict_without_an_elbo_never_skips_bits_back():
    v = choice.sample_verdict(big_constant_data(), ToyGrey(shape=(4, 4)))
    assert v.model_bpd is None and not v.classical_wins and not v.model_clearly_wins


def test_lzma_archives_of_any_encoder_preset_decode():
    """The LZMA2 decoder needs only the dictionary size: archives written with preset 9 (before the encoder moved
    to 9-extreme for inputs over 1 MiB) decode unchanged."""
    raw = np.random.default_rng(1).integers(0, 4, 2_000_000, dtype=np.uint8).tobytes()
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 21}]
    assert classic.decompress("lzma", lzma.compress(raw, format=lzma.FORMAT_RAW, filters=filters), len(raw)) == raw


def test_background_work_hands_back_its_value_or_its_error():
    from bbans.container.choice import _Background

    assert _Background(lambda a, b: a + b, 2, 3).result() == 5

    def fails():
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        _Background(fails).result()
