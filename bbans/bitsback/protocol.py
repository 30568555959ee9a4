"""What bits-back coding needs from a model: numpy in, codecs out (no torch here).

``LatentModel`` is the contract the chain (chain.py), Monte-Carlo bits-back (importance.py), the schedule and the
container pipeline code with; ``Evaluable`` is the separate, optional contract for reporting a model's own rate
bounds. Both are structural (``typing.Protocol``): any object with these members can be coded, so a pipeline can
bring its own model. The shipped models implement both (``bbans_models.coding_model.VAECodingModel``).

Shapes and units: data are uint8 arrays (B, *data_shape); latents are int32 arrays (B, latent_size) of bin
indices; rates are bits (never nats), per item unless a name says per dim.

Bits-back needs the three codec methods to return *bit-identical* distributions when called again during decoding,
for the same inputs, whatever the batch position, memory layout or thread count (docs/design.md, "Determinism").
The shipped models guarantee it with integer-exact inference.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..codecs.basic import Codec


@runtime_checkable
class LatentModel(Protocol):
    """A latent-variable model as the coder sees it.

    - ``name`` and ``sha256`` (64 hex digits of its weights): the identity an archive records and checks.
    - ``data_shape``: shape of one item, e.g. (28, 28); ``value_range``: inclusive (lo, hi), e.g. (0, 255).
    - ``latent_size``: integer latent symbols per item; ``latent_bins``: the alphabet size of each latent symbol
      (bounds the bits one posterior pop can take: latent_size * ceil(log2 latent_bins), which sizes the seed).
    - ``coder_settings``: a JSON-serializable dict of facts a decoder must match (inference path, bins, ...);
      archives record it and decoding refuses an archive whose settings differ.
    """

    name: str
    sha256: str
    data_shape: tuple
    value_range: tuple
    latent_size: int
    latent_bins: int
    coder_settings: dict

    def posterior_codec(self, x: np.ndarray) -> Codec:
        """q(z | x): x uint8 (B, *data_shape) -> a codec over int32 latents (B, latent_size)."""

    def likelihood_codec(self, z: np.ndarray) -> Codec:
        """p(x | z): z int32 (B, latent_size) -> a codec over the items (B, *data_shape)."""

    def prior_codec(self, batch: int) -> Codec:
        """p(z): a codec over int32 latents (batch, latent_size)."""


@runtime_checkable
class Evaluable(Protocol):
    """A model that reports its own rate bounds on data (for comparing an archive's rate with them)."""

    def neg_elbo_bits(self, x: np.ndarray) -> np.ndarray:
        """The -ELBO of each item of x uint8 (B, *data_shape): float64 (B,), bits per item."""

    def iwae_bits(self, x: np.ndarray, k: int) -> np.ndarray:
        """The k-sample importance-weighted bound (IWAE-k; k = 1 is the -ELBO) per item: float64 (B,), bits."""


def model_fits(model: LatentModel, data: np.ndarray) -> bool:
    """True when ``data`` (N, *shape) uint8 lies in the model's item shape and value range."""
    lo, hi = model.value_range
    return (
        data.dtype == np.uint8
        and tuple(data.shape[1:]) == tuple(model.data_shape)
        and (data.size == 0 or (int(data.min()) >= lo and int(data.max()) <= hi))
    )
