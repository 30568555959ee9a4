"""The photo model family (``photo_vae``) as a bbans image model: integer-exact codecs over T x T x C tiles.

Items are tiles uint8 (B, T, T, C) (``bbans.container.tiles`` cuts images of any size into them; ``tile_size`` =
T marks this as an image model, ``protocol.tile_size``). Latents are int32 (B, latent_size): z1 (L1 x T/4 x T/4)
then z2 (L2 x T/8 x T/8), coded as in ``coding_model`` (bins of width 2^-b on [-8, 8)).

The likelihood codes the sub-pixels in raster order, channels in order within a pixel (R, then G, then B), with
``RasterAutoregressive`` over the (T, T, C) positions. Sub-pixel (p, c) gets from channel c's integer head
(``photo_ar_head``) K logits (1/32 nat), K means M (1/16 pixel), K log-scale raws and c x K coefficient raws
(1/1024), and codes under ``DiscretizedLogisticMixture`` with::

    log-scales = LOG_SCALE_MIN + (LOG_SCALE_MAX - LOG_SCALE_MIN) sigma(raw / 1024)         (1/64; sigmoid table)
    a_cc'k     = -4096 + 8192 sigma(r_cc'k / 1024)                                        (1/4096: a in (-1, 1))
    means      = M + sum_{c' < c} floor((a_cc'k (16 x_c' - 2040) + 2048) / 4096)          (1/16 pixel)

the integer twin of ``photo_likelihood`` (PixelCNN++'s linear dependence of a channel's means on the pixel's
earlier channels: (16 x - 2040)/16 = x - 127.5). Tile positions outside the image (``extents``) are not coded.
"""
from __future__ import annotations

import numpy as np
import torch

from bbans.codecs import kernels, tables
from bbans.codecs.autoregressive import RasterAutoregressive
from bbans.codecs.logistic import DiscretizedLogisticMixture
from bbans.container.tiles import coded_mask

from .coding_model import VAECodingModel, _bounded
from .photo_ar_head import heads_from_tensors
from .photo_likelihood import channel_mixture_log_prob_subpixels
from .photo_vae import PhotoVAE, PhotoVAEConfig
from .weights_file import INPUT_OFFSET, tile_size

COEF_BITS = 12  # coefficients a in 1/4096


@kernels.compiled
def _channel_params_kernel(raw, earlier, c, k, sigmoid, half, bits, ls_lo, ls_hi, coef_bits, out):
    """``PhotoCodingModel._channel_params`` over rows, compiled (``bbans.codecs.kernels``): raw int64 (N, 3K + cK),
    earlier int64 (N, >= c), out int64 (N, 3K); the same integers as the numpy code (``coding_model._bounded``)."""
    rnd = 1 << (bits - 1)
    one = 1 << coef_bits
    for n in range(raw.shape[0]):
        for j in range(k):
            out[n, j] = raw[n, j]
            mean = raw[n, k + j]
            for e in range(c):
                sig = sigmoid[min(max(raw[n, (3 + e) * k + j], -half), half) + half]
                coef = -one + ((2 * one * sig + rnd) >> bits)
                mean += (coef * (16 * earlier[n, e] - 2040) + (one >> 1)) >> coef_bits
            out[n, k + j] = mean
            sig = sigmoid[min(max(raw[n, 2 * k + j], -half), half) + half]
            out[n, 2 * k + j] = ls_lo + (((ls_hi - ls_lo) * sig + rnd) >> bits)


class PhotoCodingModel(VAECodingModel):
    """A ``bbans-photo-1`` weights file as a coding model of T x T x C tiles (see the module docstring); the
    arguments are ``VAECodingModel``'s."""

    def __init__(self, path, backend: str = "torch", device: str = "cpu", expected_sha256: str | None = None,
                 name: str | None = None):
        from .weights_file import read_metadata

        meta = read_metadata(path)
        self.tile_size = tile_size(meta)
        if not self.tile_size:
            raise_not_photo(path)
        super().__init__(path, backend, device, expected_sha256, name)
        self.channels = int(self.config.channels)
        self.components = int(self.config.components)
        self.tile_fill = int(self.coder_settings["tile_fill"])

    @staticmethod
    def _make_config(fields: dict):
        return PhotoVAEConfig(**fields)

    @staticmethod
    def _load_ar(tensors: dict, layout: dict):
        return heads_from_tensors("int.ar", tensors, layout["ar"])

    def _latent_shapes(self) -> tuple:
        t = self.tile_size
        return self.config.latent_shape(t, t), self.config.top_latent_shape(t, t)

    def _net_input(self, x: np.ndarray) -> np.ndarray:
        """Tiles uint8 (B, T, T, C) -> the integer encoder's input x - 128, int (B, C, T, T)."""
        return np.asarray(x).transpose(0, 3, 1, 2).astype(np.int64) - INPUT_OFFSET

    # ---- the likelihood ------------------------------------------------------------------------------------
    def _channel_params(self, raw: np.ndarray, c: int, earlier: np.ndarray) -> np.ndarray:
        """Channel c's head outputs (..., 3K + cK) and the pixel's earlier channels' values (..., c) -> the
        mixture's integer parameters (..., 3K): logits | means (with the linear terms) | log-scales."""
        k = self.components
        if kernels.AVAILABLE:
            lead = raw.shape[:-1]
            flat = np.ascontiguousarray(raw, np.int64).reshape(-1, raw.shape[-1])
            prev = np.ascontiguousarray(earlier, np.int64).reshape(len(flat), -1)
            out = np.empty((len(flat), 3 * k), np.int64)
            _channel_params_kernel(flat, prev, c, k, tables.sigmoid_table(), tables.SIGMOID_HALF,
                                   tables.SIGMOID_BITS, tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX, COEF_BITS, out)
            return out.reshape(*lead, 3 * k)
        means = raw[..., k:2 * k]
        for j in range(c):
            coef = _bounded(raw[..., (3 + j) * k:(4 + j) * k], -(1 << COEF_BITS), 1 << COEF_BITS)
            centred = 16 * earlier[..., j:j + 1].astype(np.int64) - 2040
            means = means + ((coef * centred + (1 << (COEF_BITS - 1))) >> COEF_BITS)
        log_scales = _bounded(raw[..., 2 * k:3 * k], tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX)
        return np.concatenate([raw[..., :k], means, log_scales], axis=-1)

    def _mixture(self, params: np.ndarray) -> DiscretizedLogisticMixture:
        k = self.components
        return DiscretizedLogisticMixture(params[..., k:2 * k], params[..., 2 * k:], params[..., :k])

    def likelihood_codec(self, z: np.ndarray, extents: np.ndarray | None = None):
        """p(x | z) over tiles (B, T, T, C); ``extents`` int (B, 2): the rows and columns of each tile inside its
        image (None: all), the rest uncoded and equal to ``tile_fill``."""
        ctx = self.likelihood_params(z)                                     # (B, C*A, T, T)
        b, t, c_n, a = len(ctx), self.tile_size, self.channels, self.config.ar_channels
        shape = (b, t, t, c_n)
        heads = self._ar

        def params_all(x):
            x = x.reshape(shape)
            rows = [self._channel_params(heads[c].params_all(ctx[:, c * a:(c + 1) * a], x), c,
                                         x.reshape(b, t * t, c_n)[:, :, :c]) for c in range(c_n)]
            return np.stack(rows, axis=2).reshape(b, t * t * c_n, -1)       # (B, P*C, 3K), (pixel, channel) order

        by_position = []  # per channel, the context in params_at's layout, made on the first call (decoding only)

        def params_at(x, pos):
            if not by_position:
                by_position.extend(heads[c].context_by_position(ctx[:, c * a:(c + 1) * a]) for c in range(c_n))
            p, c = divmod(pos, c_n)
            raw = heads[c].params_at(by_position[c], x.reshape(shape), p)
            return self._channel_params(raw, c, x[:, p * c_n:p * c_n + c])

        coded = None if extents is None else coded_mask(np.asarray(extents, np.int64), t, c_n)
        return RasterAutoregressive(shape, self.value_range, params_all=params_all, params_at=params_at,
                                    codec_for=self._mixture, coded=coded, fill=self.tile_fill)

    # ---- evaluation (float model) --------------------------------------------------------------------------
    @property
    def float_model(self) -> PhotoVAE:
        if self._float_model is None:
            m = PhotoVAE(self.config)
            m.load_state_dict(self._float_state)
            self._float_model = m.eval()
        return self._float_model

    @torch.no_grad()
    def neg_elbo_bits(self, x: np.ndarray, seed: int = 0, batch: int = 256, extents: np.ndarray | None = None):
        """Single-sample -ELBO of the float model per tile, bits, float64 (B,): x uint8 tiles (B, T, T, C); with
        ``extents`` only the sub-pixels inside the image count in the reconstruction term."""
        model = self.float_model
        mask = None if extents is None else coded_mask(np.asarray(extents, np.int64), self.tile_size, self.channels)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        out = []
        try:
            for i in range(0, len(x), batch):
                xb = self._float_input(x[i:i + batch])
                z1, latent = model.latent_terms(xb)
                log_p = channel_mixture_log_prob_subpixels(xb, model.likelihood_params(xb, model.decode(z1, xb)),
                                                           self.components)           # (b, C, T, T)
                if mask is not None:
                    log_p = log_p * torch.from_numpy(mask[i:i + batch].transpose(0, 3, 1, 2).astype(np.float32))
                out.append((latent - log_p.flatten(1).sum(1)).double().numpy())
        finally:
            torch.random.set_rng_state(gen_state)
        return np.concatenate(out) / np.log(2) if out else np.zeros(0)

    def _float_input(self, x: np.ndarray) -> torch.Tensor:
        """Tiles uint8 (B, T, T, C) -> the float model's input, uint8 tensor (B, C, T, T)."""
        return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 3, 1, 2)))


def raise_not_photo(path):
    from bbans.errors import ModelError

    raise ModelError(f"{path} is not a photo model file")
