"""What the coder needs from a model: numpy in, codecs out. No torch here.

A *coding model* is any object with these attributes and methods (duck-typed; ``LatentModel`` documents it):

- ``name`` (str) and ``sha256`` (hex str of its weights): the identity an archive records and checks.
- ``data_shape`` (tuple): shape of one item, e.g. (28, 28). Data arrays are uint8 of shape (N, *data_shape).
- ``value_range`` (lo, hi): the inclusive range of values it models, e.g. (0, 255) or (0, 1).
- ``latent_size`` (int): number of integer latent symbols per item.
- ``coder_settings`` (dict, JSON-serializable): facts the archive records and a decoder must match
  (e.g. inference path, latent bin count); decompress refuses an archive whose settings differ.
- ``posterior(x)``: x uint8 (B, *data_shape) -> Codec over int32 latents (B, latent_size): q(z | x).
- ``likelihood(z)``: z int32 (B, latent_size) -> Codec over the data (B, *data_shape): p(x | z).
- ``prior(batch)``: -> Codec over int32 latents (batch, latent_size): p(z).
- optional ``neg_elbo_bits(x)``: x uint8 (B, *data_shape) -> float64 (B,), the model's own -ELBO in bits per item
  (for reporting the gap between archive rate and -ELBO).

Bits-back needs ``posterior`` and ``likelihood`` to return *bit-identical* distributions when called again during
decoding, for the same inputs, whatever the batch position, memory layout or thread count (DESIGN.md §4).
The shipped models guarantee this with integer-exact inference.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..codecs.basic import Codec


@runtime_checkable
class LatentModel(Protocol):
    name: str
    sha256: str
    data_shape: tuple
    value_range: tuple
    latent_size: int
    coder_settings: dict

    def posterior(self, x: np.ndarray) -> Codec: ...

    def likelihood(self, z: np.ndarray) -> Codec: ...

    def prior(self, batch: int) -> Codec: ...


def model_fits(model, data: np.ndarray) -> bool:
    """True when ``data`` (N, *shape) uint8 lies in the model's shape and value range."""
    lo, hi = model.value_range
    return (
        data.dtype == np.uint8
        and tuple(data.shape[1:]) == tuple(model.data_shape)
        and (data.size == 0 or (int(data.min()) >= lo and int(data.max()) <= hi))
    )
