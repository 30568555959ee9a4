"""MLP VAEs with 2 latent dimensions for 2-D continuous data, their objectives and estimators: the models of
R. Yu, "A Tutorial on VAEs: From Bayes' Rule to Lossless Compression" (arXiv:2006.10273, 2020), Sec. 6.

Model: prior p(z) = N(0, I_2); posterior q(z|x) = N(mu(x), diag sigma(x)^2); likelihood p(x|z) = N(m(z),
diag s(z)^2), a Gaussian whose variance is *learned* (a decoder output), never a fixed-variance MSE (the tutorial's
Sec. 5.1; ``experiments.mse`` measures what that costs on MNIST).
Encoder and decoder: MLPs with ReLU.

One ``MLPVAE`` holds E independent members (an ensemble axis, so the three data sets train in one loop with E
times fewer framework calls; members share nothing, and Adam's per-parameter updates keep them independent).

Units: every ``*_nats`` function returns nats per data point (one 2-D point); ``per_point_bits`` divides by ln 2.
Shapes: x (E, B, 2) float32; z (E, B, 2); log-weights (k, E, B); per-point results (E, B).

Objectives (per data point, to minimize):
  - -ELBO: -log p(x|z) + KL(q(z|x) || p(z)), one posterior sample z, analytic KL;
  - IWAE-k loss: -log (1/k) sum_i w_i, w_i = p(x, z_i) / q(z_i|x), z_i ~ q(z|x) (for k = 1 the single-sample
    ELBO with a sampled KL, equal in expectation to the -ELBO above);
  - NLL estimate: the IWAE-k loss with k = 250 importance samples (Burda et al., "Importance Weighted
    Autoencoders", ICLR 2016).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn

LOG_2PI = math.log(2 * math.pi)
Q_LOG_SIGMA = (-9.0, 3.0)  # posterior log-std bounds (natural log)
P_LOG_SIGMA = (-9.0, 2.0)  # likelihood log-std bounds (natural log, data units)


class EnsembleLinear(nn.Module):
    """E independent affine maps: (E, N, n_in) -> (E, N, n_out); initialized as torch's nn.Linear."""

    def __init__(self, members: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _mlp(members: int, n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    mods, width = [], n_in
    for _ in range(layers):
        mods += [EnsembleLinear(members, width, hidden), nn.ReLU()]
        width = hidden
    mods.append(EnsembleLinear(members, width, n_out))
    return nn.Sequential(*mods)


def gaussian_log_pdf(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag exp(log_std)^2) summed over the last axis, nats; broadcasts over leading axes."""
    return (-0.5 * ((x - mean) * torch.exp(-log_std)).pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


class MLPVAE(nn.Module):
    """E = ``members`` VAEs with ``latent`` = 2 latent dims for ``data_dim``-D points; ``layers`` hidden ReLU
    layers of width ``hidden`` in both encoder and decoder."""

    def __init__(self, members: int = 1, data_dim: int = 2, latent: int = 2, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.members, self.latent, self.data_dim = members, latent, data_dim
        self.encoder = _mlp(members, data_dim, hidden, layers, 2 * latent)
        self.decoder = _mlp(members, latent, hidden, layers, 2 * data_dim)
        with torch.no_grad():  # start the likelihood broad (s = e^-2 ~ 0.14 data units): the data span ~1
            self.decoder[-1].bias[..., data_dim:].fill_(-2.0)

    def posterior(self, x: torch.Tensor):
        """x (E, B, D) -> (mu, log_sigma), each (E, B, latent)."""
        mu, log_sigma = self.encoder(x).chunk(2, dim=-1)
        return mu, log_sigma.clamp(*Q_LOG_SIGMA)

    def likelihood(self, z: torch.Tensor):
        """z (E, N, latent) -> (mean, log_std) of p(x|z), each (E, N, D)."""
        mean, log_std = self.decoder(z).chunk(2, dim=-1)
        return mean, log_std.clamp(*P_LOG_SIGMA)

    def neg_elbo_nats(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """Single-sample -ELBO with the analytic KL (weighted by ``beta``, 1 = the true -ELBO), nats, (E, B)."""
        mu, log_sigma = self.posterior(x)
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
        rec = gaussian_log_pdf(x, *self.likelihood(z))
        kl = 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 1 - 2 * log_sigma).sum(-1)
        return beta * kl - rec

    def log_weights(self, x: torch.Tensor, k: int, eps: torch.Tensor | None = None, beta: float = 1.0):
        """log p(x|z_i) + beta (log p(z_i) - log q(z_i|x)) for k samples z_i = mu + sigma eps_i: (k, E, B), nats
        (beta = 1: the importance log-weights). ``eps`` (k, E, B, latent) fixes the noise."""
        mu, log_sigma = self.posterior(x)
        if eps is None:
            eps = torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(log_sigma) * eps                                  # (k, E, B, L)
        log_q = (-0.5 * eps.pow(2) - log_sigma - 0.5 * LOG_2PI).sum(-1)      # (k, E, B)
        log_prior = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
        e, b = mu.shape[:2]
        mean, log_std = self.likelihood(z.permute(1, 0, 2, 3).reshape(e, k * b, self.latent))
        mean, log_std = (t.reshape(e, k, b, self.data_dim).permute(1, 0, 2, 3) for t in (mean, log_std))
        return gaussian_log_pdf(x, mean, log_std) + beta * (log_prior - log_q)

    def iwae_loss_nats(self, x: torch.Tensor, k: int, eps: torch.Tensor | None = None, beta: float = 1.0):
        """-log (1/k) sum_i w_i, nats per point, (E, B): an upper bound on -log p(x) that tightens as k grows."""
        return -(torch.logsumexp(self.log_weights(x, k, eps, beta), dim=0) - math.log(k))


@torch.no_grad()
def per_point_bits(fn, x: np.ndarray, batch: int = 2000, seed: int = 0) -> np.ndarray:
    """Apply ``fn`` (float32 tensor (E, b, D) -> nats (E, b)) in batches along axis 1 under a fixed seed;
    bits per point, (E, N)."""
    torch.manual_seed(seed)
    out = [fn(torch.from_numpy(np.asarray(x[:, i:i + batch], dtype=np.float32))).double().numpy()
           for i in range(0, x.shape[1], batch)]
    return np.concatenate(out, axis=1) / math.log(2)


def evaluate(model: MLPVAE, x: np.ndarray, nll_samples: int = 250, iwae_k: int = 10, seed: int = 0) -> dict:
    """Per member: mean -ELBO, IWAE-k loss and NLL estimate (``nll_samples`` importance samples) in bits per
    point on x (E, N, D), and their standard errors over the points (``*_se``); each value an array (E,)."""
    model.eval()
    out = {}
    for name, fn, batch in (
        ("neg_elbo", model.neg_elbo_nats, 5000),
        ("iwae_loss", lambda xb: model.iwae_loss_nats(xb, iwae_k), 1000),
        ("nll", lambda xb: model.iwae_loss_nats(xb, nll_samples), 100),
    ):
        v = per_point_bits(fn, x, batch, seed)
        out[name], out[name + "_se"] = v.mean(1), v.std(1, ddof=1) / math.sqrt(v.shape[1])
    return out


def train(model: MLPVAE, samplers, iterations: int, batch: int = 200, k: int = 1, lr: float = 1e-3,
          warmup: int = 0, seed: int = 0, log=None, log_every: int = 5000) -> list:
    """Train member e on fresh exact samples ``samplers[e](n, rng)`` -> (n, D) float64 at every step.

    Objective: the -ELBO (analytic KL) when ``k`` == 1, else the IWAE-k loss; the prior/posterior term is weighted
    by beta rising linearly from 0 to 1 over the first ``warmup`` iterations (against posterior collapse: without
    it the VAE settled on the single-Gaussian fit of 8 Gaussians, +0.14 bits/point), then beta = 1. Adam at ``lr``,
    cosine-decayed to ``lr``/100. Returns logged (iteration, mean loss per member in bits/point, seconds)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations, eta_min=lr / 100)
    history, running, count, t0 = [], torch.zeros(model.members), 0, time.time()
    model.train()
    for it in range(1, iterations + 1):
        x = torch.from_numpy(np.stack([s(batch, rng) for s in samplers]).astype(np.float32))
        beta = min(1.0, it / warmup) if warmup else 1.0
        per_member = (model.neg_elbo_nats(x, beta) if k == 1 else model.iwae_loss_nats(x, k, beta=beta)).mean(1)
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        sched.step()
        running += per_member.detach()
        count += 1
        if it % log_every == 0 or it == iterations:
            history.append((it, (running / count / math.log(2)).tolist(), time.time() - t0))
            running, count = torch.zeros(model.members), 0
            if log:
                losses = ", ".join(f"{v:+.3f}" for v in history[-1][1])
                log(f"  iter {it:6d}: train loss {losses} bits/point (beta {beta:.2f}), {history[-1][2]:.0f} s")
    model.eval()
    return history
