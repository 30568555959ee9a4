"""Turn a float ConvVAE checkpoint into a coding-model weights file (safetensors, no pickle; the format is
described in ``weights_file``).

The file holds the float weights (``float.*``, for -ELBO / NLL evaluation), the integer coding networks
(``int.enc.*``, ``int.dec.*``, and ``int.up.*``, ``int.down.*``, ``int.ar.*`` where the model has them) and one
metadata entry, ``bbans``: sorted-key JSON with the format, name, architecture, layer layout, coder settings and
card. One entry, because safetensors writes several in a random (hash-map) order, which made every export of the
same checkpoint a different file with a different sha256.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from bbans.codecs import tables

from .ar_head import ar_head_to_tensors, convert_ar_head
from .integer_net import convert_sequential, layers_to_tensors
from .train import load_float_checkpoint
from .vae import ConvVAE
from .weights_file import FORMAT, METADATA_KEY, MU_EXPONENT

LATENT_RANGE = 8                 # latents are coded on [-8, 8): bins -half..half-1 of width 2^-b
DEFAULT_LATENT_BIN_EXPONENT = 5  # b: latent bin width 2^-5 (see coder_settings)
LOG_SIGMA_EXPONENT = 6
LOGIT_EXPONENT = 5               # mixture logits in 1/32 nat
MEAN_EXPONENT = 4                # logistic means in 1/16 pixel
BOUNDED_RAW_EXPONENT = 10        # pre-sigmoid log-scale values in 1/1024 (the sigmoid table's step)
BERNOULLI_LOGIT_EXPONENT = 10


def half_bins(bin_exponent: int) -> int:
    return LATENT_RANGE << bin_exponent


def coder_settings(config, bin_exponent: int) -> dict:
    """What a decoder must match: recorded in every archive.

    Latent bins: every bin of an entropy model keeps a minimum probability (constriction's is 2^-24), so a
    posterior pop lands in a far 'leaky' bin with probability ~ bins x that minimum per dimension, and such a
    latent then costs hundreds of bits in the likelihood. Measured on binarized MNIST with constriction's quantized
    Gaussian: 4096 bins (2^-8 wide) cost 0.86% over -ELBO, 256 bins 0.11%. Latents are coded with the
    integer-table Gaussian of ``bbans.codecs.gaussian`` (portable: no float erf).
    """
    likelihood = "logistic-mixture-2stage-1" if config.likelihood == "logistic_mixture" else "bernoulli-1"
    settings = {"inference": "int-exact-1", "latent_bins": 2 * half_bins(bin_exponent),
                "latent_bin_exponent": bin_exponent, "latent_codec": "int-gauss-2stage-1",
                "likelihood": f"raster-ar-{likelihood}" if config.ar_channels else likelihood}
    if config.top_latent_channels:  # one-layer models keep the settings their archives already record
        settings["latent_layers"] = "bottom-up-q-top-down-p-2"
    return settings


def _encoder_head(latent_channels: int) -> dict:
    lc = latent_channels
    mu_lim = LATENT_RANGE << MU_EXPONENT
    return dict(e_out=[MU_EXPONENT] * lc + [LOG_SIGMA_EXPONENT] * lc,
                lo=[-mu_lim] * lc + [tables.LOG_SIGMA_MIN] * lc,
                hi=[mu_lim - 1] * lc + [tables.LOG_SIGMA_MAX] * lc)


def _output_head(cfg) -> dict:
    """The integer output layer's dict(e_out, lo, hi, ...) for the likelihood parameters of ``cfg``."""
    if cfg.likelihood == "bernoulli":
        lim = tables.SIGMOID_HALF
        return dict(e_out=[BERNOULLI_LOGIT_EXPONENT], lo=[-lim], hi=[lim])
    k = cfg.components
    # raw channels: logits (1/32 nat) | means (pixels = 127.5 + 127.5 raw, folded in; 1/16 px) |
    # log-scale pre-sigmoid values (1/1024), mapped through the sigmoid table by the coding model
    lim = tables.SIGMOID_HALF
    return dict(
        e_out=[LOGIT_EXPONENT] * k + [MEAN_EXPONENT] * k + [BOUNDED_RAW_EXPONENT] * k,
        lo=[-tables.LOGIT_MAX] * k + [tables.MEAN_MIN] * k + [-lim] * k,
        hi=[tables.LOGIT_MAX] * k + [tables.MEAN_MAX] * k + [lim] * k,
        scale=np.array([1.0] * k + [127.5] * k + [1.0] * k),
        shift=np.array([0.0] * k + [127.5] * k + [0.0] * k),
    )


def _binned_sample(mu: torch.Tensor, log_sigma: torch.Tensor, bin_exponent: int) -> torch.Tensor:
    """A posterior sample rounded to the latent bins, as the coder's latents are."""
    half = half_bins(bin_exponent)
    z = mu + torch.exp(log_sigma) * torch.randn_like(mu)
    return torch.round(z * 2 ** bin_exponent).clamp(-half, half - 1) / 2 ** bin_exponent


def build_integer_layers(model: ConvVAE, calibration: np.ndarray, bin_exponent: int) -> dict:
    """Integer networks of ``model``, activation scales calibrated on ``calibration`` (N,28,28) uint8:
    {"enc": q(z1|x), "dec": z1 -> parameters (or AR context)} plus "up" (q(z2|z1)) and "down" (p(z1|z2)) for a
    two-layer model and "ar" (an ``IntARHead``) for an autoregressive one."""
    model.eval()
    cfg = model.config
    x = torch.from_numpy(calibration).unsqueeze(1).float()
    e_in = 8 if cfg.likelihood == "logistic_mixture" else 0  # the float net sees x / 2^8 (8-bit) or x (binary)
    x_max = 255 if cfg.likelihood == "logistic_mixture" else 1
    half = half_bins(bin_exponent)
    nets = {"enc": convert_sequential(model.encoder, x * cfg.input_scale, e_in, x_max,
                                      _encoder_head(cfg.latent_channels))}
    with torch.no_grad():
        z1 = _binned_sample(*model.posterior(x), bin_exponent)
    if cfg.top_latent_channels:
        nets["up"] = convert_sequential(model.up, z1, bin_exponent, half, _encoder_head(cfg.top_latent_channels))
        with torch.no_grad():
            z2 = _binned_sample(*model.top_posterior(z1), bin_exponent)
        nets["down"] = convert_sequential(model.down, z2, bin_exponent, half, _encoder_head(cfg.latent_channels))
    if cfg.ar_channels:
        with torch.no_grad():
            ctx = model.decode(z1)
        dec_head, nets["ar"] = convert_ar_head(model.ar_masked, model.ar_out, ctx, model.ar_input(x),
                                               cfg.ar_input_ints, x_max, _output_head(cfg))
    else:
        dec_head = _output_head(cfg)
    nets["dec"] = convert_sequential(model.decoder, z1, bin_exponent, half, dec_head)
    return nets


def export(float_checkpoint: Path, out_path: Path, calibration: np.ndarray, name: str, card: dict | None = None,
           bin_exponent: int = DEFAULT_LATENT_BIN_EXPONENT) -> Path:
    """Write the coding-model file for ``float_checkpoint``; returns ``out_path``."""
    model, facts = load_float_checkpoint(Path(float_checkpoint))
    torch.manual_seed(0)
    nets = build_integer_layers(model, calibration, bin_exponent)
    tensors = {f"float.{k}": v.detach().float().contiguous() for k, v in model.state_dict().items()}
    layouts = {}
    for part, layers in nets.items():
        t, layouts[part] = (ar_head_to_tensors(f"int.{part}", layers) if part == "ar"
                            else layers_to_tensors(f"int.{part}", layers))
        tensors.update(t)
    meta = {
        "format": FORMAT,
        "name": name,
        "config": model.config.to_dict(),
        "int_layers": layouts,
        "coder_settings": coder_settings(model.config, bin_exponent),
        "card": {**facts, **(card or {})},
    }
    return write_model_file(out_path, tensors, meta)


def write_model_file(out_path: Path, tensors: dict, meta: dict) -> Path:
    """Write ``tensors`` and the one metadata entry ``meta`` (sorted-key JSON) as a safetensors file, atomically
    (a temporary file renamed over ``out_path``); returns ``out_path``."""
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    tmp.replace(out_path)
    return out_path
