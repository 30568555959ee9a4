"""Rate and speed of bbans on the MNIST test sets, with classical codecs for context.

    python benchmarks/bench_mnist.py            # both full test sets (10,000 images each)
    python benchmarks/bench_mnist.py --limit 500

For each shipped model: whole-archive bits/dim, the float model's -ELBO on the same images (bits/dim), the gap,
encode and decode wall time, and a byte-exact check of the round trip. Classical codecs run on the raw bytes
(binary data packed 8 pixels per byte, ``bbans.classic.reference_input``). Needs ../shared/data (or BBANS_DATA).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import bbans
from bbans.classic import reference_input, reference_sizes
from bbans.registry import load_model
from bbans_models.datasets import SPLITS, load_dataset



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
        for cname, nbytes, secs in reference_sizes(reference_input(data)[0]):
            print(f"| {cname} | {8 * nbytes / data.size:.4f} | | | {secs:.1f} | | |")


if __name__ == "__main__":
    main()
