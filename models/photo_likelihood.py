"""Float (training-time) likelihood of C-channel 8-bit images: per sub-pixel a mixture of K discretized logistics,
the channels of a pixel in order (R, then G given R, then B given R and G), in nats.

Per pixel and channel c the distribution is its own K-component mixture over {0..255} (edge bins 0 and 255 take
the tails, as ``likelihoods.logistic_mixture_log_prob`` and the integer coder's ``DiscretizedLogisticMixture``)::

    p(x_c | x_<c) = sum_k pi_ck [sigma((x_c + 1/2 - m_ck) / s_ck) - sigma((x_c - 1/2 - m_ck) / s_ck)]
    m_ck = 127.5 + 127.5 u_ck + sum_{c' < c} a_cc'k (x_c' - 127.5)        (PixelCNN++'s linear mean dependence)
    a_cc'k = A (2 sigma(r_cc'k) - 1) = A tanh(r_cc'k / 2)  in (-A, A), A = COEF_BOUND

(Salimans et al., "PixelCNN++", ICLR 2017, shares one mixture indicator across the channels of a pixel; here each
channel has its own mixture weights so that every sub-pixel's conditional is a plain 1-D logistic mixture that the
integer codec codes as it is: G's and B's parameters are computed after R (and G) are known.)

Raw parameters per pixel, P = 3CK + K C(C-1)/2 channels, in this order (type-major, so that splitting is a view)::

    logits (C x K) | mean u (C x K) | log-scale raw (C x K) | coefficient raw r (one K block per pair (c, c'), c' < c,
                                                               pairs in the order (1,0), (2,0), (2,1), ...)

With C = 1 this is exactly the layout and the parameter mapping of ``likelihoods.split_mixture_params`` (logits,
means, log-scales). Mean, log-scale and logit bounds are the integer coder's (``likelihoods``); the coefficient is a
smooth bound like the log-scale, so the integer path can compute it from the same sigmoid table
(``coding_model._bounded``). All arithmetic runs in float32 even under autocast (bf16 means would be ~1 px coarse).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .likelihoods import LOG_SCALE_MAX, LOG_SCALE_MIN, LOGIT_BOUND, MEAN_MAX, MEAN_MIN

COEF_BOUND = 1.0  # |a_cc'k| < COEF_BOUND: the weight of an earlier channel's value in a later channel's mean


def channel_pairs(channels: int) -> list[tuple[int, int]]:
    """The (c, c') pairs with c' < c, in the order of the coefficient blocks: (1,0), (2,0), (2,1), ..."""
    return [(c, p) for c in range(channels) for p in range(c)]


def mixture_param_count(channels: int, components: int) -> int:
    """P: raw parameters per pixel for C channels and K components."""
    return 3 * channels * components + components * len(channel_pairs(channels))


def param_groups(channels: int, components: int) -> torch.Tensor:
    """(P,) long: the channel each raw parameter belongs to (the channel whose distribution it shapes). An
    autoregressive head may let a parameter of channel c see the current pixel's channels < c only."""
    k = components
    base = torch.arange(channels).repeat_interleave(k)                                   # (C*K,)
    pairs = torch.tensor([c for c, _ in channel_pairs(channels)], dtype=torch.long).repeat_interleave(k)
    return torch.cat([base, base, base, pairs])


@lru_cache(maxsize=None)
def _pair_index(channels: int):
    pairs = channel_pairs(channels)
    to = torch.tensor([c for c, _ in pairs], dtype=torch.long)
    return to, torch.tensor([p for _, p in pairs], dtype=torch.long)


def split_channel_mixture(raw: torch.Tensor, x: torch.Tensor, channels: int, components: int):
    """Raw parameters (B, P, H, W) and the pixels x (B, C, H, W) -> (logits, means, log_scales), each float32
    (B, C, K, H, W), the means including the linear terms of the earlier channels' values of the same pixel."""
    b, _, h, w = raw.shape
    c, k = channels, components
    raw = raw.float()
    to, frm = _pair_index(c)
    # one split (its backward is one concatenation; slicing would zero-fill a full-size gradient per slice)
    logit_raw, mean_raw, scale_raw, coef_raw = raw.split([c * k, c * k, c * k, len(to) * k], dim=1)
    logits = logit_raw.reshape(b, c, k, h, w).clamp(-LOGIT_BOUND, LOGIT_BOUND)
    means = 127.5 + 127.5 * mean_raw.reshape(b, c, k, h, w)
    log_scales = LOG_SCALE_MIN + (LOG_SCALE_MAX - LOG_SCALE_MIN) * torch.sigmoid(scale_raw.reshape(b, c, k, h, w))
    if c > 1:
        coefs = COEF_BOUND * (2 * torch.sigmoid(coef_raw.reshape(b, len(to), k, h, w)) - 1)
        earlier = (x.float() - 127.5)[:, frm.to(raw.device)].unsqueeze(2)                  # (B, pairs, 1, H, W)
        means = means.index_add(1, to.to(raw.device), coefs * earlier)
    return logits, means.clamp(MEAN_MIN, MEAN_MAX), log_scales


def _log_expm1(d: torch.Tensor) -> torch.Tensor:
    """log(exp(d) - 1) for d > 0, stable for small and large d."""
    return d + torch.log(-torch.expm1(-d))


def discretized_logistic_log_prob(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log P(x) of one discretized logistic over {0..255} per element, edges taking the tails; x broadcasts against
    means/log_scales. One pass: with a = (x + 1/2 - m)/s, b = (x - 1/2 - m)/s and softplus sp,
    interior log(sigma(a) - sigma(b)) = b + log(expm1(1/s)) - sp(a) - sp(b), bin 0 log sigma(a) = a - sp(a),
    bin 255 log(1 - sigma(b)) = -sp(b)."""
    xf = x.to(means.dtype)
    inv_s = torch.exp(-log_scales)
    centred = (xf - means) * inv_s
    half = 0.5 * inv_s
    a, b = centred + half, centred - half
    sp_a, sp_b = F.softplus(a), F.softplus(b)
    interior = b + _log_expm1(inv_s) - sp_a - sp_b
    return torch.where(xf <= 0, a - sp_a, torch.where(xf >= 255, -sp_b, interior))


def channel_mixture_log_prob_subpixels(x: torch.Tensor, raw: torch.Tensor, components: int) -> torch.Tensor:
    """log p(x_c | x_<c, params) per sub-pixel, nats, float32 (B, C, H, W); x integer-valued (B, C, H, W) in
    {0..255}, raw (B, P, H, W). One fused computation over every sub-pixel and component, log-sum-exp over K."""
    channels = x.shape[1]
    logits, means, log_scales = split_channel_mixture(raw, x, channels, components)
    log_p = discretized_logistic_log_prob(x.unsqueeze(2), means, log_scales)            # (B, C, K, H, W)
    return torch.logsumexp(torch.log_softmax(logits, dim=2) + log_p, dim=2)


def channel_mixture_log_prob(x: torch.Tensor, raw: torch.Tensor, components: int) -> torch.Tensor:
    """log p(x | params) in nats per item, float32 (B,); see ``channel_mixture_log_prob_subpixels``."""
    return channel_mixture_log_prob_subpixels(x, raw, components).flatten(1).sum(1)
