# BIT-EXACT: variant_digest is written into archives; tests/test_golden.py must pass, else version it (docs/design.md).
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

import json
import zlib
from typing import Protocol, runtime_checkable

import numpy as np

from ..codecs.basic import Codec
from ..errors import ModelError


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


@runtime_checkable
class ItemDependent(Protocol):
    """Optional: a model whose codecs depend on which items of a chain they code. ``for_items(start, stop)``
    returns the model (itself a ``LatentModel``) that codes items ``start``..``stop``-1; the chain asks for it
    before every batch (``chain.items``). The tiles of photos use it (``bbans.container.tiles``)."""

    def for_items(self, start: int, stop: int) -> LatentModel:
        """The model coding items start..stop-1."""


def tile_size(model) -> int:
    """The tile side T of an image model (one whose ``tile_size`` attribute is a positive int): it codes images
    (N, H, W, C) of any H, W >= 1 as T x T x C tiles, its ``data_shape`` being (T, T, C); 0 for other models."""
    t = getattr(model, "tile_size", 0)
    return int(t) if isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t > 0 else 0


def model_fits(model: LatentModel, data: np.ndarray) -> bool:
    """True when ``data`` (N, *shape) uint8 lies in the model's item shape and value range. An image model
    (``tile_size``) fits images (N, H, W, C) of any H, W >= 1 with its C."""
    lo, hi = model.value_range
    shape = tuple(data.shape[1:])
    if tile_size(model):
        shape_fits = len(shape) == 3 and shape[2] == tuple(model.data_shape)[2] and min(shape) >= 1
    else:
        shape_fits = shape == tuple(model.data_shape)
    return (
        data.dtype == np.uint8
        and shape_fits
        and (data.size == 0 or (int(data.min()) >= lo and int(data.max()) <= hi))
    )


@runtime_checkable
class CodingVariants(Protocol):
    """Optional: a model that can code with the same weights in several ways chosen at coding time, such as wider
    latent bins (docs/design.md, "Coding variants"). A variant is a small
    JSON-serializable dict ({} = the model as exported); archives identify it by ``variant_digest``.

    - ``coding_variant``: the variant this object codes with;
    - ``known_coding_variants``: every variant archives of this model may have used (for decoding);
    - ``with_coding_variant(variant)``: the same weights coding with ``variant`` (ModelError if it cannot).
    """

    coding_variant: dict
    known_coding_variants: list

    def with_coding_variant(self, variant: dict) -> "LatentModel":
        """The same weights coding with ``variant``."""


def variant_of(model) -> dict:
    """The coding variant ``model`` codes with ({} for a model without variants)."""
    return dict(model.coding_variant) if isinstance(model, CodingVariants) else {}


def variant_digest(settings: dict, variant: dict) -> int:
    """zlib.crc32 of the compact JSON (sorted keys) of {"settings": coder settings, "variant": variant}: what a
    layout-2 archive stores to name the coder settings and variant it was coded with."""
    text = json.dumps({"settings": settings, "variant": variant}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return zlib.crc32(text.encode("utf-8"))


def model_digest(model) -> int:
    """``variant_digest`` of ``model``'s coder settings and coding variant."""
    return variant_digest(dict(model.coder_settings), variant_of(model))


def with_digest(model, digest: int, bits: int = 32):
    """``model`` coding with the variant whose ``variant_digest`` is ``digest`` (itself, {} or one of its known
    variants), comparing the digest's low ``bits`` (an archive of layout 3 stores 16); ModelError when none
    matches."""
    candidates = [variant_of(model), {}]
    if isinstance(model, CodingVariants):
        candidates += [dict(v) for v in model.known_coding_variants]
    for variant in candidates:
        if variant_digest(dict(model.coder_settings), variant) & ((1 << bits) - 1) == digest:
            return model if variant == variant_of(model) else model.with_coding_variant(variant)
    raise ModelError(f"the archive was coded with coder settings or a coding variant (digest {digest:0{bits // 4}x}) "
                     f"that model {getattr(model, 'name', '?')!r} does not know; use the bbans version and model build "
                     "that made the archive")


def exported(model):
    """``model`` coding as exported (variant {}): what layout-1 archives were coded with."""
    return model.with_coding_variant({}) if variant_of(model) else model
