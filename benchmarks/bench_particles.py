"""Monte-Carlo bits-back (BB-IS): archive rate and speed against the particle count K, beside the model's bounds.

For each K: a real archive (``bbans.compress(..., method="bits-back", particles=K)``), decoded again and compared
byte for byte; its whole-archive bits/dim; the float model's IWAE-K bound (K = 1: the -ELBO) on the same data; the
gain over K = 1; the one-off initial bits; encode and decode seconds.

    python benchmarks/bench_particles.py binarized-mnist                      # full 10k test set, K = 1, 50
    python benchmarks/bench_particles.py mnist --limit 1000 --particles 1,5,20,50

Units: bits per dimension (per pixel) unless a column says otherwise.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import bbans
from bbans.container.registry import load_model
from bbans_models.datasets import RECIPES, load_dataset, recipe_splits


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(RECIPES), help="shipped model; its test split is coded")
    ap.add_argument("--limit", type=int, help="code only the first N test images")
    ap.add_argument("--particles", default="1,50", help="comma-separated particle counts (default 1,50)")
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()
    ks = [int(k) for k in args.particles.split(",")]
    data = load_dataset(recipe_splits(args.model)[1])
    if args.limit:
        data = data[: args.limit]
    data = np.ascontiguousarray(data)
    model = load_model(args.model)
    dims = data.size
    print(f"# BB-IS on {args.model} test, {len(data):,} images; {_cpu()}; {time.strftime('%Y-%m-%d %H:%M')}",
          flush=True)
    rows, base = [], None
    for k in ks:
        t = time.perf_counter()
        bound = float((model.neg_elbo_bits(data) if k == 1 else model.iwae_bits(data, k)).sum()) / dims
        t_bound = time.perf_counter() - t
        t = time.perf_counter()
        blob, rep = bbans.compress_with_report(data, model, method="bits-back", particles=k,
                                               batch_size=args.batch_size)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        back = bbans.decompress(blob, model)
        t_dec = time.perf_counter() - t
        exact = bool(np.array_equal(back, data))
        bpd = 8 * len(blob) / dims
        base = bpd if base is None else base
        rows.append((k, bpd, bound, 100 * (bpd / bound - 1), 100 * (1 - bpd / base), rep.initial_bits, t_enc, t_dec,
                     exact, t_bound))
        print(f"K={k}: {bpd:.4f} bits/dim, bound {bound:.4f}, enc {t_enc:.1f} s, dec {t_dec:.1f} s, "
              f"exact={exact}", flush=True)
    print()
    print("| K | archive bits/dim | IWAE-K bound (K=1: -ELBO) | gap to bound | smaller than K=1 | initial bits "
          "| encode s | decode s | round trip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, bpd, bound, gap, gain, init, te, td, exact, _ in rows:
        print(f"| {k} | {bpd:.4f} | {bound:.4f} | {gap:+.2f}% | {gain:.2f}% | {init:,} | {te:.1f} | {td:.1f} | "
              f"{'exact' if exact else 'FAILED'} |")
    if not all(r[8] for r in rows):
        raise SystemExit("a round trip FAILED")


if __name__ == "__main__":
    main()
