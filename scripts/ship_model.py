"""Ship a trained float checkpoint as a registry model: export, pin its sha256, write its model card.

    python scripts/ship_model.py mnist runs/mnist_float.safetensors --hardware "2-core CPU (no GPU)"

NAME is a recipe of bbans_models.datasets.RECIPES (= the registry name). Writes models/weights/NAME.safetensors and
models/weights/NAME.md, and pins the file's sha256 in models/weights/manifest.json (see bbans_models.registry).
When NAME was already listed with other weights, those are retired, not deleted: archives written with them must
keep decoding. They become the unlisted model NAME-vK (K the next free number): file and card renamed to
NAME-vK.safetensors / NAME-vK.md, the manifest entry kept with status "retired" and the same sha256. The card's
figures are measured here, in bits/dim: -ELBO on the whole test set, and on a fixed random subset the -ELBO, the
IWAE-50 bound and the importance-sampled NLL (k = 250 samples by default; Burda et al., "Importance Weighted
Autoencoders", ICLR 2016).
"""
from __future__ import annotations

import argparse
import json
import re
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bbans_models.coding_model import VAECodingModel
from bbans_models.datasets import PHOTO_RECIPES, RECIPES, load_dataset, recipe_splits
from bbans_models.export import export
from bbans_models.registry import read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "weights"
MANIFEST = WEIGHTS / "manifest.json"


def replace_in_manifest(entries: list[dict], name: str, sha256: str, description: str | None,
                        stamp: str) -> tuple[list[dict], dict | None]:
    """(the manifest entries with NAME listed as NAME.safetensors with ``sha256``, the retired entry or None).

    A listed NAME with other weights is kept as a retired entry NAME-vK (file NAME-vK.safetensors, same sha256),
    appended at the end; the caller renames the files. ``description`` replaces NAME's (required for a new
    name); ``stamp`` (a UTC time) goes into the retired entry's description. New weights start with no coding
    variants (measure them with scripts/coding_variant.py before listing one); the retired entry keeps the old
    weights' variants, which their archives may use."""
    by_name = {e["name"]: e for e in entries}
    old = by_name.get(name)
    if old is not None and old["status"] != "listed":
        raise SystemExit(f"{name} is a retired model's name; ship these weights under another name")
    if old is None and not description:
        raise SystemExit(f"{name} is not in {MANIFEST.name} yet: give it a --description")
    new = {"name": name, "file": f"{name}.safetensors", "sha256": sha256, "status": "listed",
           "description": description or old["description"]}
    if old is not None and old["sha256"] == sha256 and old.get("coding_variants"):
        new["coding_variants"] = old["coding_variants"]  # the same weights keep their measured variants
    retired = None
    if old is not None and old["sha256"] != sha256:
        versions = [int(m.group(1)) for e in entries if (m := re.fullmatch(rf"{re.escape(name)}-v(\d+)", e["name"]))]
        retired_name = f"{name}-v{max(versions, default=0) + 1}"
        retired = {"name": retired_name, "file": f"{retired_name}.safetensors", "sha256": old["sha256"],
                   "status": "retired", "description": f"{name} as shipped until {stamp}, when it was replaced "
                                                        f"(then: {old['description']})"}
        if old.get("coding_variants"):  # archives coded with them must keep decoding
            retired["coding_variants"] = old["coding_variants"]
    out = [new if e["name"] == name else e for e in entries] + ([] if old else [new]) + ([retired] if retired else [])
    return out, retired


def retired_card(card: str, name: str, retired_name: str, stamp: str) -> str:
    """The model card of NAME's replaced weights, renamed RETIRED_NAME: a retired header, and the file line naming
    the file's new name."""
    lines = card.split("\n")
    body = "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines)
    body = body.replace(f"`{name}.safetensors`", f"`{retired_name}.safetensors`")
    note = (f"Shipped as `{name}` until {stamp}, when it was replaced (`{name}.md`). Kept, unlisted, so that archives "
            "written with it still decode: the registry finds it by the sha256 those archives record (status "
            "\"retired\" in `models/weights/manifest.json`). The file name below is its name now.")
    return f"# Model card: `{retired_name}` (retired)\n\n" + textwrap.fill(note, 115) + "\n" + body


def install(name: str, description: str | None, entries: list[dict], staged: Path, sha256: str) -> Path:
    """Put the staged weights in place as NAME.safetensors, listed in the manifest with ``sha256``; weights NAME
    had before are retired (renamed, card kept, still found by sha256). Returns the card's path to write."""
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    out = WEIGHTS / f"{name}.safetensors"
    previous = WEIGHTS / next((e["file"] for e in entries if e["name"] == name), out.name)
    entries, retired = replace_in_manifest(entries, name, sha256, description, stamp)
    card_path = WEIGHTS / f"{name}.md"
    if retired is not None:
        if previous.exists():
            previous.rename(WEIGHTS / retired["file"])
        if card_path.exists():
            (WEIGHTS / f"{retired['name']}.md").write_text(
                retired_card(card_path.read_text(), name, retired["name"], stamp))
        print(f"retired the previous {name} weights as {retired['name']} (sha256 {retired['sha256'][:12]}…)")
    staged.replace(out)
    write_manifest(entries, MANIFEST)
    return card_path


def ship_photo(a, entries: list[dict]) -> None:
    """The photo family: export with the recipe's coding tile, calibrated on 2,000 training crops; the card's
    figures are the float -ELBO on the 24 Kodak images (whole images, and as the coding tiles), bits per
    sub-pixel. Archive rates: benchmarks/photos.py."""
    from bbans.container.choice import neg_elbo_bits_total
    from bbans_models.photo_coding_model import PhotoCodingModel
    from bbans_models.photo_data import load_png_folders
    from bbans_models.photo_export import export_photo
    from bbans_models.photo_training import evaluate_images, photo_data
    from bbans_models.datasets import photo_folder

    spec = PHOTO_RECIPES[a.name]
    bin_exponent = spec["bin_exponent"] if a.bin_exponent is None else a.bin_exponent
    crops, _ = photo_data(a.name, crops_per_epoch=2000)
    calib = crops.epoch(0, 0)
    staged = WEIGHTS / f"{a.name}.safetensors.staged"
    t = spec["coding_tile"]
    try:
        export_photo(a.checkpoint, staged, calib, a.name, tile=t, bin_exponent=bin_exponent,
                     card={"dataset": "+".join(spec["train"]), "hardware": a.hardware})
        model = PhotoCodingModel(staged)
        start = time.time()
        kodak = [im.transpose(1, 2, 0)[None] for im in load_png_folders([photo_folder(spec["test"])], 3)]
        sub = sum(im.size for im in kodak)
        tiled = sum(neg_elbo_bits_total(model, im) for im in kodak) / sub
        whole = evaluate_images(model.float_model, [im[0].transpose(2, 0, 1) for im in kodak])
        eval_min = (time.time() - start) / 60
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    card_path = install(a.name, a.description, entries, staged, model.sha256)
    card, cfg = model.card, model.config
    arch = (f"fully convolutional: encoder {cfg.hidden} (3x3 s1, 4x4 s2, 4x4 s2, {cfg.depth} more 3x3) -> "
            f"{cfg.latent_channels} x H/4 x W/4 Gaussian latents z1; top layer z2 of {cfg.top_latent_channels} x "
            f"H/8 x W/8 (q(z2|z1), p(z1|z2): 3-conv nets of {cfg.top_hidden} channels; p(z2) = N(0, I)); mirrored "
            f"decoder -> {cfg.ar_channels} context channels per colour channel; a local autoregressive head per "
            f"channel (masked {cfg.ar_kernel}x{cfg.ar_kernel} conv over the pixels before it, all channels, and the "
            f"pixel's earlier channels; ReLU; 1x1) -> per sub-pixel a mixture of {cfg.components} discretized "
            f"logistics, later channels' means linear in earlier channels' values (PixelCNN++)")
    lines = [
        f"# Model card: `{a.name}`",
        "",
        f"- **File**: `{a.name}.safetensors`, sha256 `{model.sha256}` (pinned in `models/weights/manifest.json`)",
        f"- **Codes**: RGB images of any size, as {t}x{t} tiles (pixels outside an image uncoded); grey and RGBA "
        "images go to the classical methods",
        f"- **Architecture**: {arch}; {sum(v.numel() for v in model.float_model.parameters()):,} parameters",
        f"- **Data**: {' + '.join(spec['train'])} ({len(crops.images)} photos, random {spec['crop']}x{spec['crop']} "
        f"crops with flips, {spec['crops_per_epoch']} per epoch) from ../shared/data/photos; evaluated on the 24 "
        "Kodak images (never trained on)",
        f"- **Training**: ELBO (one sample), Adam lr {card.get('lr')} ({card.get('lr_schedule', 'constant')}), "
        f"batch {card.get('batch_size')}, {card.get('epochs')} epochs, {card.get('minutes')} minutes, seed "
        f"{card.get('seed')}, KL warm-up {card.get('kl_warmup_steps', 'n/a')} steps, "
        f"{card.get('torch_threads', 'n/a')} torch threads" + (f"; {a.note}" if a.note else ""),
        f"- **Hardware**: {a.hardware}",
        f"- **Coding**: integer-exact networks, coder settings `{json.dumps(model.coder_settings, sort_keys=True)}`",
        "",
        "| figure (bits per sub-pixel, the 24 Kodak images) | value |",
        "|---|---|",
        f"| -ELBO, whole images (no tile borders) | {whole['neg_elbo']:.4f} |",
        f"| -ELBO, as the {t}x{t} tiles the coder codes | {tiled:.4f} |",
        f"| of which latents (whole images) | {whole['latent']:.4f} |",
        "",
        f"Measured by `python scripts/ship_model.py {a.name} CHECKPOINT --hardware ...` ({eval_min:.1f} min of "
        "evaluation). Archive rates and times: BENCHMARKS.md, \"Photos: Kodak\" (`python benchmarks/photos.py`).",
    ]
    card_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=sorted([*RECIPES, *PHOTO_RECIPES]))
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--hardware", required=True)
    p.add_argument("--nll-samples", type=int, default=250)
    p.add_argument("--iwae-k", type=int, default=50)
    p.add_argument("--nll-items", type=int, default=1000)
    p.add_argument("--note", default="", help="extra training facts for the card (e.g. resumed runs)")
    p.add_argument("--bin-exponent", type=int, default=None,
                   help="latent bin width 2^-b (coder setting; default: the recipe's)")
    p.add_argument("--description", default=None,
                   help="the registry's one-line description (required for a name not yet in the manifest)")
    a = p.parse_args()
    entries = read_manifest(MANIFEST)
    replace_in_manifest(entries, a.name, "", a.description, "")  # fail now, not after the export and evaluation
    if a.name in PHOTO_RECIPES:
        ship_photo(a, entries)
        return
    bin_exponent = RECIPES[a.name]["bin_exponent"] if a.bin_exponent is None else a.bin_exponent
    train_set, test_set = recipe_splits(a.name)
    train, test = load_dataset(train_set), load_dataset(test_set)
    calib = train[np.sort(np.random.default_rng(0).choice(len(train), 2000, replace=False))]
    out = WEIGHTS / f"{a.name}.safetensors"
    staged = WEIGHTS / f"{a.name}.safetensors.staged"  # the shipped file stays in place until the figures are in
    try:
        export(a.checkpoint, staged, calib, a.name, card={"dataset": train_set, "hardware": a.hardware},
               bin_exponent=bin_exponent)
        model = VAECodingModel(staged)
        t = time.time()
        neg_elbo = float(model.neg_elbo_bits(test).sum()) / test.size
        subset = test[np.sort(np.random.default_rng(1).choice(len(test), a.nll_items, replace=False))]
        nll = float(model.iwae_bits(subset, a.nll_samples).sum()) / subset.size
        iwae = float(model.iwae_bits(subset, a.iwae_k).sum()) / subset.size
        elbo_subset = float(model.neg_elbo_bits(subset).sum()) / subset.size
        eval_min = (time.time() - t) / 60
    except BaseException:
        staged.unlink(missing_ok=True)
        raise

    card_path = install(a.name, a.description, entries, staged, model.sha256)

    card, cfg = model.card, model.config
    pixels = (f"mixture of {cfg.components} discretized logistics per pixel" if cfg.likelihood == "logistic_mixture"
              else "Bernoulli per pixel")
    arch = (f"conv encoder {cfg.hidden} (3x3 s1, 4x4 s2, 4x4 s2) -> {cfg.latent_channels}x7x7 Gaussian latents z1"
            + (f"; top layer z2 of {cfg.top_latent_channels}x7x7: q(z2|z1) and p(z1|z2) are 3-conv nets "
               f"({cfg.top_hidden} channels), p(z2) = N(0, I)" if cfg.top_latent_channels else "")
            + "; mirrored decoder with transposed convs -> "
            + (f"{cfg.ar_channels} context channels per pixel, then a local autoregressive head (masked "
               f"{cfg.ar_kernel}x{cfg.ar_kernel} conv over the pixels before it, ReLU, 1x1 conv) -> {pixels}"
               if cfg.ar_channels else pixels))
    objective = ("IWAE-{} bound".format(card.get("iwae_k")) if card.get("objective") == "iwae"
                 else "ELBO (analytic KL where it exists, one sample)")
    lines = [
        f"# Model card: `{a.name}`",
        "",
        f"- **File**: `{out.name}`, sha256 `{model.sha256}` (pinned in `models/weights/manifest.json`)",
        f"- **Architecture**: {arch}; ReLU; {sum(v.numel() for v in model.float_model.parameters()):,} parameters",
        f"- **Data**: {train_set} ({len(train):,} items) from ../shared/data; evaluated on {test_set} ({len(test):,})",
        f"- **Training**: {objective}, Adam lr {card.get('lr')} ({card.get('lr_schedule', 'constant')}), "
        f"batch {card.get('batch_size')}, "
        f"{card.get('epochs')} epochs, {card.get('minutes')} minutes wall, seed {card.get('seed')}, "
        f"KL warm-up {card.get('kl_warmup_steps', 'n/a')} steps, {card.get('torch_threads', 'n/a')} torch threads"
        + (f"; {a.note}" if a.note else ""),
        f"- **Hardware**: {a.hardware}",
        f"- **Coding**: integer-exact networks (float32 convolutions within the 2^24 exactness budget), "
        f"coder settings `{json.dumps(model.coder_settings, sort_keys=True)}`",
        "",
        "| figure (bits/dim) | value |",
        "|---|---|",
        f"| test -ELBO, whole test set ({len(test):,}) | {neg_elbo:.4f} |",
        f"| test -ELBO, subset of {a.nll_items} | {elbo_subset:.4f} |",
        f"| test IWAE-{a.iwae_k} bound, same subset | {iwae:.4f} |",
        f"| test NLL, importance-sampled k={a.nll_samples}, same subset | {nll:.4f} |",
        "",
        f"Measured by `python scripts/ship_model.py {a.name} CHECKPOINT --hardware ...` ({eval_min:.1f} min of "
        "evaluation). Archive rates: see README and BENCHMARKS.md (`python benchmarks/run.py`).",
    ]
    card_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
