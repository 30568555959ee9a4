"""The shipped VAEs as bbans coding models (see ``bbans.bitsback.protocol``): integer-exact codecs plus float
evaluation.

Shapes: data uint8 (B, 28, 28); latents int32 (B, latent_size) bin indices, z = index * 2^-b on [-8, 8), with the
bin exponent b from the model file's coder settings. One latent layer: latent_size = L1*7*7. Two layers: the
columns hold z1 (L1*7*7) then z2 (L2*7*7), coded by ``bbans.codecs.hierarchy.LayeredLatents``: the posterior pops
z1 under q(z1|x), then z2 under q(z2|z1); the prior pops z2 under N(0, I), then z1 under p(z1|z2).
Autoregressive models code the pixels with ``bbans.codecs.autoregressive.RasterAutoregressive``. Loading a model
reads its weights file (``weights_file``) and imports no training or export code.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from bbans.codecs import kernels, tables
from bbans.codecs.autoregressive import RasterAutoregressive
from bbans.codecs.gaussian import DiscretizedGaussian, StandardGaussian
from bbans.codecs.hierarchy import LayeredLatents
from bbans.errors import ModelError
from bbans.codecs.logistic import DiscretizedLogisticMixture, bernoulli_from_logits

from .ar_head import ar_head_from_tensors
from .integer_net import TorchIntNet, forward_numpy, layers_from_tensors
from .vae import ConvVAE, VAEConfig
from .weights_file import MU_EXPONENT, data_shape, file_sha256, read_metadata, value_range


def _bounded(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """lo + (hi - lo) σ(raw / 1024), rounded, with integer arithmetic and the fixed sigmoid table (int64).

    The integer twin of the float model's smooth bounds (``likelihoods.split_mixture_params``)."""
    if kernels.AVAILABLE:
        flat = np.ascontiguousarray(raw, np.int64).reshape(-1)
        out = np.empty(flat.shape, np.int64)
        _bounded_kernel(flat, lo, hi, tables.sigmoid_table(), tables.SIGMOID_HALF, tables.SIGMOID_BITS, out)
        return out.reshape(np.shape(raw))
    sig = tables.sigmoid_of_index(raw)
    return lo + (((hi - lo) * sig + (1 << (tables.SIGMOID_BITS - 1))) >> tables.SIGMOID_BITS)


@kernels.compiled
def _bounded_kernel(raw, lo, hi, sigmoid, half, bits, out):
    """``_bounded`` over int64 (N,) ``raw`` into ``out``, compiled (``bbans.codecs.kernels``): the same integers."""
    for i in range(raw.shape[0]):
        sig = sigmoid[min(max(raw[i], -half), half) + half]
        out[i] = lo + (((hi - lo) * sig + (1 << (bits - 1))) >> bits)


class VAECodingModel:
    """A ConvVAE weights file (format ``bbans-vae-2``, see ``weights_file``; written by ``export``) as a coding model.

    ``name``: the name archives record (default: the one in the file). ``backend`` is "torch" (default, float32
    torch convolutions on ``device``, exact under the 2^24 budget) or "numpy" (the reference); both give the same
    integers, so archives written with one decode with the other.
    """

    def __init__(self, path: Path, backend: str = "torch", device: str = "cpu", expected_sha256: str | None = None,
                 name: str | None = None):
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        self.sha256 = file_sha256(path)
        if expected_sha256 and self.sha256 != expected_sha256:
            raise ModelError(f"{path} has sha256 {self.sha256[:12]}…, the registry expects {expected_sha256[:12]}…: "
                             "the weights are damaged or replaced; reinstall bbans")
        meta = read_metadata(path)
        try:
            tensors = load_file(str(path))
        except Exception as exc:
            raise ModelError(f"cannot read model file {path}: {exc}") from None
        self.path = path
        self.name = name or meta["name"]  # a registry name overrides the one written at export
        self.config = self._make_config(meta["config"])
        self.coder_settings = meta["coder_settings"]
        self._bin_exp = int(self.coder_settings["latent_bin_exponent"])
        self.latent_bins = int(self.coder_settings["latent_bins"])  # alphabet of each latent symbol
        self.card = meta.get("card", {})
        layout = meta["int_layers"]
        self._float_state = {k[len("float."):]: v for k, v in tensors.items() if k.startswith("float.")}
        self._float_model = None
        self.backend = backend
        if backend not in ("torch", "numpy"):
            raise ModelError(f"unknown backend {backend!r}: use 'torch' or 'numpy'")
        # integer conv nets: enc q(z1|x), dec z1 -> params/context, and for two layers up q(z2|z1), down p(z1|z2)
        self.int_layers = {part: layers_from_tensors(f"int.{part}", tensors, layout[part])
                           for part in ("enc", "dec", "up", "down") if part in layout}
        self._nets = {part: TorchIntNet(layers, device) if backend == "torch"
                      else (lambda v, layers=layers: forward_numpy(layers, v))
                      for part, layers in self.int_layers.items()}
        self._ar = self._load_ar(tensors, layout)
        self.data_shape = data_shape(meta)
        self.value_range = value_range(meta)
        self.latent_shape, self.top_latent_shape = self._latent_shapes()
        self.layer_sizes = [int(np.prod(s)) for s in (self.latent_shape, self.top_latent_shape) if s[0]]
        self.latent_size = int(sum(self.layer_sizes))
        self.coding_variant: dict = {}  # coding-time choices (with_coding_variant); {} = as exported
        self.known_coding_variants: list = []  # variants archives may have used (set by the registry)
        self.latent_coarsening = 0

    # ---- what the model families differ in (``photo_coding_model`` overrides these) ----------------------------
    @staticmethod
    def _make_config(fields: dict):
        return VAEConfig(**fields)

    @staticmethod
    def _load_ar(tensors: dict, layout: dict):
        return ar_head_from_tensors("int.ar", tensors, layout["ar"]) if "ar" in layout else None

    def _latent_shapes(self) -> tuple:
        """(z1's shape, z2's shape) per item; z2's is (0, ...) for a one-layer model."""
        return self.config.latent_shape, self.config.top_latent_shape

    def _net_input(self, x: np.ndarray) -> np.ndarray:
        """Items uint8 (B, *data_shape) -> the integer encoder's input (B, 1, 28, 28)."""
        return np.asarray(x).reshape(-1, 1, *self.data_shape)

    def with_coding_variant(self, variant: dict) -> "VAECodingModel":
        """This model coding with ``variant`` (docs/design.md, "Coding variants"), a dict of at most:

        - ``latent_coarsening`` k: the latent codecs use bins 2^k times wider (bin exponent
          ``latent_bin_exponent - k``, ``latent_bins >> k`` symbols); the networks see a latent's bin index times
          2^k, i.e. the same value in the exported bins.

        Wider bins make a posterior pop take fewer bits (which the chain's data seed must cover) and cost no rate
        while they stay narrow next to the posterior's spread (measured per model: ``scripts/coding_variant.py``).
        Shares the weights and networks with ``self``."""
        variant = {k: v for k, v in dict(variant or {}).items() if v not in (0, None)}
        unknown = set(variant) - {"latent_coarsening"}
        if unknown:
            raise ModelError(f"model {self.name!r} has no coding option {sorted(unknown)}")
        base = int(self.coder_settings["latent_bin_exponent"])
        k = variant.get("latent_coarsening", 0)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= base:
            raise ModelError(f"latent coarsening must be an integer in 0..{base} for model {self.name!r}, got {k!r}")
        out = copy.copy(self)
        out.coding_variant, out.latent_coarsening = variant, k
        out._bin_exp = base - k
        out.latent_bins = int(self.coder_settings["latent_bins"]) >> k
        return out

    # ---- coding (integer-exact) ----------------------------------------------------------------------------
    @staticmethod
    def _gaussian_ints(out: np.ndarray):
        """A Gaussian head's output (B, 2C, h, w) -> (mean in 2^-12 latent units, log-sigma index S), each
        int64 (B, C*h*w)."""
        c = out.shape[1] // 2
        return out[:, :c].reshape(len(out), -1), out[:, c:].reshape(len(out), -1)

    def _gaussian(self, out: np.ndarray) -> DiscretizedGaussian:
        return DiscretizedGaussian(*self._gaussian_ints(out), self._bin_exp, MU_EXPONENT - self._bin_exp)

    def _standard(self, batch: int, size: int) -> StandardGaussian:
        """N(0, I) over (batch, size) latents: mean 0, log-sigma index 0, tables shared by all latents."""
        return StandardGaussian((batch, size), self._bin_exp, MU_EXPONENT - self._bin_exp)

    def posterior_ints(self, x: np.ndarray):
        """x uint8 (B,28,28) -> q(z1|x) as (mean in 2^-12 latent units, log-sigma index S), int64 (B, L1*49)."""
        return self._gaussian_ints(self._nets["enc"](self._net_input(x)))

    def posterior_params(self, x: np.ndarray):
        """x uint8 (B,28,28) -> q(z1|x) as (mean, std) float64 (B, L1*49) in bin units (for inspection)."""
        mu_int, s_int = self.posterior_ints(x)
        mean = mu_int.astype(np.float64) / (1 << (MU_EXPONENT - self._bin_exp))
        std = tables.sigma_table()[s_int - tables.LOG_SIGMA_MIN] * float(1 << self._bin_exp)
        return mean, std

    def _layer_input(self, z: np.ndarray, shape: tuple) -> np.ndarray:
        """Latent bin indices (B, size) -> network input (B, *shape) in the exported bins (coarse index * 2^k)."""
        z = np.asarray(z)
        return (z << self.latent_coarsening if self.latent_coarsening else z).reshape(-1, *shape)

    def posterior_codec(self, x: np.ndarray):
        """q(z|x): one layer, q(z1|x); two layers, z1 ~ q(z1|x) then z2 ~ q(z2|z1) (``LayeredLatents``)."""
        q1 = self._gaussian(self._nets["enc"](self._net_input(x)))
        if len(self.layer_sizes) == 1:
            return q1

        def layer(i, known):
            return q1 if i == 0 else self._gaussian(self._nets["up"](self._layer_input(known[0], self.latent_shape)))

        return LayeredLatents(len(x), self.layer_sizes, [0, 1], layer)

    def prior_codec(self, batch: int):
        """p(z): one layer, N(0, I); two layers, z2 ~ N(0, I) then z1 ~ p(z1|z2) (``LayeredLatents``)."""
        if len(self.layer_sizes) == 1:
            return self._standard(batch, self.latent_size)
        top_shape = self.top_latent_shape

        def layer(i, known):
            if i == 1:
                return self._standard(batch, self.layer_sizes[1])
            return self._gaussian(self._nets["down"](self._layer_input(known[1], top_shape)))

        return LayeredLatents(batch, self.layer_sizes, [1, 0], layer)

    def likelihood_params(self, z: np.ndarray) -> np.ndarray:
        """z int (B, latent_size) -> integer decoder output (B, C, 28, 28) from the bottom layer z1: the
        likelihood parameters, or with an autoregressive head its context."""
        z1 = np.asarray(z)[:, : self.layer_sizes[0]]
        return self._nets["dec"](self._layer_input(z1, self.latent_shape))

    def _pixel_codec(self, params: np.ndarray):
        """Integer output parameters (..., C) -> the codec of those pixels (shape ...)."""
        if self.config.likelihood == "bernoulli":
            return bernoulli_from_logits(params[..., 0])
        k = self.config.components
        means = params[..., k:2 * k]                                                         # 1/16 pixel
        log_scales = _bounded(params[..., 2 * k:], tables.LOG_SCALE_MIN, tables.LOG_SCALE_MAX)  # 1/64
        return DiscretizedLogisticMixture(means, log_scales, params[..., :k])

    def likelihood_codec(self, z: np.ndarray):
        out = self.likelihood_params(z)
        if self._ar is None:
            return self._pixel_codec(out.transpose(0, 2, 3, 1))  # (B, 28, 28, C)
        ar, shape = self._ar, (len(out), *self.data_shape)
        by_position = []  # the context in params_at's layout, made on the first call (decoding only)

        def params_at(x, t):
            if not by_position:
                by_position.append(ar.context_by_position(out))
            return ar.params_at(by_position[0], x.reshape(shape), t)

        return RasterAutoregressive(shape, self.value_range, params_all=lambda x: ar.params_all(out, x.reshape(shape)),
                                    params_at=params_at, codec_for=self._pixel_codec)

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
        """Apply ``nats_fn`` (uint8 tensor ``_float_input`` -> nats (b,)) in batches with a fixed seed, leaving torch's
        global RNG as it was; returns bits per item, float64 (B,)."""
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            out = [nats_fn(self._float_input(x[i:i + batch])).double().numpy() for i in range(0, len(x), batch)]
        finally:
            torch.random.set_rng_state(gen_state)
        return np.concatenate(out) / np.log(2) if out else np.zeros(0)

    def _float_input(self, x: np.ndarray) -> torch.Tensor:
        """Items uint8 (B, 28, 28) -> the float model's input, uint8 tensor (B, 1, 28, 28)."""
        return torch.from_numpy(np.array(x, dtype=np.uint8)).unsqueeze(1)

    def neg_elbo_bits(self, x: np.ndarray, seed: int = 0, batch: int = 500) -> np.ndarray:
        """Single-sample -ELBO (analytic KL) of the float model, bits per item, shape (B,)."""
        return self._per_item_bits(x, self.float_model.neg_elbo, seed, batch)

    def iwae_bits(self, x: np.ndarray, k: int = 50, seed: int = 0, batch: int = 200) -> np.ndarray:
        """-log of the k-sample importance estimate of p(x) (Burda et al., "Importance Weighted Autoencoders", ICLR
        2016), bits per item, shape (B,)."""
        def nll(xb):
            return -(torch.logsumexp(self.float_model.iwae_log_weights(xb, k).double(), 0) - np.log(k))
        return self._per_item_bits(x, nll, seed, batch)
