"""The 2-D toy distributions and the 2-latent MLP VAE's objectives of R. Yu, "A Tutorial on VAEs: From Bayes' Rule
to Lossless Compression" (arXiv:2006.10273, 2020), Sec. 6 (benchmarks/experiments/toy2d_data.py, toy2d_vae.py)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # as `python benchmarks/toy2d.py` has it

from experiments.toy2d_data import Checkerboard, EightGaussians, TwoSpirals, entropy_bits  # noqa: E402
from experiments.toy2d_vae import MLPVAE, evaluate, train  # noqa: E402
from helpers import with_torch_threads  # noqa: E402

# TwoSpirals with 200 nodes: a coarser quadrature of the same construction, still an exact mixture of densities.
DISTS = [EightGaussians(), Checkerboard(), TwoSpirals(nodes=200)]
IDS = ["8gaussians", "checkerboard", "2spirals"]


def _grid(lim: float, n: int):
    g = (np.arange(n) + 0.5) / n * 2 * lim - lim
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx.ravel(), yy.ravel()], 1), (2 * lim / n) ** 2


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_density_integrates_to_one(dist):
    pts, cell = _grid(0.7, 280)
    total = np.exp(dist.log_density(pts)).sum() * cell
    assert abs(total - 1) < 2e-3


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_sampler_matches_density(dist):
    """Histogram of 200k samples vs the density integrated over the same 12x12 bins: total variation < 0.02."""
    lim, bins, sub = 0.6, 12, 20
    x = dist.sample(200_000, np.random.default_rng(0))
    hist, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=bins, range=[[-lim, lim], [-lim, lim]])
    pts, cell = _grid(lim, bins * sub)
    dens = np.exp(dist.log_density(pts)).reshape(bins, sub, bins, sub).sum((1, 3)) * cell
    tv = 0.5 * np.abs(hist / len(x) - dens).sum()
    assert tv < 0.02, tv


def test_entropies():
    assert entropy_bits(Checkerboard())[0] == -1.0
    h, se, _ = entropy_bits(EightGaussians())
    separated = 3 + math.log2(2 * math.pi * math.e * EightGaussians().std ** 2)  # no overlap between components
    assert se == 0 and separated - 0.02 < h < separated
    h, se, _ = entropy_bits(TwoSpirals(nodes=200), n=2000)
    assert abs(h - (-2.34)) < 5 * se + 0.02


def _tiny_model(seed: int = 0, members: int = 1) -> MLPVAE:
    torch.manual_seed(seed)
    return MLPVAE(members=members, hidden=16, layers=1)


def test_iwae_k1_is_the_single_sample_elbo():
    """With fixed noise, the k=1 IWAE loss equals -(log p(x|z) + log p(z) - log q(z|x)) computed independently."""
    model = _tiny_model()
    x = torch.from_numpy(EightGaussians().sample(64, np.random.default_rng(1)).astype(np.float32))[None]
    eps = torch.randn(1, 1, 64, 2)
    got = model.iwae_loss_nats(x, 1, eps)
    with torch.no_grad():
        mu, log_sigma = model.posterior(x)
        z = mu + log_sigma.exp() * eps[0]
        mean, log_std = model.likelihood(z)
        N = torch.distributions.Normal
        expect = -(N(mean, log_std.exp()).log_prob(x).sum(-1) + N(0.0, 1.0).log_prob(z).sum(-1)
                   - N(mu, log_sigma.exp()).log_prob(z).sum(-1))
    torch.testing.assert_close(got.detach(), expect, rtol=1e-5, atol=1e-5)


def test_iwae_k1_mean_matches_analytic_kl_elbo():
    """Sampled-KL (k=1 IWAE) and analytic-KL -ELBO agree in expectation: means over 200k draws within 5 SE."""
    model = _tiny_model()
    x = torch.from_numpy(Checkerboard().sample(1, np.random.default_rng(2)).astype(np.float32)).expand(1, 200_000, 2)
    torch.manual_seed(3)
    with torch.no_grad():
        a, b = model.iwae_loss_nats(x, 1), model.neg_elbo_nats(x)
    se = math.hypot(a.std().item(), b.std().item()) / math.sqrt(len(x))
    assert abs(a.mean().item() - b.mean().item()) < 5 * se


def test_nll_estimate_below_neg_elbo_after_a_few_steps():
    dists = [EightGaussians(), Checkerboard()]
    model = _tiny_model(members=2)
    with_torch_threads(1, train, model, [d.sample for d in dists], 200, batch=200, k=1, warmup=50, seed=0)
    x = np.stack([d.sample(300, np.random.default_rng(4)) for d in dists])
    r = evaluate(model, x, nll_samples=250, iwae_k=10)
    assert np.all(r["nll"] <= r["iwae_loss"]) and np.all(r["iwae_loss"] <= r["neg_elbo"]), r
    # a model's cross-entropy cannot beat the true entropy (up to sampling error)
    assert np.all(r["nll"] > np.array([entropy_bits(d)[0] for d in dists]) - 3 * r["nll_se"])


def test_ensemble_members_are_independent():
    """Member 0's loss gradient does not reach member 1's parameters."""
    model = _tiny_model(members=2)
    x = torch.from_numpy(np.stack([EightGaussians().sample(32, np.random.default_rng(5))] * 2).astype(np.float32))
    model.neg_elbo_nats(x)[0].sum().backward()
    for prm in model.parameters():
        assert prm.grad[0].abs().sum() > 0 and prm.grad[1].abs().sum() == 0
