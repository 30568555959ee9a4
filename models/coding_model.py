"""The shipped VAEs as bbans coding models (see ``bbans.protocol``): integer-exact codecs plus float evaluation.

Shapes: data uint8 (B, 28, 28); latents int32 (B, L*7*7) bin indices, z = index * 2^-b on [-8, 8), with the bin
exponent b from the model file's coder settings.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from bbans import tables
from bbans.gaussian import DiscretizedGaussian, StandardGaussian
from bbans.errors import ModelError
from bbans.logistic import DiscretizedLogisticMixture, bernoulli_from_logits

from .export import FORMAT, METADATA_KEY, MU_EXPONENT
from .integer_net import TorchIntNet, forward_numpy, layers_from_tensors
from .vae import ConvVAE, VAEConfig


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _bounded(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """lo + (hi - lo) σ(raw / 1024), rounded, with integer arithmetic and the fixed sigmoid table (int64).

    The integer twin of the float model's smooth bounds (``likelihoods.split_mixture_params``)."""
    sig = tables.sigmoid_of_index(raw)
    return lo + (((hi - lo) * sig + (1 << (tables.SIGMOID_BITS - 1))) >> tables.SIGMOID_BITS)


class VAECodingModel:
    """A ConvVAE weights file (format ``bbans-vae-2``, see ``export``) as a coding model.

    ``backend`` is "torch" (default, float32 torch convolutions on ``device``, exact under the 2^24 budget) or
    "numpy" (the reference); both give the same integers, so archives written with one decode with the other.
    """

    def __init__(self, path: Path, backend: str = "torch", device: str = "cpu", expected_sha256: str | None = None):
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        self.sha256 = file_sha256(path)
        if expected_sha256 and self.sha256 != expected_sha256:
            raise ModelError(f"{path} has sha256 {self.sha256[:12]}…, the registry expects {expected_sha256[:12]}…: "
                             "the weights are damaged or replaced; reinstall bbans")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get(METADATA_KEY, "{}"))
            if meta.get("format") != FORMAT:
                raise ModelError(f"{path} is not a {FORMAT} model file (found format {meta.get('format')!r}); "
                                 "export it again with this bbans version")
            tensors = load_file(str(path))
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"cannot read model file {path}: {exc}") from None
        self.path = path
        self.name = meta["name"]
        self.config = VAEConfig(**meta["config"])
        self.coder_settings = meta["coder_settings"]
        self._bin_exp = int(self.coder_settings["latent_bin_exponent"])
        self.card = meta.get("card", {})
        layout = meta["int_layers"]
        self._enc_layers = layers_from_tensors("int.enc", tensors, layout["enc"])
        self._dec_layers = layers_from_tensors("int.dec", tensors, layout["dec"])
        self._float_state = {k[len("float."):]: v for k, v in tensors.items() if k.startswith("float.")}
        self._float_model = None
        self.backend = backend
        if backend == "torch":
            self._enc = TorchIntNet(self._enc_layers, device)
            self._dec = TorchIntNet(self._dec_layers, device)
        elif backend == "numpy":
            self._enc = lambda x: forward_numpy(self._enc_layers, x)
            self._dec = lambda z: forward_numpy(self._dec_layers, z)
        else:
            raise ModelError(f"unknown backend {backend!r}: use 'torch' or 'numpy'")
        self.data_shape = (self.config.image_size, self.config.image_size)
        binary = self.config.likelihood == "bernoulli"
        self.value_range = (0, 1) if binary else (0, 255)
        self.latent_shape = self.config.latent_shape
        self.latent_size = int(np.prod(self.latent_shape))

    # ---- coding (integer-exact) ----------------------------------------------------------------------------
    def posterior_ints(self, x: np.ndarray):
        """x uint8 (B,28,28) -> (mean in 2^-12 latent units, log-sigma index S), int64 (B, latent_size)."""
        out = self._enc(np.asarray(x).reshape(-1, 1, *self.data_shape))
        lc = self.config.latent_channels
        return out[:, :lc].reshape(len(out), -1), out[:, lc:].reshape(len(out), -1)

    def posterior_params(self, x: np.ndarray):
        """x uint8 (B,28,28) -> (mean, std) float64 (B, latent_size) in bin units (for inspection)."""
        mu_int, s_int = self.posterior_ints(x)
        mean = mu_int.astype(np.float64) / (1 << (MU_EXPONENT - self._bin_exp))
        std = tables.sigma_table()[s_int - tables.LOG_SIGMA_MIN] * float(1 << self._bin_exp)
        return mean, std

    def posterior(self, x: np.ndarray) -> DiscretizedGaussian:
        mu_int, s_int = self.posterior_ints(x)
        return DiscretizedGaussian(mu_int, s_int, self._bin_exp, MU_EXPONENT - self._bin_exp)

    def prior(self, batch: int) -> StandardGaussian:
        """N(0, I): mean 0, log-sigma index 0, tables shared by all latents."""
        return StandardGaussian((batch, self.latent_size), self._bin_exp, MU_EXPONENT - self._bin_exp)

    def likelihood_params(self, z: np.ndarray) -> np.ndarray:
        """z int (B, latent_size) -> integer decoder output (B, C, 28, 28)."""
        return self._dec(np.asarray(z).reshape(-1, *self.latent_shape))

    def likelihood(self, z: np.ndarray):
        out = self.likelihood_params(z)
        if self.config.likelihood == "bernoulli":
            return bernoulli_from_logits(out[:, 0])
        k = self.config.components
        per_pixel = out.transpose(0, 2, 3, 1)  # (B, 28, 28, 3K)
        means = per_pixel[..., k:2 * k]                                                         # 1/16 pixel
        log_scales = _bounded(per_pixel[..., 2 * k:], tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX)  # 1/64
        return DiscretizedLogisticMixture(means, log_scales, per_pixel[..., :k])

    # ---- evaluation (float model) --------------------------------------------------------------------------
    @property
    def float_model(self) -> ConvVAE:
        if self._float_model is None:
            m = ConvVAE(self.config)
            m.load_state_dict(self._float_state)
            self._float_model = m.eval()
        return self._float_model

    @torch.no_grad()
    def _per_item_bits(self, x: np.ndarray, nats_fn, seed: int, batch: int) -> np.ndarray:
        """Apply ``nats_fn`` (uint8 tensor (b,1,H,W) -> nats (b,)) in batches with a fixed seed, leaving torch's
        global RNG as it was; returns bits per item, float64 (B,)."""
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            out = [nats_fn(torch.from_numpy(np.array(x[i:i + batch], dtype=np.uint8)).unsqueeze(1)).double().numpy()
                   for i in range(0, len(x), batch)]
        finally:
            torch.random.set_rng_state(gen_state)
        return np.concatenate(out) / np.log(2) if out else np.zeros(0)

    def neg_elbo_bits(self, x: np.ndarray, seed: int = 0, batch: int = 500) -> np.ndarray:
        """Single-sample -ELBO (analytic KL) of the float model, bits per item, shape (B,)."""
        return self._per_item_bits(x, self.float_model.neg_elbo, seed, batch)

    def iwae_bits(self, x: np.ndarray, k: int = 50, seed: int = 0, batch: int = 200) -> np.ndarray:
        """-log of the k-sample importance estimate of p(x) (seed Eq. 15), bits per item, shape (B,)."""
        def nll(xb):
            return -(torch.logsumexp(self.float_model.iwae_log_weights(xb, k).double(), 0) - np.log(k))
        return self._per_item_bits(x, nll, seed, batch)
