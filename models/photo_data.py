"""Photo data for the photo model family: PNG folders read with Pillow, random training crops with flips, and
fixed test tiles.

Layout: every image, crop and tile is uint8 channels-first, (C, H, W) per image and (N, C, H, W) per batch (the
layout torch's convolutions take); C = 3 (RGB) or 1 (grey, ``channels=1``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bbans.errors import InputError


def read_png(path: Path, channels: int = 3) -> np.ndarray:
    """One image file as uint8 (C, H, W): RGB for ``channels`` 3, luminance for 1 (Pillow's conversions)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        a = np.asarray(im, dtype=np.uint8)
    return np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None])


def load_png_folders(folders, channels: int = 3) -> list[np.ndarray]:
    """Every ``*.png`` of the folders (sorted by name within each folder, folders in order) as uint8 (C, H, W)."""
    images = []
    for folder in folders:
        files = sorted(Path(folder).glob("*.png"))
        if not files:
            raise InputError(f"no PNG files in {folder}")
        images += [read_png(f, channels) for f in files]
    return images


class RandomCrops:
    """An epoch source for ``train.train``: ``per_epoch`` random ``crop`` x ``crop`` crops per epoch, uint8
    (N, C, crop, crop), each flipped left-right with probability 1/2 (and top-bottom too with ``vertical_flips``).

    A crop's image is drawn with probability proportional to its number of crop positions (about uniform over
    pixels, so a 1024x800 Urban100 photo counts ~5x a 481x321 BSD68 one), its position uniformly. The crops depend
    only on (seed, epoch), so a resumed run sees the same crops as an uninterrupted one."""

    def __init__(self, images: list[np.ndarray], crop: int = 32, per_epoch: int = 2048, vertical_flips: bool = False):
        images = [im for im in images if im.shape[1] >= crop and im.shape[2] >= crop]
        if not images:
            raise InputError(f"no image is at least {crop} x {crop}")
        self.images, self.crop, self.per_epoch, self.vertical_flips = images, crop, per_epoch, vertical_flips
        positions = np.array([(im.shape[1] - crop + 1) * (im.shape[2] - crop + 1) for im in images], np.float64)
        self._p = positions / positions.sum()
        self.item_shape = (images[0].shape[0], crop, crop)

    def __len__(self) -> int:
        return self.per_epoch

    def epoch(self, seed: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch, 7])
        n, c = self.per_epoch, self.crop
        which = rng.choice(len(self.images), size=n, p=self._p)
        out = np.empty((n, *self.item_shape), np.uint8)
        flips = rng.random((n, 2)) < 0.5
        for i, k in enumerate(which):
            im = self.images[k]
            r = rng.integers(0, im.shape[1] - c + 1)
            s = rng.integers(0, im.shape[2] - c + 1)
            crop = im[:, r:r + c, s:s + c]
            if flips[i, 0]:
                crop = crop[:, :, ::-1]
            if self.vertical_flips and flips[i, 1]:
                crop = crop[:, ::-1]
            out[i] = crop
        return out


def tiles(images: list[np.ndarray], tile: int = 32) -> np.ndarray:
    """Every non-overlapping ``tile`` x ``tile`` tile of the images (images in order, each in raster order; a border
    narrower than a tile is dropped), uint8 (N, C, tile, tile). Kodak's 24 768x512 images give 9,216 32x32 tiles."""
    out = []
    for im in images:
        c, h, w = im.shape
        t = im[:, : h - h % tile, : w - w % tile].reshape(c, h // tile, tile, w // tile, tile)
        out.append(t.transpose(1, 3, 0, 2, 4).reshape(-1, c, tile, tile))
    return np.ascontiguousarray(np.concatenate(out))


def tile_subset(all_tiles: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A fixed subset: ``n`` tiles drawn uniformly without replacement with numpy's default_rng(seed), kept in
    their original order (all of them when n >= len)."""
    if n >= len(all_tiles):
        return all_tiles
    pick = np.sort(np.random.default_rng(seed).choice(len(all_tiles), size=n, replace=False))
    return np.ascontiguousarray(all_tiles[pick])


def kodak_tiles(n: int | None = 512, tile: int = 32, seed: int = 0, channels: int = 3) -> np.ndarray:
    """The Kodak test tiles (``datasets.photo_folder("kodak")``): ``tile_subset(tiles(kodak, tile), n, seed)``;
    n None gives all of them. The photo recipe reports its -ELBO on n = 512 32x32 tiles, seed 0."""
    from .datasets import photo_folder

    all_tiles = tiles(load_png_folders([photo_folder("kodak")], channels), tile)
    return all_tiles if n is None else tile_subset(all_tiles, n, seed)
