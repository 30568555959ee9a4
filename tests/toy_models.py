"""Tiny deterministic numpy models following bbans/bitsback/protocol.py, for testing the chain and the archive.

Parameters are computed with elementwise IEEE operations only (+, -, *, /, abs; no exp, no reductions, no BLAS), so
they are bit-identical whatever the batch split or memory layout. Each latent j depends on pixels j and j+1, and each
pixel j's likelihood on latents j and j-1, so the chain is not trivially factorized.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from bbans.codecs.basic import Bernoulli, Categorical, QuantizedGaussian


def random_data(model, n, rng):
    """``n`` items uniform over ``model``'s value range and data shape: uint8 (n, *data_shape)."""
    lo, hi = model.value_range
    return rng.integers(lo, hi + 1, (n, *model.data_shape)).astype(np.uint8)


def _squash(t):
    """A rational sigmoid-like map of R onto (0, 1): 0.5 + 0.5 t / (1 + |t|)."""
    return 0.5 + 0.5 * t / (1.0 + np.abs(t))


class ToyBinary:
    """Binary items of ``shape`` (values 0..1); one latent per pixel in bins -K..K (prior N(0, (K/2)^2) per bin)."""

    value_range = (0, 1)

    def __init__(self, shape=(4, 4), half_bins: int = 15, sharpness: float = 3.0, name: str = "toy-binary",
                 settings: bool = True):
        self.name, self.data_shape, self.K, self.sharpness = name, tuple(shape), int(half_bins), float(sharpness)
        self.latent_size = int(np.prod(shape))
        self.latent_bins = 2 * self.K + 1
        self.coder_settings = {"latent_bins": self.latent_bins, "toy": 1} if settings else {}
        self.sha256 = hashlib.sha256(f"{name}{shape}{half_bins}{sharpness}".encode()).hexdigest()

    # q(z|x), p(x|z), p(z) as parameter arrays (shared with the rate test's independent probability computation)
    def posterior_params(self, x):
        xf = 2.0 * x.reshape(len(x), -1).astype(np.float64) - 1.0
        mean = xf * (0.45 * self.K) + np.roll(xf, -1, axis=1) * (0.1 * self.K)
        return mean, np.full_like(mean, 0.2 * self.K)

    def likelihood_params(self, z):
        zf = z.astype(np.float64) / self.K
        p = _squash(self.sharpness * zf + 0.5 * np.roll(zf, 1, axis=1))
        return p.reshape((len(z), *self.data_shape))

    def prior_params(self, batch):
        mean = np.zeros((batch, self.latent_size))
        return mean, np.full_like(mean, 0.5 * self.K)

    def posterior_codec(self, x):
        return QuantizedGaussian(*self.posterior_params(x), -self.K, self.K)

    def likelihood_codec(self, z):
        return Bernoulli(self.likelihood_params(z))

    def prior_codec(self, batch):
        return QuantizedGaussian(*self.prior_params(batch), -self.K, self.K)


class ToyCoin:
    """Binary items of ``shape`` whose pixels all share ONE latent (a coin's bias): bits-back beats classical codecs.

    The posterior uses the exact integer count of ones per item, so it is deterministic too.
    """

    value_range = (0, 1)

    def __init__(self, shape=(8, 8), half_bins: int = 32, name: str = "toy-coin"):
        self.name, self.data_shape, self.K = name, tuple(shape), int(half_bins)
        self.latent_size = 1
        self.latent_bins = 2 * self.K + 1
        self.coder_settings = {"latent_bins": self.latent_bins}
        self.sha256 = hashlib.sha256(f"{name}{shape}{half_bins}".encode()).hexdigest()

    def posterior_codec(self, x):
        ones = x.reshape(len(x), -1).sum(axis=1, dtype=np.int64)[:, None]  # exact
        mean = (2.0 * ones / int(np.prod(self.data_shape)) - 1.0) * (0.8 * self.K)
        return QuantizedGaussian(mean, np.full(mean.shape, 0.08 * self.K), -self.K, self.K)

    def likelihood_codec(self, z):
        p = _squash(4.0 * z.astype(np.float64) / self.K)
        return Bernoulli(np.broadcast_to(p[:, :, None], (len(z), 1, int(np.prod(self.data_shape))))
                         .reshape((len(z), *self.data_shape)))

    def prior_codec(self, batch):
        return QuantizedGaussian(np.zeros((batch, 1)), np.full((batch, 1), 0.5 * self.K), -self.K, self.K)


class ToyGrey:
    """8-bit items of ``shape`` (values 0..255) with a 256-way Categorical (Cauchy-shaped) likelihood per pixel."""

    value_range = (0, 255)

    def __init__(self, shape=(3,), half_bins: int = 31, name: str = "toy-grey"):
        self.name, self.data_shape, self.K = name, tuple(shape), int(half_bins)
        self.latent_size = int(np.prod(shape))
        self.latent_bins = 2 * self.K + 1
        self.coder_settings = {"latent_bins": self.latent_bins}
        self.sha256 = hashlib.sha256(f"{name}{shape}{half_bins}".encode()).hexdigest()
        self._v = np.arange(256, dtype=np.float64)

    def posterior_codec(self, x):
        xf = (x.reshape(len(x), -1).astype(np.float64) - 127.5) / 127.5
        return QuantizedGaussian(xf * (0.9 * self.K), np.full(xf.shape, 0.05 * self.K), -self.K, self.K)

    def likelihood_codec(self, z):
        mu = 127.5 + z.astype(np.float64) * (127.5 / self.K)
        d = (self._v - mu[..., None]) / 4.0
        probs = 1.0 / (1.0 + d * d)
        return Categorical(probs.reshape((len(z), *self.data_shape, 256)))

    def prior_codec(self, batch):
        return QuantizedGaussian(np.zeros((batch, self.latent_size)), np.full((batch, self.latent_size),
                                 0.5 * self.K), -self.K, self.K)


def quantized_gaussian_logprob2(sym, mean, std, lo, hi):
    """log2 of the mass of integer ``sym`` under N(mean, std^2) binned to unit bins on lo..hi, tails folded."""
    cdf = np.frompyfunc(lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0)), 1, 1)
    upper = np.where(sym >= hi, 1.0, cdf((sym + 0.5 - mean) / std).astype(np.float64))
    lower = np.where(sym <= lo, 0.0, cdf((sym - 0.5 - mean) / std).astype(np.float64))
    return np.log2(np.maximum(upper - lower, 2.0 ** -24))


class FakeProvider:
    """A model provider (the ``bbans.models`` entry-point interface) serving the given models."""

    def __init__(self, *models):
        self.models = {m.name: m for m in models}

    def list(self):
        return [dict(name=m.name, data_shape=m.data_shape, value_range=m.value_range, description="toy",
                     sha256=m.sha256) for m in self.models.values()]

    def load(self, name):
        return self.models[name]

    def load_path(self, path):
        import os

        return self.models.get(os.path.splitext(os.path.basename(path))[0])

    def find(self, name, sha256):
        return next((m for m in self.models.values() if m.sha256.startswith(sha256)), None)  # layout 2: a prefix


class FakeEntryPoint:
    def __init__(self, name, provider=None, error=None):
        self.name, self.provider, self.error = name, provider, error

    def load(self):
        if self.error is not None:
            raise self.error
        return self.provider


def install_providers(monkeypatch, *entry_points):
    """Make bbans.container.registry see exactly these entry points."""
    from bbans.container import registry

    monkeypatch.setattr(registry, "_entry_points", lambda: list(entry_points))
