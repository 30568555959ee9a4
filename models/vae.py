"""Convolutional VAEs for 28x28 single-channel images (float, training-time): one or two latent layers, pixels
independent given the latents or coded by a local autoregressive head.

Shapes: images (B, 1, 28, 28) with integer values (0..255 for 8-bit, 0/1 for binary).

- Bottom latent layer z1: (B, L1, 7, 7), L1 = ``latent_channels``; posterior q(z1|x) = N(mu, sigma^2) diagonal.
- Optional top layer z2 (``top_latent_channels`` = L2 > 0): (B, L2, 7, 7). Generative model top-down,
  p(z2) = N(0, I), p(z1|z2) = N(mu(z2), sigma(z2)^2); inference bottom-up and Markov, q(z1|x) q(z2|z1), as in
  Kingma, Abbeel & Ho, "Bit-Swap: Recursive Bits-Back Coding for Lossless Compression with Hierarchical Latent
  Variables" (ICML 2019). Without it, p(z1) = N(0, I).
- Likelihood p(x|z1): a mixture of discretized logistics (8-bit) or a Bernoulli (binary) per pixel. With
  ``ar_channels`` = A > 0 each pixel's parameters also see its causal neighbourhood (the pixels above it and to
  its left within a ``ar_kernel`` square, raster order): params = W2 relu(ctx(z1) + masked_conv(x)) + b2,
  where the decoder gives A context channels per pixel. Decoding then runs pixel by pixel, but each step is a
  small dense layer, so the decoder network itself still runs once per batch.

Only layers with an exact integer counterpart are used (conv, transposed conv, masked conv, ReLU, clamp), so the
trained float model converts to the bit-exact coding network in ``integer_net``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from bbans.codecs import tables

from .likelihoods import bernoulli_log_prob, logistic_mixture_log_prob

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
    top_latent_channels: int = 0  # 0: one latent layer; L2 > 0: a top layer z2 of L2 x 7 x 7 above z1
    top_hidden: int = 64          # channels of the two small nets q(z2|z1) and p(z1|z2)
    ar_channels: int = 0          # 0: pixels independent given z1; A > 0: local autoregressive head, A hidden units
    ar_kernel: int = 5            # the causal neighbourhood: rows above and pixels to the left in a k x k square
    ar_centered: bool = False     # the AR head sees pixels as 2x/max - 1 in [-1, 1] (True) or as x * input_scale

    @property
    def input_scale(self) -> float:
        """The float network sees x * input_scale (x/256 for 8-bit data, x for binary)."""
        return 1.0 / 256 if self.likelihood == "logistic_mixture" else 1.0

    @property
    def out_channels(self) -> int:
        """Likelihood parameters per pixel: 3K for a K-logistic mixture (logits, means, log-scales), 1 logit."""
        return 3 * self.components if self.likelihood == "logistic_mixture" else 1

    @property
    def ar_input_ints(self) -> tuple:
        """(m, c, s): the AR head sees pixel x as the integer m x - c (0 outside the image), times s."""
        top = 255 if self.likelihood == "logistic_mixture" else 1
        return (2, top, 1.0 / top) if self.ar_centered else (1, 0, self.input_scale)

    @property
    def decoder_channels(self) -> int:
        """What the decoder network outputs per pixel: the parameters, or the AR head's context channels."""
        return self.ar_channels or self.out_channels

    @property
    def latent_shape(self) -> tuple:
        """Shape of the bottom latent layer z1 (per item)."""
        return (self.latent_channels, self.image_size // 4, self.image_size // 4)

    @property
    def top_latent_shape(self) -> tuple:
        """Shape of the top latent layer z2 (per item); (0, 7, 7) without one."""
        return (self.top_latent_channels, self.image_size // 4, self.image_size // 4)

    @property
    def latent_layer_sizes(self) -> list:
        """Latent values per item of each layer, bottom first: [L1*49] or [L1*49, L2*49]."""
        sizes = [math.prod(self.latent_shape)]
        return sizes + [math.prod(self.top_latent_shape)] if self.top_latent_channels else sizes

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
            nn.Conv2d(h0, config.decoder_channels, 3, 1, 1),
        )
        if config.top_latent_channels:
            th, l2 = config.top_hidden, config.top_latent_channels
            self.up = _small_net(lc, th, 2 * l2)      # q(z2 | z1): (mu, log sigma) of z2
            self.down = _small_net(l2, th, 2 * lc)    # p(z1 | z2): (mu, log sigma) of z1
        if config.ar_channels:
            self.ar_masked = MaskedConv2d(1, config.ar_channels, config.ar_kernel)
            self.ar_out = nn.Conv2d(config.ar_channels, config.out_channels, 1)
        if config.likelihood == "logistic_mixture":
            # Start every logistic broad (log s = 3, s = 20 px): with s = 1 px a 0-valued pixel costs ~127 nats and
            # the huge early gradients disturb the encoder. σ(1.1) = 0.75 maps to log s = 3 (see likelihoods).
            head = self.ar_out if config.ar_channels else self.decoder[-1]
            with torch.no_grad():
                head.bias[2 * config.components:].fill_(1.1)

    def posterior(self, x: torch.Tensor):
        """x (B,1,H,W) integer-valued -> (mu, log_sigma), each (B, L, H/4, W/4)."""
        out = self.encoder(x.float() * self.config.input_scale)
        mu, log_sigma = out.chunk(2, dim=1)
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def top_posterior(self, z1: torch.Tensor):
        """z1 (B, L1, 7, 7) -> (mu, log_sigma) of q(z2 | z1), each (B, L2, 7, 7)."""
        mu, log_sigma = self.up(z1).chunk(2, dim=1)
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def conditional_prior(self, z2: torch.Tensor):
        """z2 (B, L2, 7, 7) -> (mu, log_sigma) of p(z1 | z2), each (B, L1, 7, 7)."""
        mu, log_sigma = self.down(z2).chunk(2, dim=1)
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z1 (B, L1, H/4, W/4) -> decoder output (B, decoder_channels, H, W): the raw likelihood parameters, or
        with an autoregressive head its context channels (``likelihood_params`` adds the pixels' part)."""
        return self.decoder(z)

    def likelihood_params(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Raw likelihood parameters (B, out_channels, H, W) of the pixels x (B, 1, H, W) given the decoder output.
        With an autoregressive head, pixel (i, j)'s parameters depend only on pixels before it in raster order."""
        if not self.config.ar_channels:
            return decoded
        h = torch.relu(decoded + self.ar_masked(self.ar_input(x)))
        return self.ar_out(h)

    def ar_input(self, x: torch.Tensor) -> torch.Tensor:
        """The pixels as the AR head's masked conv sees them (zero padding = 0 in this space)."""
        cfg = self.config
        if not cfg.ar_centered:
            return x.float() * cfg.input_scale
        top = 255.0 if cfg.likelihood == "logistic_mixture" else 1.0
        return x.float() * (2.0 / top) - 1.0

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per item, shape (B,), from the decoder output ``decode(z)``."""
        raw = self.likelihood_params(x, decoded)
        if self.config.likelihood == "logistic_mixture":
            return logistic_mixture_log_prob(x, raw, self.config.components)
        return bernoulli_log_prob(x, raw)

    def _sample_latents(self, x: torch.Tensor):
        """One reparameterized posterior sample: (z1, -log q(z1|x), and the top layer's (z2, -log q(z2|z1)) or
        None); the -log q are per item, nats, (B,)."""
        mu, log_sigma = self.posterior(x)
        z1, neg_log_q1 = _gaussian_sample(mu, log_sigma)
        if not self.config.top_latent_channels:
            return z1, neg_log_q1, None
        return z1, neg_log_q1, _gaussian_sample(*self.top_posterior(z1))

    def latent_terms(self, x: torch.Tensor):
        """One posterior sample of the bottom layer z1 (B, L1, 7, 7) and the latent cost: the latent part of the
        single-sample -ELBO, nats per item, (B,).

        Latent cost: one layer, the analytic KL(q(z1|x) || N(0, I)). Two layers: KL(q(z2|z1) || N(0, I)), analytic
        given the sampled z1, plus -log p(z1|z2) - H[q(z1|x)] (the entropy analytic), whose expectation is the rest
        of the -ELBO's latent part."""
        if self.config.top_latent_channels:
            mu, log_sigma = self.posterior(x)
            z1, _ = _gaussian_sample(mu, log_sigma)
            mu2, log_sigma2 = self.top_posterior(z1)
            z2, _ = _gaussian_sample(mu2, log_sigma2)
            entropy1 = (log_sigma + 0.5 * math.log(2 * math.pi * math.e)).flatten(1).sum(1)
            latent = (_kl_to_standard(mu2, log_sigma2) - _gaussian_log_prob(z1, *self.conditional_prior(z2))
                      - entropy1)
        else:
            mu, log_sigma = self.posterior(x)
            z1 = mu + torch.exp(log_sigma) * torch.randn_like(mu)
            latent = _kl_to_standard(mu, log_sigma)
        return z1, latent

    def elbo_terms(self, x: torch.Tensor):
        """(reconstruction cost -log p(x|z1), latent cost (``latent_terms``)) in nats per item, each (B,); one
        posterior sample. Their sum is the single-sample -ELBO."""
        z1, latent = self.latent_terms(x)
        return -self.log_likelihood(x, self.decode(z1)), latent

    def neg_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample -ELBO in nats per item, shape (B,) (analytic KL / entropy terms where they exist)."""
        rec, kl = self.elbo_terms(x)
        return rec + kl

    def log_weights(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, z) - log q(z|x) for one posterior sample per item (all layers), nats, shape (B,)."""
        z1, neg_log_q1, top = self._sample_latents(x)
        log_w = self.log_likelihood(x, self.decode(z1)) + neg_log_q1
        if top is None:
            return log_w + _standard_log_prob(z1)
        z2, neg_log_q2 = top
        return log_w + _gaussian_log_prob(z1, *self.conditional_prior(z2)) + _standard_log_prob(z2) + neg_log_q2

    def iwae_log_weights(self, x: torch.Tensor, k: int, max_rows: int = 2048) -> torch.Tensor:
        """log p(x,z_i) - log q(z_i|x) for k posterior samples: shape (k, B), nats (``iwae_log_weights``)."""
        return iwae_log_weights(self.log_weights, x, k, max_rows)


def _small_net(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Three 3x3 convs at the latent resolution, ReLU between: the nets q(z2|z1) and p(z1|z2)."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 3, 1, 1), nn.ReLU(),
                         nn.Conv2d(hidden, c_out, 3, 1, 1))


class MaskedConv2d(nn.Conv2d):
    """k x k convolution that sees only the pixels before the centre in raster order: the rows above (k // 2 of
    them, full width k) and the k // 2 pixels to the left (PixelCNN's mask "A"); zero padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, 1, kernel // 2)
        self.register_buffer("mask", causal_mask(kernel).expand_as(self.weight).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, 1, self.padding)


def causal_mask(kernel: int) -> torch.Tensor:
    """(k, k) float mask: 1 on the taps before the centre in raster order, 0 on the centre and after."""
    mask = torch.zeros(kernel, kernel)
    mask[: kernel // 2] = 1
    mask[kernel // 2, : kernel // 2] = 1
    return mask


def _gaussian_sample(mu: torch.Tensor, log_sigma: torch.Tensor):
    """Reparameterized sample of N(mu, sigma^2) and its -log density, nats per item (B,)."""
    eps = torch.randn_like(mu)
    z = mu + torch.exp(log_sigma) * eps
    return z, (0.5 * eps.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, sigma^2) summed per item, nats (B,)."""
    t = (z - mu) * torch.exp(-log_sigma)
    return (-0.5 * t.pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _standard_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed per item, nats (B,)."""
    return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def _kl_to_standard(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed per item, nats (B,)."""
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).flatten(1).sum(1)


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    """Convert a per-item cost in nats to bits per data dimension."""
    return nats / (dims * math.log(2))


def iwae_log_weights(log_weights, x: torch.Tensor, k: int, max_rows: int) -> torch.Tensor:
    """``log_weights`` (images (N, ...) -> log p(x,z) - log q(z|x) for one posterior sample each, nats (N,)) for k
    samples per item of ``x``: shape (k, B). The samples run in batched passes of at most ``max_rows`` images (at
    least one sample per pass), which bounds memory for large k."""
    per_pass = max(1, max_rows // max(len(x), 1))
    out = []
    for first in range(0, k, per_pass):
        n = min(per_pass, k - first)
        rep = x.unsqueeze(0).expand(n, *x.shape).reshape(n * len(x), *x.shape[1:])
        out.append(log_weights(rep).view(n, len(x)))
    return torch.cat(out)
