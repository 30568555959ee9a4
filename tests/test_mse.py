"""The MSE reconstruction option (seed Sec. 5.1's counter-example) and the constant-scale fit (models/mse.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bbans_models.likelihoods import split_mixture_params
from bbans_models.mse import _log_likelihood_nats, fit_constant_log_scale, set_constant_log_scale
from bbans_models.vae import ConvVAE, VAEConfig


def _tiny():
    torch.manual_seed(0)
    model = ConvVAE(VAEConfig(likelihood="logistic_mixture", components=1, latent_channels=2, hidden=[4, 4, 4]))
    x = np.random.default_rng(0).integers(0, 256, size=(16, 28, 28), dtype=np.uint8)
    return model.eval(), x


def test_mse_term_is_the_squared_error_of_the_mean_on_the_unit_scale():
    model, x = _tiny()
    xt = torch.from_numpy(x).unsqueeze(1)
    torch.manual_seed(1)
    rec, kl = model.elbo_terms(xt, "mse")
    torch.manual_seed(1)
    mu, log_sigma = model.posterior(xt)
    z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
    means = split_mixture_params(model.decode(z), 1)[1]
    expect = ((xt.float() - means) / 255).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(rec, expect)
    torch.manual_seed(1)
    _, kl_likelihood = model.elbo_terms(xt)  # same KL whatever the reconstruction term
    torch.testing.assert_close(kl, kl_likelihood)
    with pytest.raises(ValueError):
        model.elbo_terms(xt, "l1")


def test_constant_scale_fit_maximizes_the_likelihood_and_is_installed():
    model, x = _tiny()
    ls, bits = fit_constant_log_scale(model, x, grid_step=0.25)
    torch.manual_seed(0)  # the same posterior samples as the fit (seed 0, one batch)
    xt = torch.from_numpy(x).unsqueeze(1)
    mu, log_sigma = model.posterior(xt)
    raw = model.decode(mu + torch.exp(log_sigma) * torch.randn_like(mu))
    best = _log_likelihood_nats(model, xt, raw, ls)
    assert best == pytest.approx(-bits * x.size * np.log(2), rel=1e-6)
    for d in (-0.05, 0.05):
        assert _log_likelihood_nats(model, xt, raw, ls + d) < best
    set_constant_log_scale(model, ls)
    with torch.no_grad():
        log_scales = split_mixture_params(model.decode(torch.randn(3, 2, 7, 7)), 1)[2]
    torch.testing.assert_close(log_scales, torch.full_like(log_scales, ls), rtol=0, atol=1e-5)
