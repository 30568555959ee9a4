"""Turn a float ``PhotoVAE`` checkpoint into a photo coding-model file (format ``bbans-photo-1``, safetensors, no
pickle; read by ``photo_coding_model``).

As ``export`` for the MNIST family: float weights (``float.*``) for -ELBO evaluation, the integer networks
``int.enc`` (q(z1|x)), ``int.dec`` (z1 -> the AR head's context), ``int.up`` / ``int.down`` for two latent layers,
and the per-channel integer AR heads ``int.ar.<c>`` (``photo_ar_head``), plus one metadata entry. The coder settings
name the tile side T: the file codes images of any size as T x T tiles (``bbans.container.tiles``), the pixels
outside an image set to ``TILE_FILL`` and left uncoded.

The integer encoder sees x - 128 at exponent 7, i.e. exactly the float encoder's input (x - 128) / 128.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .export import _binned_sample, _encoder_head, half_bins, write_model_file
from .integer_net import convert_sequential, layers_to_tensors
from .photo_ar_head import convert_channel_ar_head, heads_to_tensors
from .photo_vae import PhotoVAE
from .train import load_float_checkpoint
from .weights_file import INPUT_EXPONENT, INPUT_OFFSET, PHOTO_FORMAT, TILE_FILL


# Integer-network precision (measured on kodim01/03/20 with the 75-minute checkpoint, archive net rate over the float
# -ELBO: +1.09% as the MNIST models are exported; +0.65% clipping hidden activations at half the calibration
# maximum; +0.60% with 4 more weight bits; +0.17% with both). docs/design.md, "Integer-exact networks".
WEIGHT_SPLIT_BITS = 4   # split weights: up to 4 more bits each (integer_net.split_bits lowers it where inexact)
CLIP_BITS = 1           # hidden activations clip at half the calibration maximum, gaining a bit of resolution


def coder_settings(config, bin_exponent: int, tile: int) -> dict:
    """What a decoder must match (recorded in every archive), as ``export.coder_settings`` plus the tiling;
    "int-exact-2": integer networks that may have split weights (``integer_net``)."""
    settings = {"inference": "int-exact-2", "latent_bins": 2 * half_bins(bin_exponent),
                "latent_bin_exponent": bin_exponent, "latent_codec": "int-gauss-2stage-1",
                "likelihood": "raster-ar-channels-logistic-mixture-2stage-1", "tile": int(tile),
                "tile_fill": TILE_FILL}
    if config.top_latent_channels:
        settings["latent_layers"] = "bottom-up-q-top-down-p-2"
    return settings


def build_photo_integer_layers(model: PhotoVAE, calibration: np.ndarray, bin_exponent: int) -> dict:
    """Integer networks of ``model``, activation scales calibrated on ``calibration`` uint8 (N, C, H, W): "enc",
    "dec", "up" and "down" (two layers) and "ar" (a list of ``photo_ar_head.SubpixelHead``, one per channel)."""
    model.eval()
    cfg = model.config
    if not (cfg.latent_channels and cfg.ar_channels):
        raise ValueError("the photo coding path needs latents and an autoregressive head")
    x = torch.from_numpy(np.ascontiguousarray(calibration)).float()
    half = half_bins(bin_exponent)
    precision = dict(max_split=WEIGHT_SPLIT_BITS, clip_bits=CLIP_BITS)
    nets = {"enc": convert_sequential(model.encoder, (x - INPUT_OFFSET) / 2 ** INPUT_EXPONENT, INPUT_EXPONENT,
                                      INPUT_OFFSET, _encoder_head(cfg.latent_channels), **precision)}
    with torch.no_grad():
        z1 = _binned_sample(*model.posterior(x), bin_exponent)
    if cfg.top_latent_channels:
        nets["up"] = convert_sequential(model.up, z1, bin_exponent, half, _encoder_head(cfg.top_latent_channels),
                                        **precision)
        with torch.no_grad():
            z2 = _binned_sample(*model.top_posterior(z1), bin_exponent)
        nets["down"] = convert_sequential(model.down, z2, bin_exponent, half, _encoder_head(cfg.latent_channels),
                                          **precision)
    with torch.no_grad():
        ctx = model.decode(z1)
    dec_head, nets["ar"] = convert_channel_ar_head(model, ctx, model.ar_input(x), **precision)
    nets["dec"] = convert_sequential(model.decoder, z1, bin_exponent, half, dec_head, **precision)
    return nets


def export_photo(float_checkpoint: Path, out_path: Path, calibration: np.ndarray, name: str, tile: int,
                 card: dict | None = None, bin_exponent: int = 5) -> Path:
    """Write the photo coding-model file for ``float_checkpoint`` (a ``PhotoVAE``), tiles of side ``tile`` (a
    multiple of 8); ``calibration`` uint8 (N, C, h, w) images or tiles. Returns ``out_path``."""
    if tile < 8 or tile % 8:
        raise ValueError("the tile side must be a positive multiple of 8 (the latents are at 1/4 and 1/8)")
    model, facts = load_float_checkpoint(Path(float_checkpoint))
    if not isinstance(model, PhotoVAE):
        raise ValueError(f"{float_checkpoint} is not a photo-model checkpoint")
    torch.manual_seed(0)
    nets = build_photo_integer_layers(model, calibration, bin_exponent)
    tensors = {f"float.{k}": v.detach().float().contiguous() for k, v in model.state_dict().items()}
    layouts = {}
    for part, layers in nets.items():
        t, layouts[part] = (heads_to_tensors(f"int.{part}", layers) if part == "ar"
                            else layers_to_tensors(f"int.{part}", layers))
        tensors.update(t)
    meta = {"format": PHOTO_FORMAT, "name": name, "config": model.config.to_dict(), "int_layers": layouts,
            "coder_settings": coder_settings(model.config, bin_exponent, tile), "card": {**facts, **(card or {})}}
    return write_model_file(out_path, tensors, meta)
