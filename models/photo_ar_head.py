"""The integer-exact autoregressive head of the photo model family (``photo_vae``): per sub-pixel, the likelihood
parameters of channel c from the decoder's context, the causal neighbourhood (all channels) and the current pixel's
channels < c.

Float model (``photo_vae.PhotoVAE``): hidden_c = relu(ctx_c + masked_conv_c(x_seen)), params_c = W2_c hidden_c + b2_c,
where group c of the masked convolution sees every channel of the pixels before the current one in raster order
(within a k x k square) and the current pixel's channels < c. Integer twin: one ``SubpixelHead`` per channel, an
``ar_head.IntARHead`` whose taps are (dy, dx, channel) triples read from the item's sub-pixels flattened in
(H, W, C) order, so the same compiled kernels (``ar_head._pixel``) compute it, and the exactness argument of
``ar_head`` holds unchanged: every value is an integer and every sum below 2^52.

Outputs per channel c (integers, ``HEAD_LAYOUT``): K logits (1/32 nat), K means (1/16 pixel, before the linear
terms of earlier channels), K log-scale raws (1/1024, through the sigmoid table) and c x K coefficient raws (1/1024):
see ``photo_coding_model`` for how they become a ``DiscretizedLogisticMixture``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from bbans.codecs import tables

from .ar_head import ACC_EXTRA_BITS, CTX_CLIP, FLOAT64_EXACT, IntARHead
from .integer_net import ACT_CLIP, activation_exponent, convert_layer, layers_from_tensors, layers_to_tensors
from .photo_likelihood import channel_pairs, param_groups

LOGIT_EXPONENT, MEAN_EXPONENT, BOUNDED_RAW_EXPONENT = 5, 4, 10  # as export.py's for the MNIST models


@dataclass
class SubpixelHead(IntARHead):
    """``IntARHead`` for channel ``channel`` of C-channel items: ``taps`` (T, 3) int (dy, dx, input channel) in
    raster order; x is read as the flat (H*W*C) sub-pixels, so ``params_all``/``params_at`` take x (B, H, W, C) and
    return one row per pixel (P = H*W)."""

    channels: int = 3

    def _tap_index(self, hgt: int, wid: int):
        """Per pixel, its taps' flat sub-pixel indices (P, T) (0 where outside) and an inside mask (P, T)."""
        cached = getattr(self, "_index_cache", None)
        if cached is None or cached[0] != (hgt, wid):
            i, j = np.divmod(np.arange(hgt * wid), wid)
            r, c = i[:, None] + self.taps[:, 0], j[:, None] + self.taps[:, 1]
            inside = (r >= 0) & (r < hgt) & (c >= 0) & (c < wid)
            flat = (r * wid + c) * self.channels + self.taps[:, 2]
            cached = ((hgt, wid), np.where(inside, flat, 0), inside)
            self._index_cache = cached
        return cached[1], cached[2]


def head_rows(channel: int, channels: int, components: int) -> list[int]:
    """The float head's output rows (``photo_likelihood`` raw layout) that channel ``channel``'s integer head
    computes, in its order: logits, means, log-scale raws, then one coefficient block per earlier channel."""
    c, k, ck = channel, components, channels * components
    rows = [*range(c * k, c * k + k), *range(ck + c * k, ck + c * k + k), *range(2 * ck + c * k, 2 * ck + c * k + k)]
    for p, (to, _) in enumerate(channel_pairs(channels)):
        if to == c:
            rows += range(3 * ck + p * k, 3 * ck + p * k + k)
    return rows


def _head_dict(channel: int, components: int) -> dict:
    """The integer output layer's dict(e_out, lo, hi, scale, shift) of channel ``channel``'s parameters."""
    k, lim = components, tables.SIGMOID_HALF
    n_coef = channel * k
    return dict(
        e_out=[LOGIT_EXPONENT] * k + [MEAN_EXPONENT] * k + [BOUNDED_RAW_EXPONENT] * (k + n_coef),
        lo=[-tables.LOGIT_MAX] * k + [tables.MEAN_MIN] * k + [-lim] * (k + n_coef),
        hi=[tables.LOGIT_MAX] * k + [tables.MEAN_MAX] * k + [lim] * (k + n_coef),
        scale=np.array([1.0] * k + [127.5] * k + [1.0] * (k + n_coef)),
        shift=np.array([0.0] * k + [127.5] * k + [0.0] * (k + n_coef)),
    )


def convert_channel_ar_head(model, ctx_float: torch.Tensor, x_seen: torch.Tensor, x_max: int = 255,
                            max_split: int = 0, clip_bits: int = 0):
    """Quantize ``model``'s (a ``PhotoVAE``) AR head, calibrated on decoder outputs ``ctx_float`` (N, C*A, H, W)
    and sub-pixels as the head sees them, ``x_seen`` (N, C, H, W); ``clip_bits``/``max_split`` as
    ``integer_net.convert_sequential``'s (the output layer runs in float64, so its split halves are never used).
    Returns (the decoder's context head dict for ``integer_net.convert_sequential``, [one ``SubpixelHead`` per
    channel])."""
    cfg = model.config
    c_n, a, k = cfg.channels, cfg.ar_channels, cfg.components
    x_mul, x_sub, step = cfg.ar_input_ints
    e_ctx = int(np.floor(np.log2(CTX_CLIP / max(float(ctx_float.abs().max()), 1e-8)))) - 1  # 2x headroom
    e_acc = e_ctx + ACC_EXTRA_BITS
    with torch.no_grad():
        hidden = torch.relu(ctx_float + model.ar_masked(x_seen))
    e_h = min(activation_exponent(float(hidden.max()), clip_bits), e_acc - 1)
    masked = model.ar_masked
    w_all = (masked.weight * masked.mask).detach().double().numpy()         # (C*A, C, k, k)
    mask = masked.mask.numpy()
    centre = mask.shape[-1] // 2
    out_w = (model.ar_out.weight * model.ar_out.mask).detach()[:, :, 0, 0]  # (P, C*A)
    out_b = model.ar_out.bias.detach()
    groups = param_groups(c_n, k)
    heads = []
    n_max = max(abs(x_mul * x_max - x_sub), x_sub)
    for c in range(c_n):
        units = slice(c * a, (c + 1) * a)
        m = mask[c * a]                                                      # (C, k, k): one group's mask
        taps = np.array([(y - centre, x - centre, j) for y in range(m.shape[1]) for x in range(m.shape[2])
                         for j in range(c_n) if m[j, y, x]], np.int64).reshape(-1, 3)
        w_taps = np.stack([w_all[units, j, centre + dy, centre + dx] for dy, dx, j in taps], axis=0)  # (T, A)
        weight = np.rint(w_taps * step * 2.0 ** e_acc)
        bias = np.rint(masked.bias.detach().double().numpy()[units] * 2.0 ** e_acc) + 2.0 ** (e_acc - e_h - 1)
        worst = CTX_CLIP * 2.0 ** (e_acc - e_ctx) + n_max * np.abs(weight).sum(axis=0).max() + np.abs(bias).max()
        if worst >= FLOAT64_EXACT:
            raise ValueError("the autoregressive head cannot meet the float64 exactness budget")
        rows = head_rows(c, c_n, k)
        assert all(int(groups[r]) == c for r in rows)
        conv = nn.Conv2d(a, len(rows), 1)
        with torch.no_grad():
            conv.weight.copy_(out_w[rows][:, units, None, None])
            conv.bias.copy_(out_b[rows])
        out = convert_layer(conv, e_h, ACT_CLIP, **_head_dict(c, k), max_split=max_split)
        heads.append(SubpixelHead(taps, weight, bias, e_ctx, e_acc, e_h, out, int(x_mul), int(x_sub), c_n))
    return dict(e_out=e_ctx, lo=-CTX_CLIP, hi=CTX_CLIP), heads


def heads_to_tensors(prefix: str, heads: list[SubpixelHead]) -> tuple[dict, dict]:
    """Tensors and layout of the per-channel heads, under ``prefix``.<channel>."""
    tensors, layout = {}, []
    for c, h in enumerate(heads):
        p = f"{prefix}.{c}"
        tensors.update({f"{p}.taps": torch.from_numpy(h.taps.astype(np.int64)),
                        f"{p}.weight": torch.from_numpy(h.weight.astype(np.int64)),
                        f"{p}.bias": torch.from_numpy(h.bias.astype(np.int64))})
        t_out, m_out = layers_to_tensors(f"{p}.out", [h.out])
        tensors.update(t_out)
        layout.append({"e_ctx": h.e_ctx, "e_acc": h.e_acc, "e_h": h.e_h, "out": m_out, "x_mul": h.x_mul,
                       "x_sub": h.x_sub, "channels": h.channels})
    return tensors, {"heads": layout}


def heads_from_tensors(prefix: str, tensors: dict, meta: dict) -> list[SubpixelHead]:
    heads = []
    for c, m in enumerate(meta["heads"]):
        p = f"{prefix}.{c}"
        out = layers_from_tensors(f"{p}.out", tensors, m["out"])[0]
        heads.append(SubpixelHead(tensors[f"{p}.taps"].numpy().astype(np.int64),
                                  tensors[f"{p}.weight"].numpy().astype(np.float64),
                                  tensors[f"{p}.bias"].numpy().astype(np.float64),
                                  int(m["e_ctx"]), int(m["e_acc"]), int(m["e_h"]), out, int(m["x_mul"]),
                                  int(m["x_sub"]), int(m["channels"])))
    return heads
