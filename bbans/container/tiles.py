# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Images of any size as the tiles an image model codes (docs/design.md, "Photos as tiles").

An image model (``protocol.tile_size`` T > 0; its ``data_shape`` is (T, T, C)) codes images (N, H, W, C) of any
H, W >= 1 as tiles: each image is cut into ceil(H/T) x ceil(W/T) tiles in raster order, images one after another,
and the tiles are the items of one bits-back chain, so a photo is hundreds of items coded in full batches. Where a
tile reaches past the image's right or bottom edge, the pixels outside hold the model's ``tile_fill`` value and are
not coded (``RasterAutoregressive``'s mask): both sides know every tile's extent from the image shape that the
archive header records.

Shapes: images uint8 (N, H, W, C); tiles uint8 (M, T, T, C); extents int64 (M, 2) = (rows, columns) inside the
image, each in 1..T.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError


def tile_grid(shape: tuple, tile: int) -> tuple[int, int]:
    """(tile rows, tile columns) of one image of ``shape`` (N, H, W, C)."""
    return -(-int(shape[1]) // tile), -(-int(shape[2]) // tile)


def tile_count(shape: tuple, tile: int) -> int:
    """M: the tiles of images of ``shape`` (N, H, W, C)."""
    rows, cols = tile_grid(shape, tile)
    return int(shape[0]) * rows * cols


def tile_extents(shape: tuple, tile: int) -> np.ndarray:
    """int64 (M, 2): each tile's rows and columns inside its image, tiles in ``to_tiles`` order."""
    rows, cols = tile_grid(shape, tile)
    h = np.minimum(tile, int(shape[1]) - tile * np.arange(rows))
    w = np.minimum(tile, int(shape[2]) - tile * np.arange(cols))
    one = np.stack(np.broadcast_arrays(h[:, None], w[None, :]), axis=-1).reshape(-1, 2)
    return np.tile(one, (int(shape[0]), 1)).astype(np.int64)


def to_tiles(images: np.ndarray, tile: int, fill: int) -> np.ndarray:
    """images uint8 (N, H, W, C) -> tiles uint8 (M, T, T, C), pixels outside the images set to ``fill``."""
    n, hgt, wid, c = images.shape
    rows, cols = tile_grid(images.shape, tile)
    padded = np.full((n, rows * tile, cols * tile, c), fill, np.uint8)
    padded[:, :hgt, :wid] = images
    tiles = padded.reshape(n, rows, tile, cols, tile, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(tiles.reshape(-1, tile, tile, c))


def from_tiles(tiles: np.ndarray, shape: tuple, tile: int) -> np.ndarray:
    """The inverse of ``to_tiles``: tiles (M, T, T, C) -> images uint8 of ``shape`` (N, H, W, C)."""
    n, hgt, wid, c = (int(s) for s in shape)
    rows, cols = tile_grid(shape, tile)
    grid = tiles.reshape(n, rows, cols, tile, tile, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(grid.reshape(n, rows * tile, cols * tile, c)[:, :hgt, :wid])


def coded_mask(extents: np.ndarray, tile: int, channels: int) -> np.ndarray:
    """bool (M, T, T, C): True at the sub-pixels inside the image (the ones a tile codes)."""
    r = np.arange(tile)
    inside = (r[None, :, None] < extents[:, 0, None, None]) & (r[None, None, :] < extents[:, 1, None, None])
    return np.broadcast_to(inside[..., None], (len(extents), tile, tile, channels))


class TileItems:
    """An image model seen by the chain as a model of its tiles: the items are tiles with the given ``extents``
    (int64 (M, 2)), and ``for_items`` (``protocol.ItemDependent``) hands each batch the view whose likelihood
    codes only its tiles' pixels inside the image. Everything else is the image model's."""

    def __init__(self, model, extents: np.ndarray):
        self.model = model
        self.extents = np.asarray(extents, np.int64)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def for_items(self, start: int, stop: int) -> "TileItems":
        return TileItems(self.model, self.extents[start:stop])

    def likelihood_codec(self, z: np.ndarray):
        """p(x | z) of this view's tiles: z int32 (M, latent_size) with M = len(extents)."""
        if len(z) != len(self.extents):
            raise ModelError(f"{len(z)} latents for {len(self.extents)} tiles")
        return self.model.likelihood_codec(z, extents=self.extents)

    def posterior_codec(self, x: np.ndarray):
        return self.model.posterior_codec(x)

    def prior_codec(self, batch: int):
        return self.model.prior_codec(batch)


def tile_items(model, shape: tuple) -> TileItems:
    """The image model ``model`` as the chain's model of the tiles of images of ``shape`` (N, H, W, C)."""
    return TileItems(model, tile_extents(shape, model.tile_size))


def progress_in_images(progress, n_tiles: int, n_images: int):
    """``progress(done, total)`` in images (fractions of one while its tiles are coded) from the chain's calls
    in tiles; None for None."""
    if progress is None:
        return None
    return lambda done, total: progress(done * n_images / max(n_tiles, 1), n_images)
