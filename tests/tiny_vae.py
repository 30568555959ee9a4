"""Tiny random ConvVAEs exported to coding models in a second (no training): for exactness tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bbans_models.export import export
from bbans_models.train import save_float_checkpoint
from bbans_models.vae import ConvVAE, VAEConfig


def make_tiny_model_file(folder: Path, likelihood: str = "logistic_mixture", seed: int = 0, top: int = 0,
                         ar: int = 0) -> Path:
    """A random tiny model file; ``top`` > 0 adds a top latent layer of that many channels, ``ar`` > 0 an
    autoregressive head of that many hidden units (pixels centred for 8-bit data, raw for binary)."""
    torch.manual_seed(seed)
    cfg = VAEConfig(likelihood=likelihood, components=3, latent_channels=2, hidden=[4, 8, 8],
                    top_latent_channels=top, top_hidden=6, ar_channels=ar, ar_kernel=3,
                    ar_centered=likelihood == "logistic_mixture")
    model = ConvVAE(cfg)
    tag = f"{likelihood}_{seed}" + (f"_top{top}" if top else "") + (f"_ar{ar}" if ar else "")
    float_path = folder / f"tiny_{tag}.float.safetensors"
    save_float_checkpoint(model, float_path, {"epochs": 0})
    hi = 256 if likelihood == "logistic_mixture" else 2
    calib = np.random.default_rng(seed).integers(0, hi, (64, 28, 28), dtype=np.uint8)
    return export(float_path, folder / f"tiny_{tag}.safetensors", calib, f"tiny-{likelihood}")


def random_images(n: int, likelihood: str = "logistic_mixture", seed: int = 1) -> np.ndarray:
    """MNIST-like: mostly 0 (or 0/1) with a bright blob, uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(6, 22, 2)
        x[i, r - 4:r + 4, c - 3:c + 3] = rng.integers(128, 256, (8, 6))
    if likelihood == "bernoulli":
        return (x > 127).astype(np.uint8)
    return x
