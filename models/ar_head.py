"""The integer-exact local autoregressive head: pixel parameters from the decoder's context and earlier pixels.

Float model (``vae.ConvVAE`` with ``ar_channels`` = A): params = W2 relu(ctx + masked_conv(s n)) + b2, where the
head sees pixel x as s n with the integer n = m x - c (``VAEConfig.ar_input_ints``; zero outside the image).
Integer twin, per pixel p with context ctx[p] (A ints at exponent ``e_ctx``, from the integer decoder) and its T
causal neighbours n[p] (those integers)::

    acc = ctx[p] * 2^(e_acc - e_ctx) + Wm n[p] + bm          (exponent e_acc)
    h   = clamp(floor(acc * 2^(e_h - e_acc)), 0, 2^10 - 1)    (exponent e_h; rounding offset folded into bm)
    out = clamp(floor((W2 h + b2) * 2^k), lo, hi)             (the usual integer output layer, ``integer_net``)

Every value is an integer and every sum stays below 2^53 (checked at conversion), so the float64 matrix products
are exact in any summation order: all pixels at once (encoding, a (B*P, T) x (T, A) product) and one pixel at a
time (decoding, (B, T) x (T, A)) give the same integers on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bbans.codecs import blocks, kernels
from bbans.codecs.tables import clamp

from .integer_net import (ACT_CLIP, IntLayer, activation_exponent, convert_layer, layers_from_tensors,
                          layers_to_tensors)

CTX_CLIP = (1 << 15) - 1   # context values are integers in [-CTX_CLIP, CTX_CLIP]
ACC_EXTRA_BITS = 8          # e_acc = e_ctx + this: the masked conv's weights keep ~8 more bits than the context
FLOAT64_EXACT = 1 << 52     # every |partial sum| must stay below this
ITEMS_PER_BLOCK = 8         # params_all's items per thread block (bbans.codecs.blocks)


@dataclass
class IntARHead:
    """Integer AR head. ``taps``: (T, 2) int (dy, dx) offsets of the causal neighbours, raster order;
    ``weight``: (T, A) float64 integers; ``bias``: (A,) float64 integers incl. the rounding offset;
    ``out``: the output layer (a 1x1 ``IntLayer``: weight (C, A, 1, 1))."""

    taps: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    e_ctx: int
    e_acc: int
    e_h: int
    out: IntLayer
    x_mul: int = 1   # a neighbour's integer is x_mul * x - x_sub inside the image, 0 outside
    x_sub: int = 0

    def _finish(self, ctx: np.ndarray, nb: np.ndarray) -> np.ndarray:
        """ctx (..., A) and neighbours (..., T), both integer-valued -> output integers (..., C), int64."""
        acc = ctx.astype(np.float64) * float(2 ** (self.e_acc - self.e_ctx)) + nb.astype(np.float64) @ self.weight
        acc += self.bias
        h = clamp(np.floor(acc * 2.0 ** (self.e_h - self.e_acc)), 0, ACT_CLIP)
        w2 = self.out.weight[:, :, 0, 0].T                      # (A, C)
        y = np.floor((h @ w2 + self.out.bias) * self.out.rescale_factors())
        return clamp(y, self.out.lo, self.out.hi).astype(np.int64)

    def neighbours_all(self, x: np.ndarray) -> np.ndarray:
        """x int (B, H, W) -> every pixel's causal neighbours (B, H*W, T), zero outside the image."""
        flat_index, inside = self._tap_index(x.shape[1], x.shape[2])
        nb = self.x_mul * x.reshape(len(x), -1)[:, flat_index].astype(np.int64) - self.x_sub
        nb[:, ~inside] = 0
        return nb

    def neighbours_at(self, x: np.ndarray, t: int) -> np.ndarray:
        """x int (B, H, W) -> the causal neighbours of flat position t, (B, T), zero outside the image."""
        flat_index, inside = self._tap_index(x.shape[1], x.shape[2])
        nb = self.x_mul * x.reshape(len(x), -1)[:, flat_index[t]].astype(np.int64) - self.x_sub
        nb[:, ~inside[t]] = 0
        return nb

    def _tap_index(self, hgt: int, wid: int):
        """Per flat position, its neighbours' flat indices (P, T) (0 where outside) and an inside mask (P, T)."""
        cached = getattr(self, "_index_cache", None)
        if cached is None or cached[0] != (hgt, wid):
            i, j = np.divmod(np.arange(hgt * wid), wid)
            r, c = i[:, None] + self.taps[:, 0], j[:, None] + self.taps[:, 1]
            inside = (r >= 0) & (r < hgt) & (c >= 0) & (c < wid)
            cached = ((hgt, wid), np.where(inside, r * wid + c, 0), inside)
            self._index_cache = cached
        return cached[1], cached[2]

    def params_all(self, ctx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """ctx int (B, A, H, W), x int (B, H, W) -> output integers of every pixel, (B, H*W, C)."""
        b, a = ctx.shape[:2]
        if kernels.AVAILABLE:
            flat_index, inside = self._tap_index(x.shape[1], x.shape[2])
            out = np.empty((b, flat_index.shape[0], self.out.out_channels), np.int64)
            xs, cs = np.asarray(x, np.int64).reshape(b, -1), np.asarray(ctx, np.int64).reshape(b, a, -1)
            blocks.run_blocks(lambda i, j: _all_positions_kernel(xs[i:j], flat_index, inside, self.x_mul, self.x_sub,
                                                                 cs[i:j], *self._kernel_constants(), out[i:j]),
                              b, ITEMS_PER_BLOCK)
            return out
        return self._finish(ctx.reshape(b, a, -1).transpose(0, 2, 1), self.neighbours_all(x))

    @staticmethod
    def context_by_position(ctx: np.ndarray) -> np.ndarray:
        """ctx int (B, A, H, W) -> int64 (H*W, B, A), C-contiguous: ``params_at``'s layout, where one position's
        context is one contiguous block (reading it from (B, A, H*W) strides across the whole batch)."""
        b, a = ctx.shape[:2]
        return np.ascontiguousarray(ctx.reshape(b, a, -1).transpose(2, 0, 1), dtype=np.int64)

    def params_at(self, ctx_pos: np.ndarray, x: np.ndarray, t: int) -> np.ndarray:
        """ctx_pos int64 (H*W, B, A) (``context_by_position``), x int (B, H, W) -> output integers of flat
        position t, (B, C)."""
        if kernels.AVAILABLE:
            flat_index, inside = self._tap_index(x.shape[1], x.shape[2])
            out = np.empty((len(x), 1, self.out.out_channels), np.int64)
            xs = np.asarray(x, np.int64).reshape(len(x), -1)
            _position_kernel(xs, t, flat_index, inside, self.x_mul, self.x_sub, ctx_pos[t][:, :, None],
                             *self._kernel_constants(), out)
            return out[:, 0]
        return self._finish(ctx_pos[t], self.neighbours_at(x, t))

    def _kernel_constants(self) -> tuple:
        """The head's numbers as ``_position_kernel`` takes them, computed once."""
        cached = getattr(self, "_kernel_cache", None)
        if cached is None:
            cached = (float(2 ** (self.e_acc - self.e_ctx)), np.ascontiguousarray(self.weight), self.bias,
                      2.0 ** (self.e_h - self.e_acc), float(ACT_CLIP),
                      np.ascontiguousarray(self.out.weight[:, :, 0, 0]), self.out.bias,
                      self.out.rescale_factors(), self.out.lo.astype(np.float64), self.out.hi.astype(np.float64))
            self._kernel_cache = cached
        return cached


@kernels.compiled(exact_sums=True)
def _pixel(x, b, t, index, inside, x_mul, x_sub, ctx, tc, ctx_scale, weight, bias, h_scale, h_max, w2, b2, f, lo, hi,
           h, out, to):
    """``IntARHead._finish`` for pixel t of item b, compiled (``bbans.codecs.kernels``): x int64 (B, P) pixels,
    index/inside (P, T) every position's taps, ctx int64 (B, A, *) with this pixel's context at [b, :, tc], w2 the
    output layer's (C, A) weights, h float64 (A,) scratch; writes out[b, to, :] (int64). Every value is an
    integer-valued float64 below 2^52 (checked at conversion), so the sums are exact in any order: numpy's, this
    loop's, or the compiler's (``exact_sums``). Indices, not array views, are passed: views cost more than the
    arithmetic at these sizes."""
    taps, hidden = weight.shape
    for a in range(hidden):
        h[a] = ctx[b, a, tc] * ctx_scale
    for i in range(taps):
        if inside[t, i]:
            n = float(x_mul * x[b, index[t, i]] - x_sub)
            for a in range(hidden):
                h[a] += n * weight[i, a]
    for a in range(hidden):
        h[a] = min(max(np.floor((h[a] + bias[a]) * h_scale), 0.0), h_max)
    for c in range(out.shape[2]):
        y = b2[c]
        for a in range(hidden):
            y += h[a] * w2[c, a]
        out[b, to, c] = np.int64(min(max(np.floor(y * f[c]), lo[c]), hi[c]))


@kernels.compiled(exact_sums=True)
def _position_kernel(x, t, index, inside, x_mul, x_sub, ctx, ctx_scale, weight, bias, h_scale, h_max, w2, b2, f, lo,
                     hi, out):
    """Position t of every item (decoding): x int64 (B, P), index/inside (P, T), ctx int64 (B, A, 1) the position's
    context, out int64 (B, 1, C)."""
    h = np.empty(weight.shape[1], np.float64)
    for b in range(x.shape[0]):
        _pixel(x, b, t, index, inside, x_mul, x_sub, ctx, 0, ctx_scale, weight, bias, h_scale, h_max, w2, b2, f, lo,
               hi, h, out, 0)


@kernels.compiled(exact_sums=True)
def _all_positions_kernel(x, index, inside, x_mul, x_sub, ctx, ctx_scale, weight, bias, h_scale, h_max, w2, b2, f,
                          lo, hi, out):
    """Every position of every item (encoding, weighing): x int64 (B, N) the values the taps index (N = P, or
    P x C sub-pixels for ``photo_ar_head``), index/inside (P, T), ctx int64
    (B, A, P), out int64 (B, P, C)."""
    h = np.empty(weight.shape[1], np.float64)
    for b in range(x.shape[0]):
        for t in range(index.shape[0]):
            _pixel(x, b, t, index, inside, x_mul, x_sub, ctx, t, ctx_scale, weight, bias, h_scale, h_max, w2, b2, f,
                   lo, hi, h, out, t)


def kernel_taps(mask: np.ndarray) -> np.ndarray:
    """(T, 2) (dy, dx) offsets of a (k, k) causal mask's nonzero taps, in raster order."""
    c = mask.shape[0] // 2
    return np.array([(r - c, s - c) for r, s in zip(*np.nonzero(mask))], np.int64).reshape(-1, 2)


def convert_ar_head(masked, out_conv, ctx_float: torch.Tensor, x_seen: torch.Tensor, ints: tuple, x_max: int,
                    head: dict) -> tuple[dict, IntARHead]:
    """Quantize a float AR head (``vae.MaskedConv2d`` + 1x1 ``Conv2d``) calibrated on decoder outputs ``ctx_float``
    (N, A, H, W) and pixels as the head sees them, ``x_seen`` (N, 1, H, W) = s (m x - c) with ``ints`` = (m, c, s);
    pixels go up to ``x_max``. ``head``: the output layer's dict(e_out, lo, hi, scale, shift). Returns (the
    decoder's context head dict for ``integer_net.convert_sequential``, the head)."""
    x_mul, x_sub, step = ints
    e_ctx = int(np.floor(np.log2(CTX_CLIP / max(float(ctx_float.abs().max()), 1e-8)))) - 1  # margin: 2x headroom
    e_acc = e_ctx + ACC_EXTRA_BITS
    mask = masked.mask[0, 0].numpy()
    taps = kernel_taps(mask)
    w = masked.weight.detach().double().numpy()[:, 0]                       # (A, k, k)
    c = mask.shape[0] // 2
    w_taps = np.stack([w[:, c + dy, c + dx] for dy, dx in taps], axis=0)    # (T, A), acting on x_scaled
    weight = np.rint(w_taps * step * 2.0 ** e_acc)                           # acting on the integers m x - c
    with torch.no_grad():
        hidden = torch.relu(ctx_float + masked(x_seen))
    e_h = min(activation_exponent(float(hidden.max())), e_acc - 1)
    bias = np.rint(masked.bias.detach().double().numpy() * 2.0 ** e_acc) + 2.0 ** (e_acc - e_h - 1)
    n_max = max(abs(x_mul * x_max - x_sub), x_sub)
    worst = CTX_CLIP * 2.0 ** (e_acc - e_ctx) + n_max * np.abs(weight).sum(axis=0).max() + np.abs(bias).max()
    if worst >= FLOAT64_EXACT:
        raise ValueError("the autoregressive head cannot meet the float64 exactness budget")
    out = convert_layer(out_conv, e_h, ACT_CLIP, **head)
    ctx_head = dict(e_out=e_ctx, lo=-CTX_CLIP, hi=CTX_CLIP)
    return ctx_head, IntARHead(taps, weight, bias, e_ctx, e_acc, e_h, out, int(x_mul), int(x_sub))


def ar_head_to_tensors(prefix: str, h: IntARHead) -> tuple[dict, dict]:
    tensors = {f"{prefix}.taps": torch.from_numpy(h.taps.astype(np.int64)),
               f"{prefix}.weight": torch.from_numpy(h.weight.astype(np.int64)),
               f"{prefix}.bias": torch.from_numpy(h.bias.astype(np.int64))}
    t_out, m_out = layers_to_tensors(f"{prefix}.out", [h.out])
    tensors.update(t_out)
    return tensors, {"e_ctx": h.e_ctx, "e_acc": h.e_acc, "e_h": h.e_h, "out": m_out, "x_mul": h.x_mul,
                     "x_sub": h.x_sub}


def ar_head_from_tensors(prefix: str, tensors: dict, meta: dict) -> IntARHead:
    out = layers_from_tensors(f"{prefix}.out", tensors, meta["out"])[0]
    return IntARHead(tensors[f"{prefix}.taps"].numpy().astype(np.int64),
                     tensors[f"{prefix}.weight"].numpy().astype(np.float64),
                     tensors[f"{prefix}.bias"].numpy().astype(np.float64),
                     int(meta["e_ctx"]), int(meta["e_acc"]), int(meta["e_h"]), out, int(meta["x_mul"]),
                     int(meta["x_sub"]))
