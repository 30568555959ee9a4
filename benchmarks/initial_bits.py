"""Small inputs against the model's -ELBO: archive layouts 1 (random seed), 2 (data seed) and 3 (data seed, shorter
header), through the CLI.

For each shipped model and each item count N, the first N test images are written as a .npy file and coded with
``bbans compress --method bits-back --model M --format-version V`` and restored with ``bbans decompress`` (checked
byte for byte). Printed per row: the archive's bits/dim, its gap over the model's -ELBO on the same items (the
float model's estimate, ``neg_elbo_bits``), the number of seed items (layouts 2, 3) and batches, and items/s of encode
and decode (wall time of the command, including Python and model start-up: about 2 s per call).

    python benchmarks/initial_bits.py                       # every MNIST model, N = 1 … 10000, layouts 2 and 3
    python benchmarks/initial_bits.py --models binarized-mnist --sizes 100 1000

Units: bits per dimension (per pixel value); gap in percent of the -ELBO.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bbans.container.registry import load_model
from bbans_models.datasets import load_dataset, recipe_splits

MODELS = ["binarized-mnist", "mnist", "binarized-mnist-small", "mnist-small"]


def bbans(*args) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "bbans_cli.main", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bbans {' '.join(map(str, args))} failed:\n{r.stdout}{r.stderr}")
    return time.perf_counter() - t0, r.stdout


def row(model: str, n: int, version: int, x: np.ndarray, elbo_bpd: float, folder: Path) -> dict:
    src = folder / f"{model}-{n}.npy"
    np.save(src, x)
    arc, out = folder / f"{model}-{n}-v{version}.bba", folder / f"{model}-{n}-v{version}.npy"
    enc_s, _ = bbans("compress", src, "-o", arc, "-f", "--method", "bits-back", "--model", model, "--no-elbo",
                     "--format-version", version, "-q")
    dec_s, _ = bbans("decompress", arc, "-o", out, "-f", "-q")
    if out.read_bytes() != src.read_bytes():
        raise SystemExit(f"{arc}: restored file differs from the input")
    _, info = bbans("info", arc, "--json")
    h = json.loads(info)
    bpd = 8 * arc.stat().st_size / x.size
    runs = h.get("schedule") or []
    return {"model": model, "n": n, "version": version, "bytes": arc.stat().st_size, "bpd": bpd,
            "gap": 100 * (bpd / elbo_bpd - 1), "seed": h.get("seed_items"), "batches": sum(r[2] for r in runs),
            "enc_items_s": n / enc_s, "dec_items_s": n / dec_s, "enc_s": enc_s, "dec_s": dec_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--sizes", nargs="+", type=int, default=[1, 10, 100, 1000, 10000])
    ap.add_argument("--versions", nargs="+", type=int, default=[2, 3], help="archive layouts (--format-version) [2 3]")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    rows = []
    print(f"{'model':<22} {'N':>6} {'layout':>6} {'bytes':>10} {'bits/dim':>9} {'-ELBO':>8} {'gap %':>8} "
          f"{'seed':>5} {'batches':>7} {'enc it/s':>9} {'dec it/s':>9}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            test = load_dataset(recipe_splits(model)[1])
            m = load_model(model)
            for n in args.sizes:
                x = np.ascontiguousarray(test[:n])
                elbo_bpd = float(m.neg_elbo_bits(x).sum()) / x.size
                for v in args.versions:
                    r = row(model, n, v, x, elbo_bpd, Path(tmp))
                    r["elbo_bpd"] = elbo_bpd
                    rows.append(r)
                    seed = "-" if r["seed"] is None else r["seed"]
                    print(f"{model:<22} {n:>6} {v:>6} {r['bytes']:>10,} {r['bpd']:>9.4f} {elbo_bpd:>8.4f} "
                          f"{r['gap']:>+8.2f} {seed:>5} {r['batches']:>7} {r['enc_items_s']:>9.1f} "
                          f"{r['dec_items_s']:>9.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
