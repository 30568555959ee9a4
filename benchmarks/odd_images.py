"""Images of odd sizes and kinds through `bbans compress` / `bbans decompress` (issue: RGB images of any size):
each restored to identical pixels; the archive size against the raw pixel bytes and the PNG file.

    python benchmarks/odd_images.py

Inputs (written to a temporary folder as PNG): a 481x321 BSD68 photo, a crop of it to 7x1000 (tiled) and 1x1,
its grey and RGBA versions. Each is compressed with --method auto, and the RGB ones also with --method bits-back
(the photo model alone).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def run(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "bbans_cli", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bbans {' '.join(args)} failed: {r.stdout}{r.stderr}")
    return r.stdout


def main() -> None:
    from bbans_models.datasets import photo_folder

    src = np.asarray(Image.open(sorted(photo_folder("bsd68").glob("*.png"))[0]).convert("RGB"))
    if src.shape[0] > src.shape[1]:
        src = src.transpose(1, 0, 2)
    wide = np.concatenate([src[:7]] * 3, axis=1)[:, :1000]
    cases = {"481x321 RGB": src[:321, :481], "7x1000 RGB": wide, "1x1 RGB": src[:1, :1],
             "481x321 grey": np.asarray(Image.fromarray(src[:321, :481]).convert("L")),
             "481x321 RGBA": np.dstack([src[:321, :481], np.full(src[:321, :481].shape[:2], 200, np.uint8)])}
    print("| image | method asked | method used | archive bytes | raw pixel bytes | PNG bytes | encode s | decode s |"
          " identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, pixels in cases.items():
            png = Path(tmp) / (name.replace(" ", "_") + ".png")
            Image.fromarray(pixels).save(png)
            methods = ["auto", "bits-back"] if pixels.ndim == 3 and pixels.shape[2] == 3 else ["auto"]
            for method in methods:
                out = Path(tmp) / f"{png.stem}.{method}.bba"
                t = time.perf_counter()
                report = run("compress", str(png), "-o", str(out), "--method", method, "--no-elbo")
                enc = time.perf_counter() - t
                used = next(line.split()[1] for line in report.splitlines() if line.startswith("method:"))
                back = Path(tmp) / f"{png.stem}.{method}.restored.png"
                t = time.perf_counter()
                run("decompress", str(out), "-o", str(back))
                dec = time.perf_counter() - t
                same = np.array_equal(np.asarray(Image.open(back)), pixels)
                print(f"| {name} | {method} | {used} | {out.stat().st_size:,} | {pixels.nbytes:,} | "
                      f"{png.stat().st_size:,} | {enc:.1f} | {dec:.1f} | {'yes' if same else 'NO'} |", flush=True)
                if not same:
                    raise SystemExit(f"{name}: not restored")


if __name__ == "__main__":
    main()
