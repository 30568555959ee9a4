"""The Kodak -ELBO of a photo checkpoint as the coder pays it: exported with T x T coding tiles, -ELBO summed over
the 24 Kodak images' tiles (pixels outside an image uncoded), in bits per sub-pixel. Compares tile sizes (borders
cost rate) and checkpoints before shipping one (scripts/ship_model.py reports the same figure for the recipe's T).

    python scripts/photo_tile_size.py models/checkpoints/photo-160min.float.safetensors --tiles 64 128

Each export (calibrated on the recipe's 2,000 training crops, as shipped) is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bbans.container.choice import neg_elbo_bits_total
from bbans_models.datasets import PHOTO_RECIPES, photo_folder
from bbans_models.photo_coding_model import PhotoCodingModel
from bbans_models.photo_data import load_png_folders
from bbans_models.photo_export import export_photo
from bbans_models.photo_training import photo_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="float checkpoint of a photo recipe")
    ap.add_argument("--recipe", default="photo", choices=sorted(PHOTO_RECIPES))
    ap.add_argument("--tiles", type=int, nargs="+", default=[64], help="coding tile sizes T to measure")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = PHOTO_RECIPES[a.recipe]
    calib = photo_data(a.recipe, crops_per_epoch=2000)[0].epoch(0, 0)
    kodak = [im.transpose(1, 2, 0)[None] for im in load_png_folders([photo_folder(spec["test"])], 3)]
    subpixels = sum(im.size for im in kodak)
    with tempfile.TemporaryDirectory() as tmp:
        for t in a.tiles:
            start = time.time()
            out = export_photo(a.checkpoint, Path(tmp) / f"T{t}.safetensors", calib, a.recipe, tile=t,
                               bin_exponent=spec["bin_exponent"], card={})
            model = PhotoCodingModel(out)
            bits = sum(neg_elbo_bits_total(model, im) for im in kodak)
            print(f"T={t}: Kodak -ELBO {bits / subpixels:.4f} bpsp as {t}x{t} tiles ({time.time() - start:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
