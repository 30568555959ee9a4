"""Kodak (the 24 images, 768x512 RGB): bbans's photo model beside the classical lossless image codecs.

    python benchmarks/photos.py                       # everything: bbans bits-back, auto, every classical codec
    python benchmarks/photos.py --images 4 --no-auto  # a quick look
    python benchmarks/photos.py --write               # also put the table into BENCHMARKS.md ("Photos")
    python benchmarks/photos.py --no-auto --no-bbans --save-rows classical.json   # one half of the table now ...
    python benchmarks/photos.py --no-classical --add-rows classical.json --write  # ... merged with the other later

Rates are bits per sub-pixel (bpsp) over the whole set: total archive bits / total sub-pixels (24 x 768 x 512 x 3).
bbans rows: ``bbans.compress(image (1, H, W, 3), model, method=...)`` on each image alone (tile borders, the
header and the data seed included), decoded back and compared pixel for pixel; "-ELBO" is the model's own
single-sample -ELBO on the same tiles; encode / decode are wall seconds per image (mean), each image in a fresh
worker process whose peak resident memory is reported. Classical rows: imagecodecs (PNG through Pillow,
``optimize=True``), each round-tripped and checked; seconds per image for encode and decode. Rows merged from an
earlier run (``--add-rows``) are marked with that run's date and command in the table's text.
"""
from __future__ import annotations

import argparse
import bz2
import io
import json
import os
import re
import resource
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Photos: Kodak"


def kodak_paths(limit: int | None) -> list[Path]:
    from bbans_models.datasets import photo_folder

    paths = sorted(photo_folder("kodak").glob("*.png"))
    return paths[:limit] if limit else paths


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------------ bbans


def bbans_one(args) -> dict:
    """One image through bbans in this (fresh) worker: archive bytes, -ELBO bits, encode/decode seconds, peak RSS."""
    path, model_ref, method, threads = args
    import torch

    import bbans
    from bbans.container import registry

    if threads:
        torch.set_num_threads(threads)
    model = registry.load_model(model_ref)
    x = read_rgb(Path(path))[None]
    t = time.perf_counter()
    blob, rep = bbans.compress_with_report(x, model, method=method)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    back = bbans.decompress(blob, model)
    dec = time.perf_counter() - t
    if not np.array_equal(back, x):
        raise SystemExit(f"{path}: bbans {method} did not restore the pixels")
    from bbans.container.choice import neg_elbo_bits_total

    elbo = neg_elbo_bits_total(model, x) if method == "bits-back" else None
    return {"image": Path(path).name, "bytes": len(blob), "method": rep.method, "elbo_bits": elbo,
            "encode_s": enc, "decode_s": dec, "subpixels": int(x.size),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_bbans(paths, model_ref: str, method: str, jobs: int, threads: int | None) -> list[dict]:
    out = []
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool:
        for r in pool.map(bbans_one, [(str(p), model_ref, method, threads) for p in paths]):
            out.append(r)
            extra = "" if r["elbo_bits"] is None else f", -ELBO {r['elbo_bits'] / r['subpixels']:.4f}"
            print(f"  bbans {method} {r['image']}: {8 * r['bytes'] / r['subpixels']:.4f} bpsp ({r['method']}"
                  f"{extra}), encode {r['encode_s']:.1f} s, decode {r['decode_s']:.1f} s, peak {r['peak_mib']:.0f} MiB",
                  flush=True)
    return out


# ------------------------------------------------------------------------------------------------ classical


def _rct(x: np.ndarray) -> np.ndarray:
    """JPEG-LS's colour transform (R-G, G, B-G) mod 256, reversible."""
    r, g, b = (x[..., i].astype(np.int16) for i in range(3))
    return np.stack([(r - g) % 256, g, (b - g) % 256], axis=-1).astype(np.uint8)


def _unrct(y: np.ndarray) -> np.ndarray:
    d1, g, d2 = (y[..., i].astype(np.int16) for i in range(3))
    return np.stack([(d1 + g) % 256, g, (d2 + g) % 256], axis=-1).astype(np.uint8)


def classical_codecs() -> dict:
    """name -> (encode(x) -> bytes, decode(bytes) -> x)."""
    import imagecodecs
    from PIL import Image

    def png_enc(x):
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    return {
        "PNG (Pillow, optimize)": (png_enc, lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))),
        "JPEG-LS, RGB as is": (imagecodecs.jpegls_encode, imagecodecs.jpegls_decode),
        "bz2 -9, raw pixels": (lambda x: bz2.compress(x.tobytes(), 9),
                               lambda b, s=None: np.frombuffer(bz2.decompress(b), np.uint8)),
        "JPEG 2000, lossless": (lambda x: imagecodecs.jpeg2k_encode(x, level=0, reversible=True),
                                imagecodecs.jpeg2k_decode),
        "WebP lossless, m6": (lambda x: imagecodecs.webp_encode(x, level=100, lossless=True, method=6),
                              imagecodecs.webp_decode),
        "JPEG-LS, R-G G B-G": (lambda x: imagecodecs.jpegls_encode(_rct(x)),
                               lambda b: _unrct(imagecodecs.jpegls_decode(b))),
        "JPEG-XL lossless, e7": (lambda x: imagecodecs.jpegxl_encode(x, lossless=True, effort=7),
                                 imagecodecs.jpegxl_decode),
        "JPEG-XL lossless, e9": (lambda x: imagecodecs.jpegxl_encode(x, lossless=True, effort=9),
                                 imagecodecs.jpegxl_decode),
    }


def classical_one(args) -> dict:
    name, path = args
    enc_fn, dec_fn = classical_codecs()[name]
    x = read_rgb(Path(path))
    t = time.perf_counter()
    blob = enc_fn(x)
    enc = time.perf_counter() - t
    t = time.perf_counter()
    back = np.asarray(dec_fn(blob)).reshape(x.shape)
    dec = time.perf_counter() - t
    if not np.array_equal(back, x):
        raise SystemExit(f"{name} did not restore {path}")
    return {"image": Path(path).name, "bytes": len(blob), "encode_s": enc, "decode_s": dec, "subpixels": int(x.size)}


def run_classical(paths, names, jobs: int) -> dict:
    out = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for name in names:
            out[name] = list(pool.map(classical_one, [(name, str(p)) for p in paths]))
            r = out[name]
            print(f"  {name}: {8 * sum(i['bytes'] for i in r) / sum(i['subpixels'] for i in r):.4f} bpsp", flush=True)
    return out


# ------------------------------------------------------------------------------------------------ table


def row(name: str, runs: list[dict], elbo: bool = False) -> list[str]:
    sub = sum(r["subpixels"] for r in runs)
    bpsp = 8 * sum(r["bytes"] for r in runs) / sub
    e = f"{sum(r['elbo_bits'] for r in runs) / sub:.4f}" if elbo else ""
    peak = f"{max(r['peak_mib'] for r in runs):.0f}" if "peak_mib" in runs[0] else ""
    return [name, f"{bpsp:.4f}", e, f"{np.mean([r['encode_s'] for r in runs]):.2f}",
            f"{np.mean([r['decode_s'] for r in runs]):.2f}", peak]


def markdown(rows: list[list[str]]) -> str:
    head = ["codec", "bpsp", "-ELBO bpsp", "encode s/image", "decode s/image", "peak MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in sorted(rows, key=lambda r: -float(r[1]))]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace (or append) the SECTION of BENCHMARKS.md, after run.py's KEEP_MARKER so that run.py keeps it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import KEEP_MARKER

    path = ROOT / "BENCHMARKS.md"
    old = path.read_text()
    if KEEP_MARKER not in old:
        old = old.rstrip("\n") + "\n\n" + KEEP_MARKER + "\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    new = pattern.sub(lambda m: text.rstrip("\n") + "\n", old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(new)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, help="only the first N Kodak images")
    ap.add_argument("--model", default="photo", help="registry name or weights file [photo]")
    ap.add_argument("--jobs", type=int, default=1, help="images coded at once, one process each [1: timings alone]")
    ap.add_argument("--threads", type=int, help="torch threads per process (default: torch's)")
    ap.add_argument("--no-auto", action="store_true", help="skip bbans's method='auto' rows")
    ap.add_argument("--no-classical", action="store_true", help="skip the classical codecs")
    ap.add_argument("--classical", nargs="*", help="only these classical codecs (names as printed)")
    ap.add_argument("--no-bbans", action="store_true", help="skip bbans's bits-back row")
    ap.add_argument("--save-rows", type=Path, metavar="JSON", help="also write this run's rows (and command) here")
    ap.add_argument("--add-rows", type=Path, metavar="JSON",
                    help="add the rows a --save-rows run wrote (same image count), marked as from that run")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    a = ap.parse_args(argv)
    paths = kodak_paths(a.images)
    command = " ".join(["python benchmarks/photos.py", shlex.join(argv if argv is not None else sys.argv[1:])]).rstrip()
    earlier = json.loads(a.add_rows.read_text()) if a.add_rows else None
    if earlier is not None and earlier["images"] != len(paths):
        raise SystemExit(f"{a.add_rows} holds rows of {earlier['images']} images, this run codes {len(paths)}")
    print(f"Kodak: {len(paths)} images; model {a.model}; jobs {a.jobs}; cpus {os.cpu_count()}", flush=True)
    rows = []
    if not a.no_bbans:
        runs = run_bbans(paths, a.model, "bits-back", a.jobs, a.threads)
        rows.append(row(f"bbans `{a.model}`, bits-back alone", runs, elbo=True))
    if not a.no_auto:
        auto = run_bbans(paths, a.model, "auto", a.jobs, a.threads)
        chosen = sorted({r["method"] for r in auto})
        rows.append(row(f"bbans auto (chose {', '.join(chosen)})", auto))
    if not a.no_classical:
        names = a.classical or list(classical_codecs())
        for name, r in run_classical(paths, names, a.jobs).items():
            rows.append(row(name, r))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if a.save_rows:
        a.save_rows.write_text(json.dumps({"images": len(paths), "when": stamp, "command": command, "rows": rows},
                                          indent=1) + "\n")
    merged = ""
    if earlier is not None:
        rows += earlier["rows"]
        merged = (f" The rows {'; '.join(r[0] for r in earlier['rows'])} are from an earlier run on the same machine, "
                  f"{earlier['when']}: `{earlier['command']}`.")
    table = markdown(rows)
    text = (f"{SECTION}\n\nMeasured {stamp} with `{command}` on this 2-core CPU ({len(paths)} images, each coded "
            f"alone; bits per sub-pixel over the whole set; seconds per image; peak resident memory of the worker "
            f"process).{merged}\n\n{table}\n")
    print("\n" + text)
    if a.write:
        write_section(text)


if __name__ == "__main__":
    main()
