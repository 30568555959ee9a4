"""Measure coding variants of a shipped model (docs/design.md, "Coding variants") and print the one to ship.

For each latent coarsening k (latent bins 2^k times wider), code test items with bits back on a scratch stack and
print, per item: the bits the posterior pop takes (what the chain's data seed must cover) and the net bits (the
rate). A variant is worth shipping when its net bits stay within noise of the exported model's (k = 0); ship it by
appending {"latent_coarsening": k} to the model's ``coding_variants`` in models/weights/manifest.json.

    python scripts/coding_variant.py binarized-mnist --test binarized-mnist-test --coarsening 0 3 4 5

Units: bits per item.
"""
from __future__ import annotations

import argparse

import numpy as np
import constriction

from bbans.bitsback import schedule
from bbans.bitsback.protocol import exported
from bbans.container.registry import load_model
from bbans_models.datasets import load_dataset


def scratch(words: int):
    return constriction.stream.stack.AnsCoder(schedule.seed_words(words))


def pop_and_net(model, x: np.ndarray) -> tuple[float, float]:
    """(posterior pop bits, net bits) per item, bits-back on a scratch stack."""
    coder = scratch(model.latent_size * 16 * len(x) // 32 + 64)
    before = coder.num_valid_bits()
    z = model.posterior_codec(x).pop(coder)
    popped = before - coder.num_valid_bits()
    model.likelihood_codec(z).push(coder, x)
    model.prior_codec(len(x)).push(coder, z)
    return popped / len(x), (coder.num_valid_bits() - before) / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--test", required=True, help="data set whose first items measure the rate")
    ap.add_argument("--test-items", type=int, default=1000)
    ap.add_argument("--coarsening", type=int, nargs="+", default=[0, 3, 4, 5])
    args = ap.parse_args()

    model = exported(load_model(args.model))
    test = np.ascontiguousarray(load_dataset(args.test)[: args.test_items])
    print(f"{args.model}: {model.latent_size} latent dims, {len(test)} items of {args.test}")
    print(f"{'k':>2} {'pop bits':>9} {'net bits':>9}")
    for k in args.coarsening:
        pop, net = pop_and_net(model.with_coding_variant({"latent_coarsening": k}), test)
        print(f"{k:>2} {pop:>9.1f} {net:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
