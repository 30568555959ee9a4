"""Convolutional VAE for 28x28 single-channel images (float, training-time).

Shapes: images (B, 1, 28, 28) with integer values (0..255 for 8-bit, 0/1 for binary);
latents (B, L, 7, 7) with L = ``latent_channels``; posterior q(z|x) = N(mu, sigma^2) diagonal, prior N(0, I).

Only layers with an exact integer counterpart are used (conv, transposed conv, ReLU, clamp), so the trained
float model converts to the bit-exact coding network in ``integer_net``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from bbans import tables

from .likelihoods import bernoulli_log_prob, logistic_mixture_log_prob, split_mixture_params

# Posterior log-sigma bounds (natural log), from the integer path, which stores round(64 * log sigma).
LOG_SIGMA_MIN, LOG_SIGMA_MAX = tables.LOG_SIGMA_MIN / 64, tables.LOG_SIGMA_MAX / 64


@dataclass
class VAEConfig:
    """Architecture. ``likelihood`` is 'logistic_mixture' (8-bit data) or 'bernoulli' (binary data)."""

    likelihood: str = "logistic_mixture"
    components: int = 5
    latent_channels: int = 8
    hidden: list = field(default_factory=lambda: [32, 64, 64])
    image_size: int = 28

    @property
    def input_scale(self) -> float:
        """The float network sees x * input_scale (x/256 for 8-bit data, x for binary)."""
        return 1.0 / 256 if self.likelihood == "logistic_mixture" else 1.0

    @property
    def out_channels(self) -> int:
        return 3 * self.components if self.likelihood == "logistic_mixture" else 1

    @property
    def latent_shape(self) -> tuple:
        return (self.latent_channels, self.image_size // 4, self.image_size // 4)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        h0, h1, h2 = config.hidden
        lc = config.latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, h0, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(h0, h1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(h1, h2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(h2, 2 * lc, 3, 1, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(lc, h2, 3, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(h2, h1, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(h1, h0, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(h0, config.out_channels, 3, 1, 1),
        )
        if config.likelihood == "logistic_mixture":
            # Start every logistic broad (log s = 3, s = 20 px): with s = 1 px a 0-valued pixel costs ~127 nats and
            # the huge early gradients disturb the encoder. σ(1.1) = 0.75 maps to log s = 3 (see likelihoods).
            with torch.no_grad():
                self.decoder[-1].bias[2 * config.components:].fill_(1.1)

    def posterior(self, x: torch.Tensor):
        """x (B,1,H,W) integer-valued -> (mu, log_sigma), each (B, L, H/4, W/4)."""
        out = self.encoder(x.float() * self.config.input_scale)
        mu, log_sigma = out.chunk(2, dim=1)
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, L, H/4, W/4) -> raw likelihood parameters (B, out_channels, H, W)."""
        return self.decoder(z)

    def log_likelihood(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per item, shape (B,)."""
        if self.config.likelihood == "logistic_mixture":
            return logistic_mixture_log_prob(x, raw, self.config.components)
        return bernoulli_log_prob(x, raw)

    def elbo_terms(self, x: torch.Tensor, reconstruction: str = "likelihood"):
        """(reconstruction cost, KL(q||p) in nats) per item, each (B,); one posterior sample.

        ``reconstruction``: "likelihood" (default) -> -log p(x|z) in nats, the true -ELBO's first term; "mse" ->
        the squared error of the decoder's mean on the [0, 1] pixel scale, sum over pixels of ((x - mean) / 255)^2
        (8-bit mixture models only; the mean of component 0): the MSE objective of seed Sec. 5.1, kept only to show
        how much worse it codes (``bbans_models.mse``)."""
        mu, log_sigma = self.posterior(x)
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        kl = 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).flatten(1).sum(1)
        if reconstruction == "mse":
            return squared_error(x, self.decode(z), self.config), kl
        if reconstruction != "likelihood":
            raise ValueError(f"unknown reconstruction {reconstruction!r}: 'likelihood' or 'mse'")
        return -self.log_likelihood(x, self.decode(z)), kl

    def neg_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample -ELBO in nats per item, shape (B,), with the analytic KL to N(0, I)."""
        rec, kl = self.elbo_terms(x)
        return rec + kl

    def iwae_log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x,z_i) - log q(z_i|x) for k posterior samples: shape (k, B), nats."""
        mu, log_sigma = self.posterior(x)
        sigma = torch.exp(log_sigma)
        out = []
        for _ in range(k):
            eps = torch.randn_like(mu)
            z = mu + sigma * eps
            log_q = (-0.5 * eps.pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
            log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
            out.append(self.log_likelihood(x, self.decode(z)) + log_prior - log_q)
        return torch.stack(out)


def squared_error(x: torch.Tensor, raw: torch.Tensor, config: VAEConfig) -> torch.Tensor:
    """Sum over pixels of ((x - mean) / 255)^2 per item, (B,); mean: component 0 of the logistic-mixture head."""
    if config.likelihood != "logistic_mixture":
        raise ValueError("the MSE reconstruction is defined for 8-bit (logistic_mixture) models only")
    means = split_mixture_params(raw, config.components)[1][:, :1]
    return ((x.to(means.dtype) - means) / 255.0).pow(2).flatten(1).sum(1)


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    """Convert a per-item cost in nats to bits per data dimension."""
    return nats / (dims * math.log(2))
