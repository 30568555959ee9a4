"""The pretrained models shipped in ``bbans_models/weights``, each pinned by sha256.

``provider`` is registered under the entry-point group ``bbans.models`` (pyproject.toml), which is how the core
(``bbans.registry``) finds models without importing this package by name.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bbans.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# name -> (file in weights/, sha256 of that file, description). The names are what archives record. An archive
# records a model by name and sha256, so a model file keeps decoding its archives after a rename: ``find`` matches
# the sha256 (the weights) when the recorded name is a former one.
REGISTRY = {
    "mnist": (
        "mnist.safetensors",
        "ee2f7a4d9a3abb05399e55eb7741216d1dbd78b73b98083b3b26dc3a3051471f",
        "8-bit 28x28 grey (MNIST): conv VAE, 8x7x7 latents, local autoregressive mixture of 5 discretized "
        "logistics per pixel",
    ),
    "binarized-mnist": (
        "binarized-mnist.safetensors",
        "406b9f1afea624e32d90dd392e9ddf3c357db2c49c54dbcce79af0490bbd7d81",
        "binary 28x28 (binarized MNIST): conv VAE, two latent layers (8x7x7 under 4x7x7), local autoregressive "
        "Bernoulli pixels",
    ),
    "mnist-small": (
        "mnist-small.safetensors",
        "f32775f9835c9ea10b7ec057cd8d64c994c747829d33072b2ec6ce4b06f25672",
        "8-bit 28x28 grey (MNIST): conv VAE, 8x7x7 latents, mixture of 5 discretized logistics (faster decoding; "
        "shipped as 'mnist' before)",
    ),
    "binarized-mnist-small": (
        "binarized-mnist-small.safetensors",
        "30d12cb1b6533d2aef6b2c8d5716d9476cfd3cad29553edb2c649c9dc371e91f",
        "binary 28x28 (binarized MNIST): conv VAE, 8x7x7 latents, Bernoulli pixels (faster decoding; shipped as "
        "'binarized-mnist' before)",
    ),
}

# Weights that were shipped under a name and then replaced by better ones. Not listed (so never picked, benchmarked
# or offered), but ``find`` still matches their sha256, so archives written with them keep decoding.
RETIRED = {
    "binarized-mnist-v1": (
        "binarized-mnist-v1.safetensors",
        "40a1c4dec728cf84db01cfcef47935ddc5050699d33cc627b9178aa0a02f9525",
        "binarized-mnist as shipped 2026-12-03 17:15 UTC (60 CPU-minutes of training), replaced the same day",
    ),
}


class BuiltinProvider:
    """Implements the provider interface of ``bbans.registry`` for the shipped weights."""

    def list(self) -> list[dict]:
        out = []
        for name, (fname, sha, desc) in REGISTRY.items():
            binary = name.startswith("binarized")
            out.append({"name": name, "data_shape": (28, 28), "value_range": (0, 1) if binary else (0, 255),
                        "description": desc, "sha256": sha, "path": str(WEIGHTS_DIR / fname)})
        return out

    @lru_cache(maxsize=None)
    def load(self, name: str):
        from .coding_model import VAECodingModel

        entry = REGISTRY.get(name) or RETIRED.get(name)
        if entry is None:
            return None
        fname, sha, _ = entry
        return VAECodingModel(WEIGHTS_DIR / fname, expected_sha256=sha, name=name)

    def load_path(self, path):
        from .coding_model import VAECodingModel

        p = Path(path)
        if not p.is_file():
            return None
        try:
            return VAECodingModel(p)
        except ModelError:
            return None

    def find(self, name: str, sha256: str):
        """The model with these weights: by name, or (an archive of a model since renamed) by sha256 alone."""
        if name in REGISTRY and REGISTRY[name][1] == sha256:
            return self.load(name)
        for other, (_, sha, _) in (REGISTRY | RETIRED).items():
            if sha == sha256:
                return self.load(other)
        return None


provider = BuiltinProvider()
