"""A fully convolutional hierarchical VAE for C-channel 8-bit images of any size divisible by 8 (float,
training-time): the photo model family.

Shapes: images x (B, C, H, W) integer-valued in 0..255 (C = 3 RGB, 1 grey), H and W multiples of 8.

- z1: (B, L1, H/4, W/4), q(z1|x) = N(mu, sigma^2) from the encoder (the image as (x - 128) / 128).
- z2: (B, L2, H/8, W/8) (``top_latent_channels`` L2 > 0), inference bottom-up and Markov, q(z1|x) q(z2|z1);
  generation top-down, p(z2) = N(0, I), p(z1|z2) = N(mu(z2), sigma(z2)^2) (Bit-Swap's two-layer model, as the
  two-layer ``vae.ConvVAE``). Without z2, p(z1) = N(0, I). With ``latent_channels`` = 0 there are no latents at all:
  the model is the autoregressive head alone, its context a learned constant (a baseline for what latents add).
- p(x|z1): per sub-pixel a mixture of discretized logistics, channels in order with PixelCNN++'s linear mean
  dependence (``photo_likelihood``). With ``ar_channels`` = A > 0 a local autoregressive head computes the
  parameters: channel c's A hidden units see ctx_c(z1) (A decoder channels) plus a masked convolution of the
  pixels (centred, (2x - 255)/255) before the current pixel in raster order, all channels, within a
  ``ar_kernel`` square, and the current pixel's channels < c; params_c = W2_c relu(hidden_c) + b2_c. So R's
  parameters see no channel of the current pixel, G's see R, B's see R and G, and no parameter sees a later pixel.

Only layers with an exact integer counterpart in ``integer_net`` are used (conv, transposed conv, masked conv,
ReLU, clamp); log-sigmas are clamped to the integer path's range (``vae.LOG_SIGMA_MIN/MAX``) and the mixture
parameters bounded as the integer coder bounds them (``photo_likelihood``). Every distribution is computed in
float32, also under bf16 autocast.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .photo_likelihood import channel_mixture_log_prob, mixture_param_count, param_groups
from .vae import (LOG_SIGMA_MAX, LOG_SIGMA_MIN, _gaussian_log_prob, _gaussian_sample, _kl_to_standard,
                  _standard_log_prob, causal_mask, iwae_log_weights)

FAMILY = "photo-vae"  # recorded in checkpoints (``train.save_float_checkpoint``) to rebuild the right model


@dataclass
class PhotoVAEConfig:
    """Architecture of ``PhotoVAE``. ``hidden`` = widths at full, 1/2 and 1/4 resolution; ``depth`` extra 3x3
    conv + ReLU layers at 1/4 resolution in both encoder and decoder."""

    channels: int = 3
    components: int = 5
    hidden: list = field(default_factory=lambda: [32, 64, 96])
    depth: int = 1
    latent_channels: int = 8       # L1 of z1 (H/4 x W/4); 0: no latents (the AR head alone)
    top_latent_channels: int = 8   # L2 of z2 (H/8 x W/8); 0: one latent layer
    top_hidden: int = 64           # width of the nets q(z2|z1) and p(z1|z2)
    ar_channels: int = 32          # hidden units per channel of the AR head; 0: sub-pixels independent given z1
    ar_kernel: int = 5             # the causal neighbourhood: rows above and pixels to the left in a k x k square
    head_kernel: int = 1           # kernel of the decoder's last (full-resolution) conv: 1 (cheap) or 3

    family = FAMILY                # a class attribute, not a field: not in to_dict()

    def __post_init__(self):
        if self.channels < 1 or self.components < 1:
            raise ValueError("channels and components must be positive")
        if not self.latent_channels and not self.ar_channels:
            raise ValueError("a model without latents needs an autoregressive head (ar_channels > 0)")
        if (self.ar_channels and self.ar_kernel % 2 == 0) or self.head_kernel % 2 == 0:
            raise ValueError("ar_kernel and head_kernel must be odd")

    @property
    def out_channels(self) -> int:
        """P: likelihood parameters per pixel (``photo_likelihood``)."""
        return mixture_param_count(self.channels, self.components)

    @property
    def decoder_channels(self) -> int:
        """What the decoder outputs per pixel: the parameters, or C x A context channels of the AR head."""
        return self.channels * self.ar_channels if self.ar_channels else self.out_channels

    @property
    def ar_input_ints(self) -> tuple:
        """(m, c, s): the AR head sees a sub-pixel x as s (m x - c), here (2x - 255) / 255; 0 outside the image."""
        return (2, 255, 1.0 / 255)

    def latent_shape(self, height: int, width: int) -> tuple:
        """z1's shape per item for an image of height x width."""
        return (self.latent_channels, height // 4, width // 4)

    def top_latent_shape(self, height: int, width: int) -> tuple:
        """z2's shape per item ((0, H/8, W/8) without z2)."""
        return (self.top_latent_channels, height // 8, width // 8)

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> "PhotoVAE":
        return PhotoVAE(self)


class ChannelMaskedConv2d(nn.Conv2d):
    """k x k convolution, C input channels -> C groups of outputs (``out_groups[o]`` = the group of output o),
    where group g sees the taps before the centre in raster order (all input channels) and, at the centre, input
    channels < g only (PixelCNN's mask "A" over channels). With k = 1 and ``centre_all`` it is a 1x1 conv whose
    group-g outputs see only inputs of group g (``in_groups``): the AR head's block-diagonal output layer."""

    def __init__(self, c_in: int, out_groups: torch.Tensor, kernel: int, in_groups: torch.Tensor | None = None):
        super().__init__(c_in, len(out_groups), kernel, 1, kernel // 2)
        mask = torch.zeros_like(self.weight)
        if in_groups is None:   # a pixel's channels: input i is channel i
            mask[:] = causal_mask(kernel)
            centre = kernel // 2
            mask[:, :, centre, centre] = (torch.arange(c_in)[None, :] < out_groups[:, None]).float()
        else:                   # block-diagonal 1x1: same group only
            mask[:, :, 0, 0] = (in_groups[None, :] == out_groups[:, None]).float()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, 1, self.padding)


class PhotoVAE(nn.Module):
    def __init__(self, config: PhotoVAEConfig):
        super().__init__()
        self.config = cfg = config
        c, (h0, h1, h2), l1, l2 = cfg.channels, cfg.hidden, cfg.latent_channels, cfg.top_latent_channels
        mid = [m for _ in range(cfg.depth) for m in (nn.Conv2d(h2, h2, 3, 1, 1), nn.ReLU())]
        if l1:
            self.encoder = nn.Sequential(
                nn.Conv2d(c, h0, 3, 1, 1), nn.ReLU(),
                nn.Conv2d(h0, h1, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(h1, h2, 4, 2, 1), nn.ReLU(),
                *mid,
                nn.Conv2d(h2, 2 * l1, 3, 1, 1),
            )
            mid = [m for _ in range(cfg.depth) for m in (nn.Conv2d(h2, h2, 3, 1, 1), nn.ReLU())]
            self.decoder = nn.Sequential(
                nn.Conv2d(l1, h2, 3, 1, 1), nn.ReLU(),
                *mid,
                nn.ConvTranspose2d(h2, h1, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(h1, h0, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(h0, cfg.decoder_channels, cfg.head_kernel, 1, cfg.head_kernel // 2),
            )
            if l2:
                th = cfg.top_hidden
                self.up = nn.Sequential(      # q(z2 | z1): H/4 -> H/8
                    nn.Conv2d(l1, th, 3, 1, 1), nn.ReLU(),
                    nn.Conv2d(th, th, 4, 2, 1), nn.ReLU(),
                    nn.Conv2d(th, 2 * l2, 3, 1, 1))
                self.down = nn.Sequential(    # p(z1 | z2): H/8 -> H/4
                    nn.Conv2d(l2, th, 3, 1, 1), nn.ReLU(),
                    nn.ConvTranspose2d(th, th, 4, 2, 1), nn.ReLU(),
                    nn.Conv2d(th, 2 * l1, 3, 1, 1))
        else:  # no latents: the AR head's context is a learned constant per hidden unit
            self.context = nn.Parameter(torch.zeros(1, cfg.decoder_channels, 1, 1))
        groups = param_groups(c, cfg.components)
        if cfg.ar_channels:
            a = cfg.ar_channels
            hidden_groups = torch.arange(c).repeat_interleave(a)
            self.ar_masked = ChannelMaskedConv2d(c, hidden_groups, cfg.ar_kernel)
            self.ar_out = ChannelMaskedConv2d(c * a, groups, 1, in_groups=hidden_groups)
        # Start every logistic broad (log s = 3, s = 20 px), as vae.ConvVAE: sigma(1.1) = 0.75 of the log-scale range.
        head = self.ar_out if cfg.ar_channels else self.decoder[-1]
        ck = c * cfg.components
        with torch.no_grad():
            head.bias[2 * ck:3 * ck].fill_(1.1)

    # ---- networks ---------------------------------------------------------------------------------------------
    @staticmethod
    def _gaussian(out: torch.Tensor):
        mu, log_sigma = out.float().chunk(2, dim=1)
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def posterior(self, x: torch.Tensor):
        """x (B,C,H,W) integer-valued -> q(z1|x) as (mu, log_sigma), each (B, L1, H/4, W/4)."""
        return self._gaussian(self.encoder((x.float() - 128.0) * (1.0 / 128)))

    def top_posterior(self, z1: torch.Tensor):
        """z1 (B, L1, H/4, W/4) -> q(z2|z1) as (mu, log_sigma), each (B, L2, H/8, W/8)."""
        return self._gaussian(self.up(z1))

    def conditional_prior(self, z2: torch.Tensor):
        """z2 (B, L2, H/8, W/8) -> p(z1|z2) as (mu, log_sigma), each (B, L1, H/4, W/4)."""
        return self._gaussian(self.down(z2))

    def decode(self, z1: torch.Tensor | None, like: torch.Tensor | None = None) -> torch.Tensor:
        """z1 (B, L1, H/4, W/4) -> decoder output (B, decoder_channels, H, W): the likelihood parameters, or the AR
        head's context. Without latents (z1 None) the learned constant context, shaped like the images ``like``."""
        if z1 is None:
            b, _, h, w = like.shape
            return self.context.expand(b, -1, h, w)
        return self.decoder(z1)

    def ar_input(self, x: torch.Tensor) -> torch.Tensor:
        """The sub-pixels as the AR head sees them: (2x - 255) / 255 in [-1, 1] (zero padding = 0 here)."""
        return x.float() * (2.0 / 255) - 1.0

    def likelihood_params(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Raw likelihood parameters (B, P, H, W) of the images x (B, C, H, W) given the decoder output. With the
        AR head a parameter of channel c at pixel p depends only on pixels before p and on p's channels < c."""
        if not self.config.ar_channels:
            return decoded
        h = torch.relu(decoded + self.ar_masked(self.ar_input(x)))
        return self.ar_out(h)

    def log_likelihood(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """log p(x|z1) in nats per item, float32 (B,), from the decoder output ``decode(z1)``."""
        return channel_mixture_log_prob(x, self.likelihood_params(x, decoded), self.config.components)

    # ---- the bound --------------------------------------------------------------------------------------------
    def latent_terms(self, x: torch.Tensor):
        """One posterior sample of z1 (None without latents) and the latent part of the single-sample -ELBO, nats
        per item (B,): KL(q(z1|x) || N(0, I)) with one layer; with two, KL(q(z2|z1) || N(0, I)) given the sampled
        z1, plus -log p(z1|z2) - H[q(z1|x)] (as ``vae.ConvVAE.latent_terms``)."""
        if not self.config.latent_channels:
            return None, torch.zeros(len(x), device=x.device)
        mu, log_sigma = self.posterior(x)
        z1 = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        if not self.config.top_latent_channels:
            return z1, _kl_to_standard(mu, log_sigma)
        mu2, log_sigma2 = self.top_posterior(z1)
        z2 = mu2 + torch.exp(log_sigma2) * torch.randn_like(mu2)
        entropy1 = (log_sigma + 0.5 * math.log(2 * math.pi * math.e)).flatten(1).sum(1)
        return z1, _kl_to_standard(mu2, log_sigma2) - _gaussian_log_prob(z1, *self.conditional_prior(z2)) - entropy1

    def layer_terms(self, x: torch.Tensor) -> dict:
        """One sample's cost split, nats per item (B,) each: "reconstruction" -log p(x|z1), and the latent cost
        per layer: "z2" = KL(q(z2|z1) || N(0, I)), "z1" = -log p(z1|z2) - H[q(z1|x)] (one layer: KL of z1)."""
        return {key: v if key == "reconstruction" else v.sum(1) for key, v in self.channel_terms(x).items()}

    def channel_terms(self, x: torch.Tensor) -> dict:
        """As ``layer_terms`` for one posterior sample, but each latent layer's cost per channel (summed over its
        positions): "z1" (B, L1), "z2" (B, L2); "reconstruction" (B,). For per-channel losses (free bits)."""
        if not self.config.latent_channels:
            return {"reconstruction": -self.log_likelihood(x, self.decode(None, x))}
        mu, log_sigma = self.posterior(x)
        z1 = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        out = {"reconstruction": -self.log_likelihood(x, self.decode(z1))}
        if not self.config.top_latent_channels:
            out["z1"] = _kl_channels(mu, log_sigma)
            return out
        mu2, log_sigma2 = self.top_posterior(z1)
        z2 = mu2 + torch.exp(log_sigma2) * torch.randn_like(mu2)
        mu1p, log_sigma1p = self.conditional_prior(z2)
        t = (z1 - mu1p) * torch.exp(-log_sigma1p)
        # -log p(z1|z2) - H[q(z1|x)], per value: 0.5 t^2 + log sigma_p + 0.5 log 2 pi - (log sigma_q + 0.5 log 2 pi e)
        out["z1"] = (0.5 * t.pow(2) + log_sigma1p - log_sigma - 0.5).flatten(2).sum(2)
        out["z2"] = _kl_channels(mu2, log_sigma2)
        return out

    def elbo_terms(self, x: torch.Tensor):
        """(reconstruction cost -log p(x|z1), latent cost) in nats per item, each (B,); one posterior sample."""
        z1, latent = self.latent_terms(x)
        return -self.log_likelihood(x, self.decode(z1, x)), latent

    def neg_elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample -ELBO in nats per item (B,) (analytic KL / entropy terms where they exist)."""
        rec, latent = self.elbo_terms(x)
        return rec + latent

    def log_weights(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, z) - log q(z|x) for one posterior sample per item (all layers), nats (B,)."""
        if not self.config.latent_channels:
            return self.log_likelihood(x, self.decode(None, x))
        z1, neg_log_q1 = _gaussian_sample(*self.posterior(x))
        log_w = self.log_likelihood(x, self.decode(z1)) + neg_log_q1
        if not self.config.top_latent_channels:
            return log_w + _standard_log_prob(z1)
        z2, neg_log_q2 = _gaussian_sample(*self.top_posterior(z1))
        return log_w + _gaussian_log_prob(z1, *self.conditional_prior(z2)) + _standard_log_prob(z2) + neg_log_q2

    def iwae_log_weights(self, x: torch.Tensor, k: int, max_rows: int = 512) -> torch.Tensor:
        """log w for k posterior samples per item: (k, B), nats; batched passes of at most ``max_rows`` images."""
        return iwae_log_weights(self.log_weights, x, k, max_rows)


def _kl_channels(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per item and channel, summed over positions, nats (B, L)."""
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).flatten(2).sum(2)
