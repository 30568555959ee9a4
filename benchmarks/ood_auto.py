"""Never worse than classical: ``bbans compress`` (method auto, the defaults) on 28x28 8-bit data the shipped models
were not trained on, beside the classical codecs, and on in-distribution MNIST as the control.

Data sets (10,000 images each, derived from the MNIST test set or made here, deterministic):
  mnist      the MNIST test set itself (in distribution: bits-back should win)
  inverted   255 - x
  noisy      x + round(N(0, 8^2)), clipped to 0..255
  shifted    x rolled by (7, 7) pixels (digits cut at the borders)
  gradients  smooth synthetic images: random linear ramps plus one random rectangle, quantized

Prints one table: the auto archive's bits/dim and method beside xz -9e, bz2 -9, gzip -9 on the raw bytes, and the
auto archive's size relative to the best of them.

    python benchmarks/ood_auto.py [--items 10000]
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def mnist_test() -> np.ndarray:
    data = Path(os.environ.get("BBANS_DATA", ROOT.parent / "shared" / "data"))
    raw = gzip.decompress((data / "mnist" / "t10k-images.idx3-ubyte.gz").read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)


def data_sets(n: int) -> dict:
    rng = np.random.default_rng(0)
    x = mnist_test()[:n]
    noisy = np.clip(x.astype(np.int16) + np.rint(rng.normal(0, 8, x.shape)).astype(np.int16), 0, 255)
    yy, xx = np.mgrid[0:28, 0:28]
    a, b, c = rng.uniform(-4, 4, (3, n, 1, 1))
    ramps = a * xx + b * yy + 128 + 60 * c
    r0, c0 = rng.integers(0, 20, (2, n))
    box = (yy[None] >= r0[:, None, None]) & (yy[None] < r0[:, None, None] + 8) & \
          (xx[None] >= c0[:, None, None]) & (xx[None] < c0[:, None, None] + 8)
    grads = np.clip(np.where(box, 255 - ramps, ramps), 0, 255)
    return {"mnist": x, "inverted": 255 - x, "noisy": noisy.astype(np.uint8),
            "shifted": np.roll(x, (7, 7), axis=(1, 2)), "gradients": np.rint(grads).astype(np.uint8)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    args = p.parse_args(argv)
    import bbans
    from bbans.container.classic import reference_sizes

    rows = []
    for name, x in data_sets(args.items).items():
        x = np.ascontiguousarray(x)
        t = time.perf_counter()
        blob, rep = bbans.compress_with_report(x)
        secs = time.perf_counter() - t
        assert np.array_equal(bbans.decompress(blob), x)
        refs = reference_sizes(x.tobytes())
        best_name, best_bytes, _ = min(refs, key=lambda r: r[1])
        rows.append((name, 8 * len(blob) / x.size, rep.method, secs,
                     *(8 * b / x.size for _, b, _ in refs), 100 * (len(blob) / best_bytes - 1), best_name))
        print(f"{name}: {rep.method} ({rep.reason})", file=sys.stderr)
    heads = ["data", "auto bits/dim", "method", "encode s", *(n for n, _, _ in refs), "auto vs best", "best"]
    print("| " + " | ".join(heads) + " |\n|" + "---|" * len(heads))
    for r in rows:
        print(f"| {r[0]} | {r[1]:.4f} | {r[2]} | {r[3]:.1f} | " + " | ".join(f"{v:.4f}" for v in r[4:-2])
              + f" | {r[-2]:+.2f}% | {r[-1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
