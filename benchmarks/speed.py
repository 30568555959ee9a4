"""Encode and decode speed of each shipped model on its whole 10,000-image test set, with the archive's sha256.

    python benchmarks/speed.py                         # every shipped model, 1 and 2 threads
    python benchmarks/speed.py --models mnist --threads 2 --items 2000
    PYTHONPATH=/path/to/old/tree python benchmarks/speed.py   # the same figures for another checkout

Each (model, thread count) runs in a fresh process (``--one``): thread settings are read at import, and one run's
caches must not speed up the next. The process sets torch's threads and ``BBANS_THREADS`` (bbans' own worker
threads, bbans/codecs/blocks.py) to the count, codes one batch untimed (one-time costs: torch's first calls, numba
loading its cached code), then times ``bbans.compress(x, model, method="bits-back")`` and ``bbans.decompress``
(wall seconds) and checks the round trip. Prints a Markdown table: seconds and items/s per phase, archive bytes,
bits/dim and the archive's sha256, which must not change when only speed changes (docs/design.md, "Speed").
The printed load average says how busy the machine was; other work on the cores lengthens the times.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()


def measure(name: str, threads: int, items: int) -> dict:
    """One model at one thread count, in this process (call before anything imported torch or numpy)."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = os.environ["BBANS_THREADS"] = str(threads)
    import hashlib
    import time

    import numpy as np
    import torch

    import bbans
    from bbans.container.registry import load_model
    from bbans_models.datasets import load_dataset

    torch.set_num_threads(threads)
    model = load_model(name)
    data = load_dataset("binarized-mnist-test" if tuple(model.value_range) == (0, 1) else "mnist-test")[:items]
    bbans.decompress(bbans.compress(data[:100], model, method="bits-back"), model)   # warm-up, untimed
    load = os.getloadavg()[0]
    start = time.perf_counter()
    blob = bbans.compress(data, model, method="bits-back")
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    back = bbans.decompress(blob, model)
    decode_s = time.perf_counter() - start
    if not np.array_equal(np.asarray(back), data):
        raise SystemExit(f"benchmarks/speed.py: error: {name} did not round-trip exactly")
    return {"model": name, "threads": threads, "items": len(data), "encode_s": encode_s, "decode_s": decode_s,
            "bytes": len(blob), "bits_per_dim": 8 * len(blob) / data.size,
            "sha256": hashlib.sha256(blob).hexdigest(), "load": load, "bbans": bbans.__file__}


def shipped_models() -> list[str]:
    import bbans

    return [m["name"] for m in bbans.list_models() if not m["name"].endswith("-v1")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", help="model names (default: every shipped model but retired -v1 ones)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default: 1 2)")
    ap.add_argument("--items", type=int, default=10_000, help="first N test images (default: all 10,000)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.items)))
        return
    rows = []
    print("| model | threads | items | encode s (items/s) | decode s (items/s) | bytes | bits/dim | sha256 | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models or shipped_models():
        for threads in args.threads:
            run = subprocess.run([sys.executable, str(HERE), "--one", name, str(threads), "--items", str(args.items)],
                                 capture_output=True, text=True, check=False)
            if run.returncode != 0:
                sys.exit(f"benchmarks/speed.py: error: {name} at {threads} threads failed:\n{run.stderr.strip()}")
            r = json.loads(run.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"| {name} | {threads} | {r['items']:,} | {r['encode_s']:.1f} ({r['items'] / r['encode_s']:.0f}) "
                  f"| {r['decode_s']:.1f} ({r['items'] / r['decode_s']:.0f}) | {r['bytes']:,} | "
                  f"{r['bits_per_dim']:.4f} | {r['sha256'][:16]}… | {r['load']:.2f} |", flush=True)
    print(f"\nbbans imported from {rows[0]['bbans'] if rows else '?'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
