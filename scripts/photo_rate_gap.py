"""Where a photo model's coded rate leaves its float -ELBO: per Kodak image, the integer-exact chain's net rate
(-log2 p(x|z) - log2 p(z) + log2 q(z|x) at one posterior sample z popped from a seeded stack, exactly what the
bits-back chain pays without the initial bits) beside the float model's single-sample -ELBO on the same 64x64 tiles,
all in bits per sub-pixel. With ``--checkpoint`` it first re-exports the float checkpoint with the given integer
precision (split weight bits, activation clip bits; ``models/photo_export.py``) into a temporary file.

    python scripts/photo_rate_gap.py kodim01 kodim03 kodim20                      # the shipped `photo`
    python scripts/photo_rate_gap.py --checkpoint ckpt.st --split 0 --clip 0 kodim03   # as int-exact-1 would

docs/design.md, "Determinism" (integer-exact networks), records what this measured.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "test" / "kodak"


def exported(checkpoint: str, split: int, clip: int, out: Path):
    import bbans_models.photo_export as pe
    from bbans_models.photo_coding_model import PhotoCodingModel
    from bbans_models.photo_training import photo_data
    from bbans_models.datasets import PHOTO_RECIPES

    pe.WEIGHT_SPLIT_BITS, pe.CLIP_BITS = split, clip
    spec = PHOTO_RECIPES["photo"]
    crops, _ = photo_data("photo", crops_per_epoch=2000)
    pe.export_photo(Path(checkpoint), out, crops.epoch(0, 0), "photo", tile=spec["coding_tile"],
                    bin_exponent=spec["bin_exponent"])
    return PhotoCodingModel(out)


def gap(model, image: np.ndarray) -> dict:
    """Bits (totals over the image's tiles) of each term, and the float -ELBO; ``image`` uint8 (1, H, W, 3)."""
    import constriction

    from bbans.bitsback import schedule
    from bbans.container import tiles

    items = tiles.to_tiles(image, model.tile_size, model.tile_fill)
    extents = tiles.tile_extents(image.shape, model.tile_size)
    q = model.posterior_codec(items)
    z = q.pop(constriction.stream.stack.AnsCoder(schedule.seed_words(1 << 18)))
    one = 2.0 ** -20  # cost() is in 2^-20 bits
    return {"q": q.cost(z).sum() * one, "prior": model.prior_codec(len(items)).cost(z).sum() * one,
            "likelihood": model.likelihood_codec(z, extents).cost(items).sum() * one,
            "elbo": float(model.neg_elbo_bits(items, extents=extents).sum()), "subpixels": image.size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="Kodak image names (kodim01 ...) or PNG paths")
    ap.add_argument("--model", default="photo", help="a registry name or model file (default: photo)")
    ap.add_argument("--checkpoint", help="re-export this float checkpoint first, with --split / --clip")
    ap.add_argument("--split", type=int, default=4, help="split weight bits for --checkpoint (default 4)")
    ap.add_argument("--clip", type=int, default=1, help="activation clip bits for --checkpoint (default 1)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    from PIL import Image

    from bbans.container import registry

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = (exported(a.checkpoint, a.split, a.clip, Path(tmp) / "photo.safetensors") if a.checkpoint
                 else registry.load_model(a.model))
        total = {"net": 0.0, "elbo": 0.0, "subpixels": 0}
        print("image        -log q   -log p(z)  -log p(x|z)   net    float -ELBO   gap   (bits per sub-pixel)")
        for name in a.images:
            path = Path(name) if name.endswith(".png") else KODAK / f"{name}.png"
            with Image.open(path) as im:
                x = np.asarray(im.convert("RGB"))[None]
            g = gap(model, x)
            s, net = g["subpixels"], g["likelihood"] + g["prior"] - g["q"]
            print(f"{path.stem:<12} {g['q'] / s:7.4f}  {g['prior'] / s:9.4f}  {g['likelihood'] / s:11.4f}  "
                  f"{net / s:6.4f}  {g['elbo'] / s:11.4f}  {100 * (net / g['elbo'] - 1):+5.2f}%", flush=True)
            total["net"] += net
            total["elbo"] += g["elbo"]
            total["subpixels"] += s
        print(f"{'all':<12} net {total['net'] / total['subpixels']:.4f}, float -ELBO "
              f"{total['elbo'] / total['subpixels']:.4f}, {100 * (total['net'] / total['elbo'] - 1):+.2f}%")


if __name__ == "__main__":
    main()
