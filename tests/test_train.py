"""The trainer on tiny models and data (seconds, no learning asserted): objectives, checkpoints with optimizer state,
resume, progress lines; and the float model's bounds for one and two latent layers."""
from __future__ import annotations

import math

import pytest
import torch

from bbans_models.train import load_float_checkpoint, train, training_loss
from bbans_models.vae import ConvVAE, VAEConfig
from tiny_vae import random_images

TINY = dict(components=2, latent_channels=2, hidden=[4, 8, 8], top_hidden=4, ar_kernel=3)


def _config(likelihood="logistic_mixture", top=0, ar=0):
    return VAEConfig(likelihood=likelihood, top_latent_channels=top, ar_channels=ar,
                     ar_centered=likelihood == "logistic_mixture", **TINY)


@pytest.mark.parametrize("top, ar", [(0, 0), (2, 0), (0, 4), (2, 4)])
def test_train_checkpoint_and_resume_with_optimizer_state(tmp_path, top, ar):
    data = random_images(64)
    out = tmp_path / "m.float.safetensors"
    lines = []
    train(_config(top=top, ar=ar), data, out, epochs=1, batch_size=16, test_data=data[:8], kl_warmup_steps=3,
          progress_seconds=0, log=lines.append)
    model, facts = load_float_checkpoint(out)
    assert facts["epochs"] == 1 and facts["steps"] == 4 and facts["objective"] == "elbo"
    assert any("bits/dim" in line and "step" in line for line in lines)  # progress lines with the live -ELBO
    assert math.isfinite(facts["test_neg_elbo_bpd"])
    lines.clear()
    train(_config(top=top, ar=ar), data, out, epochs=2, batch_size=16, resume=True, test_data=data[:8],
          objective="iwae", iwae_k=3, lr_schedule="cosine", log=lines.append)
    assert any("restored the optimizer state" in line for line in lines)
    model2, facts2 = load_float_checkpoint(out)
    assert facts2["epochs"] == 2 and facts2["steps"] == 8 and facts2["objective"] == "iwae"
    assert model2.config == model.config
    changed = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values())]
    assert any(changed)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    """Weights, Adam moments, data order and the step count all carry over: 1 + 1 epochs == 2 epochs."""
    data = random_images(48)
    whole, split = tmp_path / "whole.st", tmp_path / "split.st"
    kw = dict(batch_size=16, kl_warmup_steps=2, log=lambda s: None)
    train(_config(), data, whole, epochs=2, **kw)
    train(_config(), data, split, epochs=1, **kw)
    train(_config(), data, split, epochs=2, resume=True, **kw)
    a, b = load_float_checkpoint(whole)[0].state_dict(), load_float_checkpoint(split)[0].state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


@pytest.mark.parametrize("top, ar", [(0, 0), (2, 4)])
def test_iwae_bound_and_loss_agree_with_the_elbo_at_k_1(top, ar):
    torch.manual_seed(0)
    model = ConvVAE(_config(top=top, ar=ar)).eval()
    x = torch.from_numpy(random_images(5)).unsqueeze(1)
    torch.manual_seed(3)
    one = model.iwae_log_weights(x, 1)[0]
    torch.manual_seed(3)
    assert torch.allclose(one, model.log_weights(x))
    torch.manual_seed(4)
    w = model.iwae_log_weights(x, 7, max_rows=10)  # two samples per pass: 4 passes
    assert w.shape == (7, 5) and torch.isfinite(w).all()
    loss, per_item = training_loss(model, x, "iwae", 1.0, 7)
    assert torch.isfinite(loss) and per_item.shape == (5,)
    with pytest.raises(ValueError, match="objective"):
        training_loss(model, x, "mse", 1.0, 7)


def test_two_layer_elbo_terms_match_the_log_weights_on_average():
    """The two-layer -ELBO (analytic KL of z2, entropy of q(z1|x)) and -log w estimate the same quantity."""
    torch.manual_seed(0)
    model = ConvVAE(_config("bernoulli", top=2, ar=4)).eval()
    x = torch.from_numpy(random_images(4, "bernoulli")).unsqueeze(1)
    rep = x.repeat(400, 1, 1, 1)
    with torch.no_grad():
        elbo = model.neg_elbo(rep).view(400, 4).mean(0)
        logw = -model.log_weights(rep).view(400, 4).mean(0)
    assert torch.allclose(elbo, logw, rtol=0.02), (elbo, logw)


def test_autoregressive_head_sees_only_earlier_pixels():
    torch.manual_seed(0)
    model = ConvVAE(_config(ar=4)).eval()
    x = torch.from_numpy(random_images(2)).unsqueeze(1)
    decoded = torch.randn(2, 4, 28, 28)
    base = model.likelihood_params(x, decoded)
    later = x.clone()
    later.view(2, -1)[:, 300:] = 255  # change pixel 300 and everything after it
    moved = model.likelihood_params(later, decoded)
    flat_a, flat_b = base.flatten(2), moved.flatten(2)
    assert torch.equal(flat_a[:, :, :301], flat_b[:, :, :301])  # pixel 300's own parameters included
    assert not torch.equal(flat_a[:, :, 301:], flat_b[:, :, 301:])
