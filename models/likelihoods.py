"""Float (training-time) log-likelihoods of quantized data, in nats.

Both functions return log p(x | params) summed over all data dimensions of each item: shape (batch,), nats.
They score exactly the distributions the coder pushes (``bbans.codecs``): for 8-bit data a mixture of
discretized logistics over {0..255} whose edge bins 0 and 255 take the tails; for binary data a Bernoulli.

The parameter ranges below come from the integer coding path (``bbans.tables``), which clamps to the same bounds,
so the float model trains on the distribution family the coder can represent.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bbans.codecs import tables

# Parameter bounds, in real units, derived from the integer coder's fixed-point ranges (``bbans.tables``) so the
# float model trains on exactly the family the coder represents. The mean range is wide enough that a trained
# model never reaches it (the loss saturates long before), so the mean is effectively linear and never stuck.
MEAN_MIN, MEAN_MAX = tables.MEAN_MIN / 16, tables.MEAN_MAX / 16                      # pixels
LOG_SCALE_MIN, LOG_SCALE_MAX = tables.LOG_SCALE_MIN / 64, tables.LOG_SCALE_MAX / 64  # natural log of pixels
LOGIT_BOUND = tables.LOGIT_MAX / 32  # mixture and Bernoulli logits are clamped to +-16 nats in both paths


def split_mixture_params(raw: torch.Tensor, components: int):
    """Split decoder output (B, 3K, H, W) into (logits, means, log_scales), each (B, K, H, W).

    mean = 127.5 + 127.5 raw pixels (linear; clamped only at the far bounds), log-scale smoothly bounded:
    LOG_SCALE_MIN + (LOG_SCALE_MAX - LOG_SCALE_MIN) σ(raw), as the integer coder computes it from a fixed table.
    Measured on 8-bit MNIST: means clamped to [-32, 287] (hard, straight-through, or through a sigmoid) all
    saturated early — 80% of pixels are 0, so every mean is first pushed down — and the posterior collapsed.
    """
    logits, mean_raw, log_scale_raw = raw.split(components, dim=1)
    logits = logits.clamp(-LOGIT_BOUND, LOGIT_BOUND)
    means = (127.5 + 127.5 * mean_raw).clamp(MEAN_MIN, MEAN_MAX)
    log_scales = LOG_SCALE_MIN + (LOG_SCALE_MAX - LOG_SCALE_MIN) * torch.sigmoid(log_scale_raw)
    return logits, means, log_scales


def _log_expm1(d: torch.Tensor) -> torch.Tensor:
    """log(exp(d) - 1) for d > 0, stable for small and large d."""
    return d + torch.log(-torch.expm1(-d))


def logistic_mixture_log_prob(x: torch.Tensor, raw: torch.Tensor, components: int) -> torch.Tensor:
    """log p(x) in nats per item for x in {0..255} of shape (B, 1, H, W); raw decoder output (B, 3K, H, W)."""
    logits, means, log_scales = split_mixture_params(raw.float(), components)  # float32 even under bf16 autocast
    xf = x.to(means.dtype)
    inv_s = torch.exp(-log_scales)
    a = (xf + 0.5 - means) * inv_s  # standardized upper edge
    b = (xf - 0.5 - means) * inv_s  # standardized lower edge
    # log(sigmoid(a) - sigmoid(b)) = b + log(expm1(a - b)) - softplus(a) - softplus(b), with a - b = 1/s > 0.
    interior = b + _log_expm1(inv_s) - F.softplus(a) - F.softplus(b)
    lowest = -F.softplus(-a)  # x == 0: log sigmoid(a), the lower tail joins bin 0
    highest = -F.softplus(b)  # x == 255: log(1 - sigmoid(b)), the upper tail joins bin 255
    log_p = torch.where(xf <= 0, lowest, torch.where(xf >= 255, highest, interior))
    log_mix = torch.log_softmax(logits, dim=1)
    per_pixel = torch.logsumexp(log_mix + log_p, dim=1)
    return per_pixel.flatten(1).sum(1)


def bernoulli_log_prob(x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """log p(x) in nats per item for x in {0,1} of shape (B, 1, H, W); raw logits (B, 1, H, W)."""
    logits = raw.float().clamp(-LOGIT_BOUND, LOGIT_BOUND)  # float32 even under bf16 autocast
    xf = x.to(logits.dtype)
    return (xf * logits - F.softplus(logits)).flatten(1).sum(1)
