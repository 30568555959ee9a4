"""A ConvVAE trained on squared error instead of its likelihood (the common "MSE VAE"), and how to code with it.

``mse_loss`` is the training objective (pass it as ``bbans_models.train.train(objective=mse_loss)``): the squared
error of the decoder's mean plus the latent cost, in place of the -ELBO: up to a constant, a Gaussian likelihood
with a fixed variance (1/2 on the [0, 1] pixel scale) instead of a learned one, the misconception of R. Yu, "A
Tutorial on VAEs: From Bayes' Rule to Lossless Compression" (arXiv:2006.10273, 2020), Sec. 5.1. It exists only to
measure how much worse such a model codes than one trained on its discretized likelihood.

An MSE-trained decoder predicts means only; its log-scale head was never trained. To code with it, that head
becomes a constant: its weights are zeroed and its bias set to the one value whose scale maximizes the train-set
log-likelihood of the discretized logistic (K = 1) given the decoder's means (at one posterior sample per image, as
in the ELBO). The latent cost does not depend on the scale, so this is also the scale that maximizes the train-set
ELBO among constant scales.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from bbans_models.likelihoods import LOG_SCALE_MAX, LOG_SCALE_MIN, split_mixture_params
from bbans_models.vae import ConvVAE, VAEConfig


def squared_error(x: torch.Tensor, raw: torch.Tensor, config: VAEConfig) -> torch.Tensor:
    """Sum over pixels of ((x - mean) / 255)^2 per item, (B,), for images x (B, 1, 28, 28) and raw decoder output
    (B, 3K, 28, 28); mean: component 0 of the logistic-mixture head, in pixels (0..255)."""
    if config.likelihood != "logistic_mixture":
        raise ValueError("the MSE reconstruction is defined for 8-bit (logistic_mixture) models only")
    if config.ar_channels:
        raise ValueError("the MSE reconstruction needs a model without an autoregressive head")
    means = split_mixture_params(raw, config.components)[1][:, :1]
    return ((x.to(means.dtype) - means) / 255.0).pow(2).flatten(1).sum(1)


def mse_loss(model: ConvVAE, x: torch.Tensor, beta: float):
    """The MSE objective for ``bbans_models.train.train``: (mean over the batch of squared error + beta x latent
    cost, per-item squared error + latent cost (B,), detached). One posterior sample (``ConvVAE.latent_terms``); the
    squared error is on the [0, 1] pixel scale, added with weight 1 to the latent cost in nats."""
    z1, latent = model.latent_terms(x)
    rec = squared_error(x, model.decode(z1), model.config)
    return (rec + beta * latent).mean(), (rec + latent).detach()


mse_loss.label = "MSE+KL"


def _raw_for_log_scale(log_scale: float) -> float:
    """The pre-sigmoid head value giving ``log_scale`` (natural log of pixels) under the smooth bound."""
    f = (log_scale - LOG_SCALE_MIN) / (LOG_SCALE_MAX - LOG_SCALE_MIN)
    return math.log(f / (1 - f))


@torch.no_grad()
def _log_likelihood_nats(model: ConvVAE, x: torch.Tensor, raw: torch.Tensor, log_scale: float) -> float:
    """Total log p(x) in nats over the batch with the scale head replaced by ``log_scale``."""
    k = model.config.components
    raw = raw.clone()
    raw[:, 2 * k:] = _raw_for_log_scale(log_scale)
    return float(model.log_likelihood(x, raw).sum())


@torch.no_grad()
def fit_constant_log_scale(model: ConvVAE, data: np.ndarray, seed: int = 0, batch: int = 500,
                           grid_step: float = 0.05) -> tuple[float, float]:
    """(best log-scale in natural-log pixels, its mean -log-likelihood in bits/dim) on ``data`` (N,28,28) uint8.

    Grid over the coder's log-scale range (``grid_step`` apart), then golden-section refinement to 1e-4 between the
    best grid point's neighbours."""
    if model.config.likelihood != "logistic_mixture" or model.config.components != 1:
        raise ValueError("fit_constant_log_scale needs a logistic_mixture model with components=1")
    model.eval()
    torch.manual_seed(seed)
    xs, raws = [], []
    for i in range(0, len(data), batch):
        x = torch.from_numpy(data[i:i + batch]).unsqueeze(1)
        mu, log_sigma = model.posterior(x)
        raws.append(model.decode(mu + torch.exp(log_sigma) * torch.randn_like(mu)))
        xs.append(x)

    def total(ls: float) -> float:
        return sum(_log_likelihood_nats(model, x, r, ls) for x, r in zip(xs, raws))

    lo_b, hi_b = LOG_SCALE_MIN + 1e-3, LOG_SCALE_MAX - 1e-3
    grid = np.arange(lo_b, hi_b, grid_step)
    best = int(np.argmax([total(v) for v in grid]))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = total(c), total(d)
    while b - a > 1e-4:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = total(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = total(d)
    ls = (a + b) / 2
    return ls, -total(ls) / (data.size * math.log(2))


@torch.no_grad()
def set_constant_log_scale(model: ConvVAE, log_scale: float) -> None:
    """Zero the log-scale head's weights and set its bias so every pixel gets ``log_scale`` (in place)."""
    k = model.config.components
    head = model.decoder[-1]
    head.weight[2 * k:] = 0.0
    head.bias[2 * k:] = _raw_for_log_scale(log_scale)
