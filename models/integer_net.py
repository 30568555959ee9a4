"""Integer-exact coding networks (after Ballé, Johnston & Minnen, ICLR 2019), converted from a float ConvVAE.

Every tensor is an integer. A layer computes ``acc = conv(X, W) + B`` with integer weights and activations. Each
output channel's weights are scaled so that  max|X| * sum|W[c]| + |B[c]| < 2^23: every partial sum is then an
integer that float32 represents exactly, so the float32 convolution is exact *whatever the summation order* —
any thread count, kernel, memory layout or machine gives the same integers. Rescaling multiplies by a power of two
2^k (k = e_out - e_in - e_w < 0) and floors; the rounding offset 2^(-k-1) <= 2^22 is folded into B, so

    X_out[c] = clamp(floor((conv(X, W)[c] + B[c]) * 2^k[c]), lo[c], hi[c])  =  round-half-up of the real value,

where a real value v is stored as round(v * 2^e). Hidden layers use lo = 0 (ReLU); output heads clamp to the
parameter ranges of ``bbans.tables``.

Split weights (``IntLayer.split`` = s > 0, photo models): the budget is 2^(23 + s), s more bits per weight. A float32
runner splits W = 2^s W_hi + W_lo (W_lo in [-2^(s-1), 2^(s-1))), runs two convolutions that each stay under 2^24
(checked at conversion), and adds them, the bias and the offset in float64, where every integer below 2^53 is exact.
The 23-bit budget left the photo model's hidden layers ~4 bits per weight (sum|W| < 2^23 / 1023 over ~1,000 taps),
which cost ~1% of its rate on Kodak; docs/design.md, "Integer-exact networks".

Two implementations compute the same integers: ``TorchIntNet`` (float32 torch ops, fast, CPU or GPU) and
``forward_numpy`` (the reference, numpy only, float64).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# oneDNN (torch's CPU convolutions) keeps a compiled primitive, with its scratch memory, for every convolution shape
# it meets, up to 1,024. The chain's batches grow from 1 in every chunk, so a long chunked run met new shapes chunk
# after chunk and its memory grew with the input: peak RSS 425 -> 590 MiB over ten 2,000-image chunks in one
# process, 382-388 MiB with the cache capped at 4 (same speed). Capped here, before the first convolution runs;
# a value already in the environment wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

EXACT_BITS = 23         # |acc| < 2^23 and rounding offset <= 2^22: float32 integers are exact below 2^24
MIN_SHIFT = -23         # rescale exponents k >= -23, so the offset 2^(-k-1) <= 2^22
WEIGHT_BITS = 14        # and |W_int| < 2^14 per output channel
ACT_BITS = 10           # hidden activations are integers in [0, 2^10 - 1]
ACT_CLIP = (1 << ACT_BITS) - 1


@dataclass
class IntLayer:
    """One integer conv layer. Arrays are float64 holding integers (exact) except exponents (int64)."""

    op: str            # "conv" or "convT"
    stride: int
    padding: int
    weight: np.ndarray  # (Cout, Cin, k, k) for conv; (Cin, Cout, k, k) for convT (torch layouts)
    bias: np.ndarray    # (Cout,), at scale 2^(e_in + e_w[c]), plus the rounding offset 2^(-k-1)
    e_in: int
    e_w: np.ndarray     # (Cout,)
    e_out: np.ndarray   # (Cout,)
    lo: np.ndarray      # (Cout,)
    hi: np.ndarray      # (Cout,)
    split: int = 0      # weights at a budget of 2^(23 + split); float32 runners split them (module docstring)

    @property
    def out_channels(self) -> int:
        return self.bias.shape[0]

    def rescale_factors(self) -> np.ndarray:
        """Per-channel power of two 2^k = 2^(e_out - e_in - e_w) (k < 0), float64 (exact)."""
        return np.ldexp(1.0, (self.e_out - self.e_in - self.e_w).astype(np.int64))

    def split_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W_hi, W_lo) of this layer's weights (``split_halves``)."""
        return split_halves(self.weight, self.split)


def split_halves(w: np.ndarray, split: int) -> tuple[np.ndarray, np.ndarray]:
    """(W_hi, W_lo) with w = 2^split W_hi + W_lo and W_lo in [-2^(split-1), 2^(split-1)), float64 integers: the two
    halves a float32 runner convolves (what conversion checks and ``TorchIntNet`` runs)."""
    hi = np.floor(np.ldexp(w, -split) + 0.5)
    return hi, w - np.ldexp(hi, split)


def channel_abs_sums(w: np.ndarray, transposed: bool, stride: int) -> np.ndarray:
    """Per output channel, the largest sum of |weights| that one output value accumulates.

    A conv's interior outputs use every tap. A transposed conv with stride s feeds each output from one phase of
    the kernel only (taps t with t = r mod s), so its bound is the largest phase sum, s^2 times smaller."""
    if not transposed:
        return np.abs(w).sum(axis=(1, 2, 3))
    a = np.abs(w)  # (Cin, Cout, k, k)
    return np.max([a[:, :, ry::stride, rx::stride].sum(axis=(0, 2, 3))
                   for ry in range(stride) for rx in range(stride)], axis=0)


def split_bits(conv: nn.Module, x_max: float, max_split: int) -> int:
    """The largest s <= ``max_split`` for which a layer's W_lo half (|W_lo| <= 2^(s-1) at every tap) keeps its
    float32 convolution exact: x_max * taps * 2^(s-1) < 2^24, taps = the most weights one output accumulates."""
    is_t = isinstance(conv, nn.ConvTranspose2d)
    taps = float(channel_abs_sums(np.ones(conv.weight.shape), is_t, conv.stride[0]).max())
    s = max_split
    while s > 0 and x_max * taps * 2.0 ** (s - 1) >= 1 << (EXACT_BITS + 1):
        s -= 1
    return s


def _weight_exponents(w: np.ndarray, b: np.ndarray, transposed: bool, stride: int, x_max: float, e_in: int,
                      e_out, split: int = 0) -> np.ndarray:
    """Per-output-channel exponent e_w: the largest with x_max * (accumulated sum|W_int|) + |B_int| < 2^(23 +
    split), |W_int| < 2^(14 + split) and rescale shift k = e_out - e_in - e_w in [MIN_SHIFT - split, -1]; with a
    split, both halves' convolutions under 2^24 too."""
    out_axis = 1 if transposed else 0
    axes = tuple(i for i in range(w.ndim) if i != out_axis)
    wsum = channel_abs_sums(w, transposed, stride)
    wmax = np.maximum(np.abs(w).max(axis=axes), 1e-30)
    budget = (1 << (EXACT_BITS + split)) - 1
    worst = np.maximum(x_max * wsum + np.abs(b) * 2.0 ** e_in, 1e-30)
    e_out = np.asarray(e_out, np.int64)
    e_w = np.minimum(np.floor(np.log2(budget / worst)),
                     WEIGHT_BITS + split - 1 - np.ceil(np.log2(wmax))).astype(np.int64)
    e_w = np.clip(e_w, e_out - e_in + 1, e_out - e_in - MIN_SHIFT + split)
    shape = [1] * w.ndim
    shape[out_axis] = -1
    while True:  # rounding can push the sum over the budget: step down until it fits
        w_int = np.rint(w * np.ldexp(1.0, e_w).reshape(shape))
        b_int = np.rint(b * np.ldexp(1.0, e_in + e_w))
        over = x_max * channel_abs_sums(w_int, transposed, stride) + np.abs(b_int) > budget
        if split:
            for half in split_halves(w_int, split):
                over |= x_max * channel_abs_sums(half, transposed, stride) >= 1 << (EXACT_BITS + 1)
        if not over.any():
            return e_w
        if np.any(e_w[over] <= e_out[over] - e_in + 1):
            raise ValueError("a layer cannot meet the float32 exactness budget; lower its activation bits")
        e_w = e_w - over


def convert_layer(conv: nn.Module, e_in: int, x_max: float, e_out, lo, hi, scale=None, shift=None,
                  max_split: int = 0) -> IntLayer:
    """Quantize a float Conv2d/ConvTranspose2d whose input is stored at exponent e_in with |X| <= x_max.

    ``scale``/``shift`` (per output channel, optional) fold an affine map of the output into the layer first:
    y' = scale * y + shift. ``max_split`` > 0: split weights (module docstring), as many bits as stay exact.
    """
    is_t = isinstance(conv, nn.ConvTranspose2d)
    w = conv.weight.detach().double().numpy().copy()
    b = conv.bias.detach().double().numpy().copy()
    out_axis = 1 if is_t else 0
    shape = [1] * w.ndim
    shape[out_axis] = -1
    if scale is not None:
        w = w * np.asarray(scale).reshape(shape)
        b = b * scale + shift
    cout = b.shape[0]
    full = lambda v: np.broadcast_to(np.asarray(v, np.int64), (cout,)).copy()  # noqa: E731
    e_out = full(e_out)
    split = split_bits(conv, x_max, max_split)
    e_w = _weight_exponents(w, b, is_t, conv.stride[0], x_max, e_in, e_out, split)
    w_int = np.rint(w * np.ldexp(1.0, e_w).reshape(shape))
    shift = e_out - e_in - e_w                                     # k in [MIN_SHIFT - split, -1]
    b_int = np.rint(b * np.ldexp(1.0, e_in + e_w)) + np.ldexp(1.0, -shift - 1)  # + rounding offset
    return IntLayer("convT" if is_t else "conv", conv.stride[0], conv.padding[0], w_int, b_int,
                    int(e_in), e_w, e_out, full(lo), full(hi), split)


def activation_exponent(max_value: float, clip_bits: int = 0) -> int:
    """Largest exponent e with max_value * 2^e <= ACT_CLIP (the calibration maximum is not clipped), plus
    ``clip_bits``: values above max_value / 2^clip_bits then clip, and the rest gain that many bits of resolution."""
    return int(np.floor(np.log2(ACT_CLIP / max(max_value, 1e-8)))) + clip_bits


def _feasible_exponent(conv: nn.Module, e_in: int, x_max: float, split: int = 0) -> int:
    """The largest output exponent a hidden layer can have: its rescale shift must stay <= -1, so e_w >= e_out -
    e_in + 1, while the weights' exponent e_w is bounded by the exactness budget and WEIGHT_BITS (one bit of margin
    for rounding). Only binds for layers whose activations are tiny (e.g. the nets of a latent layer that carries
    almost nothing), where the calibrated exponent would ask for more weight bits than the budget allows."""
    is_t = isinstance(conv, nn.ConvTranspose2d)
    w = conv.weight.detach().double().numpy()
    b = np.abs(conv.bias.detach().double().numpy())
    axes = (0, 2, 3) if is_t else (1, 2, 3)
    worst = np.maximum(x_max * channel_abs_sums(w, is_t, conv.stride[0]) + b * 2.0 ** e_in, 1e-30)
    wmax = np.maximum(np.abs(w).max(axis=axes), 1e-30)
    e_w = np.minimum(np.floor(np.log2(((1 << (EXACT_BITS + split)) - 1) / worst)),
                     WEIGHT_BITS + split - 1 - np.ceil(np.log2(wmax)))
    return int(e_w.min()) - 1 + e_in - 1


def convert_sequential(seq: nn.Sequential, calib_input: torch.Tensor, e_in: int, x_max: float, head,
                       max_split: int = 0, clip_bits: int = 0) -> list[IntLayer]:
    """Convert conv/ReLU pairs of ``seq``; the last conv becomes the head.

    ``head`` = dict(e_out, lo, hi, scale=None, shift=None) per output channel. Hidden activation exponents come
    from the float activations on ``calib_input`` (already scaled as the float network sees it), clipping at the
    calibration maximum / 2^``clip_bits``; ``max_split``: split weights (module docstring).
    """
    layers, mods = [], list(seq)
    h = calib_input
    i = 0
    while i < len(mods):
        conv = mods[i]
        with torch.no_grad():
            h = conv(h)
        if i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU):
            h = torch.relu(h)
            split = split_bits(conv, x_max, max_split)
            e_out = min(activation_exponent(float(h.max()), clip_bits), _feasible_exponent(conv, e_in, x_max, split))
            layers.append(convert_layer(conv, e_in, x_max, e_out, 0, ACT_CLIP, max_split=max_split))
            e_in, x_max = e_out, ACT_CLIP
            i += 2
        else:
            layers.append(convert_layer(conv, e_in, x_max, **head, max_split=max_split))
            i += 1
    return layers


# ---------------------------------------------------------------------------------------------------------------
# Forward passes. Inputs are integer arrays (B, C, H, W); outputs int64 arrays.

class TorchIntNet:
    """Integer network on torch, all in float32: convolutions exact under the 2^24 budget, then an exact
    power-of-two rescale, floor and clamp.

    On CUDA, TF32 must stay off (it truncates products); cuDNN may also pick FFT/Winograd algorithms, which are not
    exact, so GPU use needs ``torch.backends.cudnn.enabled = False`` — set here for the duration of each call.
    """

    def __init__(self, layers: list[IntLayer], device: str = "cpu"):
        self.layers = layers
        self.device = torch.device(device)
        as_t = lambda a, shape=(-1,): torch.as_tensor(np.asarray(a), dtype=torch.float32,  # noqa: E731
                                                      device=self.device).view(*shape)
        self._w = [as_t(l.weight, l.weight.shape) for l in layers]
        self._b = [as_t(l.bias) for l in layers]
        # split layers: the two float32 halves, and the bias, rescale factors and bounds in float64
        self._halves = [None if not l.split else
                        (*(as_t(half, l.weight.shape) for half in l.split_weights()),
                         *(torch.as_tensor(np.asarray(a, np.float64), device=self.device).view(1, -1, 1, 1)
                           for a in (l.bias, l.rescale_factors(), l.lo, l.hi)))
                        for l in layers]
        self._f = [as_t(l.rescale_factors(), (1, -1, 1, 1)) for l in layers]
        self._lo = [as_t(l.lo, (1, -1, 1, 1)) for l in layers]
        self._hi = [as_t(l.hi, (1, -1, 1, 1)) for l in layers]

    @torch.no_grad()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.device.type == "cuda":  # no TF32 or reduced-precision paths: products must be exact
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            cudnn_was = torch.backends.cudnn.enabled
            torch.backends.cudnn.enabled = False
        try:
            h = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=self.device)
            for i, layer in enumerate(self.layers):
                conv = F.conv2d if layer.op == "conv" else F.conv_transpose2d
                if layer.split:
                    h = self._split_layer(conv, h, layer, self._halves[i])
                    continue
                acc = conv(h, self._w[i], self._b[i], stride=layer.stride, padding=layer.padding)
                h = acc.mul_(self._f[i]).floor_().clamp_(self._lo[i], self._hi[i])  # in place: 3x faster
            return h.cpu().numpy().astype(np.int64)
        finally:
            if self.device.type == "cuda":
                torch.backends.cudnn.enabled = cudnn_was


    @staticmethod
    def _split_layer(conv, h: torch.Tensor, layer: IntLayer, halves: tuple) -> torch.Tensor:
        """A split layer: 2^s conv(h, W_hi) + conv(h, W_lo) + B, each convolution exact in float32, summed,
        rescaled, floored and clamped in float64; float32 out (|values| < 2^24, exact)."""
        w_hi, w_lo, bias, f, lo, hi = halves
        acc = conv(h, w_hi, stride=layer.stride, padding=layer.padding).double().mul_(float(2 ** layer.split))
        acc += conv(h, w_lo, stride=layer.stride, padding=layer.padding).double()
        return acc.add_(bias).mul_(f).floor_().clamp_(lo, hi).float()


def _conv_numpy(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation like torch's conv2d: x (B,Cin,H,W), w (Cout,Cin,k,k) -> (B,Cout,H',W'), exact for ints."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    # win: (B, Cin, H', W', k, k) -> contract Cin, k, k
    return np.einsum("bchwij,ocij->bohw", win, w, optimize=True)


def _conv_transpose_numpy(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Transposed conv like torch's conv_transpose2d (w: (Cin,Cout,k,k)) via zero-insertion + flipped conv."""
    b, c, h, wd = x.shape
    k = w.shape[-1]
    dil = np.zeros((b, c, (h - 1) * stride + 1, (wd - 1) * stride + 1), x.dtype)
    dil[:, :, ::stride, ::stride] = x
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return _conv_numpy(dil, w_flip, 1, k - 1 - padding)


def forward_numpy(layers: list[IntLayer], x: np.ndarray) -> np.ndarray:
    """Reference integer forward pass in numpy (float64 holding integers)."""
    h = np.ascontiguousarray(x, dtype=np.float64)
    for layer in layers:
        if layer.op == "conv":
            acc = _conv_numpy(h, layer.weight, layer.stride, layer.padding)
        else:
            acc = _conv_transpose_numpy(h, layer.weight, layer.stride, layer.padding)
        acc = acc + layer.bias.reshape(1, -1, 1, 1)
        y = np.floor(acc * layer.rescale_factors().reshape(1, -1, 1, 1))
        h = np.minimum(np.maximum(y, layer.lo.reshape(1, -1, 1, 1)), layer.hi.reshape(1, -1, 1, 1))
    return h.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Serialization into flat tensors + JSON-able metadata (for safetensors).

def layers_to_tensors(prefix: str, layers: list[IntLayer]) -> tuple[dict, list]:
    tensors, meta = {}, []
    for i, l in enumerate(layers):
        p = f"{prefix}.{i}"
        tensors[f"{p}.weight"] = torch.from_numpy(l.weight.astype(np.int32))
        tensors[f"{p}.bias"] = torch.from_numpy(l.bias.astype(np.int64))
        for name in ("e_w", "e_out", "lo", "hi"):
            tensors[f"{p}.{name}"] = torch.from_numpy(getattr(l, name).astype(np.int64))
        meta.append({"op": l.op, "stride": l.stride, "padding": l.padding, "e_in": l.e_in,
                     **({"split": l.split} if l.split else {})})
    return tensors, meta


def layers_from_tensors(prefix: str, tensors: dict, meta: list) -> list[IntLayer]:
    layers = []
    for i, m in enumerate(meta):
        p = f"{prefix}.{i}"
        get = lambda n: tensors[f"{p}.{n}"].numpy()  # noqa: E731
        layers.append(IntLayer(m["op"], int(m["stride"]), int(m["padding"]), get("weight").astype(np.float64),
                               get("bias").astype(np.float64), int(m["e_in"]), get("e_w"), get("e_out"),
                               get("lo"), get("hi"), int(m.get("split", 0))))
    return layers
