"""Rate and speed of bbans on the MNIST test sets, with classical codecs for context.

    python benchmarks/bench_mnist.py            # both full test sets (10,000 images each)
    python benchmarks/bench_mnist.py --limit 500

For each shipped model: whole-archive bits/dim, the float model's -ELBO on the same images (bits/dim), the gap,
encode and decode wall time, and a byte-exact check of the round trip. Classical codecs run on the raw bytes
(binary data packed 8 pixels per byte). Needs ../shared/data (or BBANS_DATA).
"""
from __future__ import annotations

import argparse
import bz2
import lzma
import platform
import time
import zlib

import numpy as np
import torch

import bbans
from bbans.registry import load_model
from bbans_models.datasets import SPLITS, load_dataset



def classical_rates(data: np.ndarray, binary: bool) -> dict:
    raw = np.packbits(data.reshape(-1)).tobytes() if binary else data.tobytes()
    dims = data.size
    out = {}
    for name, fn in (("gzip -9", lambda b: zlib.compress(b, 9)), ("bz2 -9", lambda b: bz2.compress(b, 9)),
                     ("xz -9e", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))):
        out[name] = 8 * len(fn(raw)) / dims
    return out


def bench_model(name: str, data: np.ndarray, batch_size: int) -> dict:
    model = load_model(name)
    dims = data.size
    t0 = time.perf_counter()
    blob, report = bbans.compress_with_report(data, model, batch_size=batch_size, method="bits-back")
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = bbans.decompress(blob, model)
    dec = time.perf_counter() - t0
    neg_elbo = float(model.neg_elbo_bits(data).sum()) / dims
    rate = 8 * len(blob) / dims
    return {"model": name, "items": len(data), "bytes": len(blob), "rate": rate, "neg_elbo": neg_elbo,
            "gap": 100 * (rate / neg_elbo - 1), "enc": enc, "dec": dec, "exact": bool(np.array_equal(back, data))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None, help="first N test images only")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--models", nargs="*", default=list(SPLITS))
    a = p.parse_args()
    print(f"# bbans {getattr(bbans, '__version__', '?')} on {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, python {platform.python_version()}")
    for name in a.models:
        test_set = SPLITS[name][1]
        data = load_dataset(test_set)[: a.limit]
        r = bench_model(name, data, a.batch_size)
        print(f"\n## {test_set} ({r['items']} images)")
        print("| codec | bits/dim | -ELBO | gap | encode s | decode s | round trip |")
        print("|---|---|---|---|---|---|---|")
        print(f"| bbans `{name}` | {r['rate']:.4f} | {r['neg_elbo']:.4f} | {r['gap']:+.2f}% | {r['enc']:.1f} | "
              f"{r['dec']:.1f} | {'exact' if r['exact'] else 'MISMATCH'} |")
        for cname, rate in classical_rates(data, name.startswith("binarized")).items():
            print(f"| {cname} | {rate:.4f} | | | | | |")


if __name__ == "__main__":
    main()
