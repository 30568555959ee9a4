"""One training run from a recipe, start to finish: train (or resume) the float VAE with its checkpoint, export it
as an integer-exact coding model, and check that the file loads and codes. ``bbans train`` maps its options onto
``train_recipe``; the steps live here so that the command line only maps files and prints.

Units: the -ELBO is reported in bits per dimension (per pixel); budgets in minutes or epochs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bbans.errors import BBANSError, InputError, ModelError

from .datasets import PHOTO_RECIPES, RECIPES


def float_checkpoint_path(out: Path) -> Path:
    """Where the float checkpoint of the coding model ``out`` lives (weights and optimizer state)."""
    return out.with_name(out.name + ".float.safetensors")


def check_checkpoint(out: Path, resume: bool, force: bool) -> Path:
    """The float checkpoint path, after checking it agrees with ``resume`` / ``force``."""
    float_path = float_checkpoint_path(out)
    if resume and not float_path.exists():
        raise InputError(f"--resume: {float_path} not found (start without --resume)")
    if not resume and float_path.exists() and not force:
        raise BBANSError(f"{float_path} already exists; use --resume to continue it or -f to start over")
    return float_path


def recipe_config(recipe: str, **sizes):
    """The ``VAEConfig`` of ``recipe`` with the given sizes (latent_channels, top_latent_channels, ar_channels;
    None keeps the recipe's) and a one-line description of it."""
    from .vae import VAEConfig

    fields = {**RECIPES[recipe]["config"], **{k: v for k, v in sizes.items() if v is not None}}
    top = fields.get("top_latent_channels", 0)
    layers = f"{fields.get('latent_channels', 8)} x 7 x 7" + (f" under {top} x 7 x 7" if top else "")
    pixels = "autoregressive" if fields.get("ar_channels") else "independent"
    return VAEConfig(**fields), f"latents {layers}, pixels {pixels}"


def train_recipe(recipe: str, out: Path, *, sizes: dict, minutes: float, epochs: int | None, batch_size: int | None,
                 lr: float | None, lr_schedule: str, objective: str, iwae_k: int, kl_warmup: int | None, seed: int,
                 device: str | None, resume: bool, force: bool, name: str | None, calibration: int,
                 log) -> dict | None:
    """Train ``recipe`` (a ``RECIPES`` or ``PHOTO_RECIPES`` name) and write the coding model ``out``; returns {"name", "sha256", "test_neg_elbo_bpd"} (None on
    the other processes of a data-parallel run, where rank 0 exports).

    ``log(line)`` receives progress lines. The float checkpoint (``float_checkpoint_path(out)``) is saved after
    every epoch, so an interrupted run keeps its last epoch and ``resume`` continues it.
    """
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here; use --device cpu")
    if recipe in PHOTO_RECIPES:
        if objective != "elbo":
            raise InputError(f"recipe {recipe!r} trains on the ELBO only; drop --objective {objective}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError(f"recipe {recipe!r} trains in one process; drop --nproc")
        return train_photo_recipe(recipe, out, sizes=sizes, minutes=minutes, epochs=epochs, batch_size=batch_size,
                                  lr=lr, lr_schedule=lr_schedule, kl_warmup=kl_warmup, seed=seed, device=device,
                                  resume=resume, force=force, name=name, calibration=calibration, log=log)
    batch_size, lr = batch_size or 128, lr or 1e-3
    from .datasets import load_dataset, recipe_splits
    from .export import export
    from .train import train

    float_path = check_checkpoint(out, resume, force)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone logs, exports and checks
    if not main_process:
        def log(line: str) -> None:
            """The other processes of a data-parallel run stay quiet."""
    spec = RECIPES[recipe]
    config, shape_text = recipe_config(recipe, **sizes)
    train_data, test_data = (load_dataset(split) for split in recipe_splits(recipe))
    log(f"training a VAE ({recipe}) on {spec['dataset']}: {len(train_data):,} training items, "
        f"{len(test_data):,} test items; checkpoint {float_path}")
    budget = f"{epochs} epochs" if epochs is not None else f"{minutes:g} minutes"
    log(f"budget {budget}, batch {batch_size}, lr {lr:g} ({lr_schedule}), seed {seed}, {shape_text}")
    train(config, train_data, float_path, minutes=minutes, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
          device=device, resume=resume, test_data=test_data,
          kl_warmup_steps=spec["kl_warmup"] if kl_warmup is None else kl_warmup, objective=objective,
          iwae_k=iwae_k, lr_schedule=lr_schedule, log=log)
    if not main_process:
        return None
    if not float_path.exists():
        raise ModelError("training ran no full epoch, so there is nothing to export; give it more --minutes")

    rng = np.random.default_rng(seed)
    calib = train_data[np.sort(rng.choice(len(train_data), size=min(calibration, len(train_data)), replace=False))]
    model_name = name or out.name.split(".")[0]
    log(f"exporting coding model {model_name!r} (calibrating on {len(calib):,} training items) ...")
    t = time.perf_counter()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        card = {"dataset": spec["dataset"], "recipe": recipe, "seed": seed, "calibration_items": int(len(calib))}
        written = Path(export(float_path, tmp, np.ascontiguousarray(calib), model_name, card=card,
                              bin_exponent=spec["bin_exponent"]))
        if out.exists() and not (force or resume):
            raise BBANSError(f"{out} already exists; use -f/--force to overwrite it")
        os.replace(written, out)
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".tmp")):
            if p.exists():
                p.unlink()
    log(f"wrote {out} ({out.stat().st_size:,} bytes) in {time.perf_counter() - t:.2f} s")
    return verify_coding_model(out, test_data)


def train_photo_recipe(recipe: str, out: Path, *, sizes: dict, minutes: float, epochs: int | None,
                       batch_size: int | None, lr: float | None, lr_schedule: str, kl_warmup: int | None, seed: int,
                       device: str | None, resume: bool, force: bool, name: str | None, calibration: int,
                       log=print, **ignored) -> dict:
    """``bbans train photo``: train (or resume) the float checkpoint beside ``out`` (``training_run``'s
    ``float_checkpoint_path``), then export the coding model ``out`` with the recipe's coding tile side, calibrated on
    ``calibration`` training crops, and measure the coding model's -ELBO (bpsp) on the recipe's Kodak test tiles.
    Returns {"name", "sha256", "test_items", "test_neg_elbo_bpd"} as ``training_run.train_recipe``."""
    from .photo_coding_model import PhotoCodingModel
    from .photo_export import export_photo
    from .photo_training import photo_data, train_photo

    spec = PHOTO_RECIPES[recipe]
    float_path = check_checkpoint(Path(out), resume, force)
    overrides = {k: v for k, v in sizes.items() if v is not None}
    facts = train_photo(float_path, minutes=minutes, epochs=epochs, recipe=recipe, overrides=overrides,
                        batch_size=batch_size or spec["batch_size"], lr=lr or spec["lr"], lr_schedule=lr_schedule,
                        seed=seed, device=device, resume=resume, kl_warmup=kl_warmup, log=log)
    if not float_path.exists():
        raise ModelError("training ran no full epoch, so there is nothing to export; give it more --minutes")
    crops, tiles_ = photo_data(recipe, crops_per_epoch=calibration)
    calib = crops.epoch(seed, 0)
    model_name = name or Path(out).name.split(".")[0]
    log(f"exporting photo coding model {model_name!r} ({spec['coding_tile']}x{spec['coding_tile']} tiles; "
        f"calibrating on {len(calib):,} training crops) ...")
    tmp = Path(out).with_name(f".{Path(out).name}.{os.getpid()}.part")
    try:
        card = {"dataset": "+".join(spec["train"]), "recipe": recipe, "seed": seed, "calibration_items": len(calib),
                "test": facts.get("test")}
        written = export_photo(float_path, tmp, calib, model_name, tile=spec["coding_tile"], card=card,
                               bin_exponent=spec["bin_exponent"])
        if Path(out).exists() and not (force or resume):
            raise BBANSError(f"{out} already exists; use -f/--force to overwrite it")
        os.replace(written, out)
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".tmp")):
            if p.exists():
                p.unlink()
    model = PhotoCodingModel(Path(out))
    x = np.ascontiguousarray(tiles_.transpose(0, 2, 3, 1))
    elbo = float(np.sum(model.neg_elbo_bits(x))) / x.size
    return {"name": model.name, "sha256": model.sha256, "test_items": len(x), "test_neg_elbo_bpd": elbo}


def verify_coding_model(out: Path, test_data: np.ndarray, n: int = 2000) -> dict:
    """Load the exported file as a coding model and measure its -ELBO on the first ``n`` test items (bits/dim)."""
    from bbans.bitsback.protocol import Evaluable
    from bbans.container import registry
    from bbans.container.choice import summed_bits

    try:
        model = registry.load_model(str(out))
        x = test_data[:n]
        elbo = summed_bits(model.neg_elbo_bits, x) / x.size if isinstance(model, Evaluable) and x.size else None
    except BBANSError as exc:
        raise ModelError(f"the exported file {out} does not load as a coding model: {exc}") from None
    return {"name": model.name, "sha256": model.sha256, "test_items": int(min(n, len(test_data))),
            "test_neg_elbo_bpd": elbo}
