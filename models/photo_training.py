"""Training the photo model family (``photo_vae``) from a photo recipe (``datasets.PHOTO_RECIPES``) with the common
trainer (``train.train``): random crops with flips of the training photos each epoch, the true -ELBO on a fixed
subset of Kodak tiles after every epoch, checkpoints with the optimizer state, resume.

Units: rates in bits per sub-pixel (bpsp; for C-channel items the trainer's "bits/dim" is the same number).
Reproduce a measurement (one thread, 5 minutes, then the final evaluation on the 512 tiles and all 9,216)::

    python -m bbans_models.photo_training --out /tmp/photo.st --minutes 5 --threads 1 --full-test
    python -m bbans_models.photo_training --profile              # per-step time: likelihood vs networks
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .datasets import PHOTO_RECIPES, photo_folder
from .photo_data import RandomCrops, kodak_tiles, load_png_folders
from .photo_vae import PhotoVAE, PhotoVAEConfig


def photo_config(recipe: str = "photo", **overrides) -> PhotoVAEConfig:
    """The ``PhotoVAEConfig`` of ``recipe`` with some fields replaced (None keeps the recipe's)."""
    fields = {**PHOTO_RECIPES[recipe]["config"], **{k: v for k, v in overrides.items() if v is not None}}
    return PhotoVAEConfig(**fields)


def photo_data(recipe: str = "photo", crops_per_epoch: int | None = None, test_tiles: int | None = None):
    """(training crops: a ``RandomCrops`` epoch source, test tiles uint8 (N, C, t, t)) of ``recipe``."""
    spec = PHOTO_RECIPES[recipe]
    channels = spec["config"].get("channels", 3)
    images = load_png_folders([photo_folder(name) for name in spec["train"]], channels)
    crops = RandomCrops(images, spec["crop"], crops_per_epoch or spec["crops_per_epoch"])
    n = spec["test_tiles"] if test_tiles is None else (None if test_tiles <= 0 else test_tiles)
    return crops, kodak_tiles(n, spec["tile"], seed=0, channels=channels)


@torch.no_grad()
def _bits_per_subpixel(model: PhotoVAE, batches, subpixels: int, seed: int, device) -> dict:
    """Sum ``PhotoVAE.layer_terms`` over ``batches`` (uint8 arrays (b, C, H, W)) with a fixed seed, leaving
    torch's global RNG as it was; returns each term and "latent" (all layers) and "neg_elbo" in bits per
    sub-pixel over ``subpixels``."""
    device = device or next(model.parameters()).device
    model.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    sums: dict = {}
    try:
        for xb in batches:
            x = torch.from_numpy(np.ascontiguousarray(xb)).to(device)
            for key, value in model.layer_terms(x).items():
                sums[key] = sums.get(key, 0.0) + float(value.double().sum())
    finally:
        torch.random.set_rng_state(state)
    out = {key: value / (subpixels * math.log(2)) for key, value in sums.items()}
    out["latent"] = sum(v for k, v in out.items() if k != "reconstruction")
    out["neg_elbo"] = out["reconstruction"] + out["latent"]
    return out


def evaluate_photo(model: PhotoVAE, tiles: np.ndarray, batch: int = 256, seed: int = 0, device=None) -> dict:
    """The single-sample -ELBO of ``tiles`` (N, C, H, W) uint8 and its parts, bits per sub-pixel: "neg_elbo",
    "reconstruction" (-log p(x|z1)), "latent" (all layers), "z1", "z2" (see ``PhotoVAE.layer_terms``); torch's
    global RNG is left as it was."""
    batches = (tiles[i:i + batch] for i in range(0, len(tiles), batch))
    return _bits_per_subpixel(model, batches, tiles.size, seed, device)


def evaluate_images(model: PhotoVAE, images: list[np.ndarray], seed: int = 0, device=None) -> dict:
    """As ``evaluate_photo`` over whole images of any size divisible by 8 (one at a time), e.g. the 24 Kodak
    photos: total bits over total sub-pixels (the whole-set figure codecs report), no tile borders."""
    return _bits_per_subpixel(model, (im[None] for im in images), sum(im.size for im in images), seed, device)


class FreeBits:
    """The free-bits loss of Kingma et al., "Improved variational inference with inverse autoregressive flow"
    (NeurIPS 2016), per latent channel: mean reconstruction + beta * sum over the channels of every layer of
    max(``nats`` x positions, batch mean of the channel's cost) (``PhotoVAE.channel_terms``). A channel then
    costs the loss nothing below ``nats`` per latent value, which keeps the posterior from collapsing early; the
    reported per-item cost stays the true single-sample -ELBO (``reports_elbo``), so ``train`` logs and tests it
    like "elbo"."""

    reports_elbo = True

    def __init__(self, nats: float):
        self.nats = float(nats)
        self.label = f"elbo-free-bits-{self.nats:g}"

    def __call__(self, model: PhotoVAE, x: torch.Tensor, beta: float):
        terms = model.channel_terms(x)
        rec = terms.pop("reconstruction")
        latent = sum(cost.sum(1) for cost in terms.values()) if terms else torch.zeros_like(rec)
        floor = 0.0
        for key, cost in terms.items():   # z1 has H/4 x W/4 positions per channel, z2 H/8 x W/8
            positions = (x.shape[2] * x.shape[3]) // (16 if key == "z1" else 64)
            floor = floor + torch.clamp(cost.mean(0), min=self.nats * positions).sum()
        return rec.mean() + beta * floor, (rec + latent).detach()


def train_photo(out: Path, minutes: float = 5.0, epochs: int | None = None, recipe: str = "photo",
                overrides: dict | None = None, batch_size: int = 32, lr: float = 2e-3, lr_schedule: str = "cosine",
                seed: int = 0, device: str | None = None, resume: bool = False, kl_warmup: int | None = None,
                crops_per_epoch: int | None = None, test_tiles: int | None = None, full_test: bool = False,
                free_bits: float = 0.0, log=print) -> dict:
    """Train ``recipe`` into the float checkpoint ``out`` (resume continues it); returns the training facts plus
    "test": ``evaluate_photo`` on the recipe's test tiles, "test_all" (with ``full_test``) on all 9,216 Kodak tiles,
    and "images_per_second" (training crops per second of training wall time, evaluation included).
    ``free_bits`` > 0: train with the ``FreeBits`` loss at that many nats per latent value (reported: the -ELBO)."""
    from .train import load_float_checkpoint, train

    out = Path(out)
    config = photo_config(recipe, **(overrides or {}))
    crops, tiles = photo_data(recipe, crops_per_epoch, test_tiles)
    spec = PHOTO_RECIPES[recipe]
    log(f"photo recipe {recipe!r}: {len(crops.images)} training photos ({', '.join(spec['train'])}), "
        f"{len(crops)} random {spec['crop']}x{spec['crop']} crops per epoch with flips; -ELBO on {len(tiles)} "
        f"{spec['tile']}x{spec['tile']} Kodak tiles (test[:2000] below, bits/dim = bpsp); config {config.to_dict()}")
    t = time.time()
    model = train(config, crops, out, minutes=minutes, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                  device=device, resume=resume, test_data=tiles,
                  kl_warmup_steps=spec["kl_warmup"] if kl_warmup is None else kl_warmup,
                  lr_schedule=lr_schedule, objective=FreeBits(free_bits) if free_bits > 0 else "elbo", log=log)
    wall = time.time() - t
    _, facts = load_float_checkpoint(out) if out.exists() else (None, {})
    facts = dict(facts)
    facts["parameters"] = sum(p.numel() for p in model.parameters())
    if facts.get("steps"):
        facts["images_per_second"] = round(facts["steps"] * batch_size / max(facts["minutes"] * 60, 1e-9), 1)
    facts["this_run_seconds"] = round(wall, 1)
    facts["test"] = evaluate_photo(model, tiles)
    log("test tiles ({}): -ELBO {neg_elbo:.4f} bpsp = reconstruction {reconstruction:.4f} + latents {latent:.4f}"
        .format(len(tiles), **facts["test"]) + "".join(f" ({k} {v:.4f})" for k, v in facts["test"].items()
                                                         if k in ("z1", "z2")))
    if full_test:
        all_tiles = kodak_tiles(None, spec["tile"], channels=config.channels)
        facts["test_all"] = evaluate_photo(model, all_tiles)
        log("all {} Kodak tiles: -ELBO {neg_elbo:.4f} bpsp = reconstruction {reconstruction:.4f} + latents "
            "{latent:.4f}".format(len(all_tiles), **facts["test_all"]))
    return facts


def evaluate_checkpoint(path: Path, recipe: str = "photo") -> dict:
    """-ELBO (bpsp) of a float checkpoint on the recipe's test tiles, on all Kodak tiles and on the whole images."""
    from .datasets import photo_folder
    from .train import load_float_checkpoint

    model, facts = load_float_checkpoint(Path(path))
    spec = PHOTO_RECIPES[recipe]
    channels = model.config.channels
    images = load_png_folders([photo_folder(spec["test"])], channels)
    return {"steps": facts.get("steps"), "minutes": facts.get("minutes"),
            "tiles": evaluate_photo(model, kodak_tiles(spec["test_tiles"], spec["tile"], channels=channels)),
            "all_tiles": evaluate_photo(model, kodak_tiles(None, spec["tile"], channels=channels)),
            "images": evaluate_images(model, images)}


def step_profile(config: PhotoVAEConfig, batch: int = 32, crop: int = 32, steps: int = 6, seed: int = 0) -> dict:
    """Milliseconds per training step (forward + backward, no optimizer step) on random crops, split into the
    likelihood (``photo_likelihood.channel_mixture_log_prob`` on given parameters, forward + backward) and the
    rest (the networks: encoder, latent nets, decoder, AR head, and the latent terms). Medians over ``steps``."""
    from .photo_likelihood import channel_mixture_log_prob

    torch.manual_seed(seed)
    model = config.build()
    x = torch.randint(0, 256, (batch, config.channels, crop, crop), dtype=torch.uint8)
    raw = torch.randn(batch, config.out_channels, crop, crop, requires_grad=True)

    def timed(fn):
        fn()
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return 1000 * float(np.median(times))

    def full():
        rec, latent = model.elbo_terms(x)
        model.zero_grad(set_to_none=True)
        (rec + latent).mean().backward()

    def likelihood():
        raw.grad = None
        channel_mixture_log_prob(x, raw, config.components).mean().backward()

    step, lik = timed(full), timed(likelihood)
    return {"step_ms": round(step, 1), "likelihood_ms": round(lik, 1), "networks_ms": round(step - lik, 1),
            "batch": batch, "crop": crop, "threads": torch.get_num_threads(),
            "images_per_second": round(batch / step * 1000, 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bbans_models.photo_training", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="float checkpoint to write (or continue with --resume)")
    ap.add_argument("--recipe", default="photo", choices=sorted(PHOTO_RECIPES))
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine")
    ap.add_argument("--kl-warmup", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--full-test", action="store_true", help="also evaluate on all 9,216 32x32 Kodak tiles")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="override a config field, e.g. --set latent_channels=0 --set 'hidden=[16,32,64]'")
    ap.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                    help="only evaluate this float checkpoint: the recipe's tiles, all 9,216 tiles, the 24 images")
    ap.add_argument("--profile", action="store_true", help="print the per-step time split and exit")
    ap.add_argument("--free-bits", type=float, default=0.0, metavar="NATS",
                    help="free-bits loss: each latent channel's cost is free below NATS per latent value")
    ap.add_argument("--json", type=Path, help="write the returned facts here")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.profile:
        print(json.dumps(step_profile(photo_config(a.recipe, **overrides), batch=a.batch_size)))
        return
    if a.evaluate:
        print(json.dumps(evaluate_checkpoint(a.evaluate, a.recipe), indent=1))
        return
    if a.out is None:
        ap.error("--out is required")
    facts = train_photo(a.out, a.minutes, a.epochs, a.recipe, overrides, a.batch_size, a.lr, a.lr_schedule, a.seed,
                        a.device, a.resume, a.kl_warmup, full_test=a.full_test, free_bits=a.free_bits)
    print(json.dumps(facts, indent=1))
    if a.json:
        a.json.write_text(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main()
