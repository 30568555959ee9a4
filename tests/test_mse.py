"""The MSE objective and the constant-scale fit (benchmarks/experiments/mse.py), and ``train`` with such an
experiment's own objective.

Training on MSE instead of a likelihood is the counter-example of Yu, "A tutorial on VAEs: from Bayes' rule to
lossless compression" (2020), Sec. 5.1."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bbans_models.likelihoods import split_mixture_params
from bbans_models.train import load_float_checkpoint, train
from bbans_models.vae import ConvVAE, VAEConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # as `python benchmarks/...py` has it

from experiments.mse import (_log_likelihood_nats, fit_constant_log_scale, mse_loss,  # noqa: E402
                             set_constant_log_scale)


def _tiny(**kw):
    torch.manual_seed(0)
    model = ConvVAE(VAEConfig(**{"likelihood": "logistic_mixture", "components": 1, "latent_channels": 2,
                                 "hidden": [4, 4, 4], **kw}))
    x = np.random.default_rng(0).integers(0, 256, size=(16, 28, 28), dtype=np.uint8)
    return model.eval(), x


def test_mse_loss_is_the_squared_error_of_the_mean_on_the_unit_scale_plus_the_latent_cost():
    model, x = _tiny()
    xt = torch.from_numpy(x).unsqueeze(1)
    torch.manual_seed(1)
    loss, per_item = mse_loss(model, xt, 0.5)
    torch.manual_seed(1)
    mu, log_sigma = model.posterior(xt)
    z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
    means = split_mixture_params(model.decode(z), 1)[1]
    rec = ((xt.float() - means) / 255).pow(2).flatten(1).sum(1)
    torch.manual_seed(1)
    _, kl = model.elbo_terms(xt)  # the same latent cost as the -ELBO's, from the same posterior sample
    torch.testing.assert_close(per_item, (rec + kl).detach())
    torch.testing.assert_close(loss, (rec + 0.5 * kl).mean())
    for kw in (dict(ar_channels=4), dict(likelihood="bernoulli")):
        with pytest.raises(ValueError, match="MSE"):
            mse_loss(_tiny(**kw)[0], xt, 1.0)


def test_train_with_an_experiment_objective_reports_it_and_measures_no_elbo(tmp_path):
    _, x = _tiny()
    data = np.concatenate([x, x])
    lines = []
    out = tmp_path / "mse.float.safetensors"
    train(VAEConfig(likelihood="logistic_mixture", components=1, latent_channels=2, hidden=[4, 4, 4]), data, out,
          epochs=1, batch_size=16, test_data=x, objective=mse_loss, progress_seconds=0, log=lines.append)
    facts = load_float_checkpoint(out)[1]
    assert facts["objective"] == "MSE+KL" and "test_neg_elbo_bpd" not in facts and "reconstruction" not in facts
    assert any("MSE+KL" in line and "nats/item" in line for line in lines)
    assert not any("bits/dim" in line for line in lines)


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
