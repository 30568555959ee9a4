"""Ship a trained float checkpoint as a registry model: export, pin its sha256, write its model card.

    python scripts/ship_model.py mnist runs/mnist_float.safetensors --hardware "2-core CPU (no GPU)"

NAME is a recipe of bbans_models.datasets.RECIPES (= the registry name). Writes models/weights/NAME.safetensors and
models/weights/NAME.md, and rewrites the sha256 of NAME in models/registry.py. The card's figures are measured
here, in bits/dim: -ELBO on the whole test set, and on a fixed random subset the -ELBO, the IWAE-50 bound and the
importance-sampled NLL (k = 250 samples by default, as in the seed's tables).
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from bbans_models.coding_model import VAECodingModel
from bbans_models.datasets import RECIPES, load_dataset, recipe_splits
from bbans_models.export import export

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "weights"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("name", choices=sorted(RECIPES))
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--hardware", required=True)
    p.add_argument("--nll-samples", type=int, default=250)
    p.add_argument("--iwae-k", type=int, default=50)
    p.add_argument("--nll-items", type=int, default=1000)
    p.add_argument("--note", default="", help="extra training facts for the card (e.g. resumed runs)")
    p.add_argument("--bin-exponent", type=int, default=None,
                   help="latent bin width 2^-b (coder setting; default: the recipe's)")
    a = p.parse_args()
    bin_exponent = RECIPES[a.name]["bin_exponent"] if a.bin_exponent is None else a.bin_exponent
    train_set, test_set = recipe_splits(a.name)
    train, test = load_dataset(train_set), load_dataset(test_set)
    calib = train[np.sort(np.random.default_rng(0).choice(len(train), 2000, replace=False))]
    out = WEIGHTS / f"{a.name}.safetensors"
    export(a.checkpoint, out, calib, a.name, card={"dataset": train_set, "hardware": a.hardware},
           bin_exponent=bin_exponent)
    model = VAECodingModel(out)
    t = time.time()
    neg_elbo = float(model.neg_elbo_bits(test).sum()) / test.size
    subset = test[np.sort(np.random.default_rng(1).choice(len(test), a.nll_items, replace=False))]
    nll = float(model.iwae_bits(subset, a.nll_samples).sum()) / subset.size
    iwae = float(model.iwae_bits(subset, a.iwae_k).sum()) / subset.size
    elbo_subset = float(model.neg_elbo_bits(subset).sum()) / subset.size
    eval_min = (time.time() - t) / 60

    reg = ROOT / "models" / "registry.py"
    text = reg.read_text()
    pattern = re.compile(rf'("{re.escape(a.name)}": \(\s*"{re.escape(out.name)}",\s*)"[^"]*"')
    text, n = pattern.subn(lambda m: f'{m.group(1)}"{model.sha256}"', text)
    if n != 1:
        raise SystemExit(f"could not find the registry entry of {a.name}")
    reg.write_text(text)

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
        f"- **File**: `{out.name}`, sha256 `{model.sha256}` (pinned in `models/registry.py`)",
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
    (WEIGHTS / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
