"""Write the golden archives of tests/archives/ with ``bbans compress`` and record them in ``golden.json``.

Each golden archive pins one coder-settings string and method (every shipped model, Monte-Carlo bits-back,
multi-chunk archives, each classical fallback, each container kind: npy, IDX, PNG, raw bytes). They were written by
the code as it stood *before* the restructure of bbans/ into layers (2026-12-04), and ``tests/test_golden.py``
checks that today's code decodes each one byte for byte and re-encodes its input to the identical bytes (the cases
written before archive layout 2 with ``--format-version 1``; the ``v2-`` cases with layout 2, the ``v3-`` cases with
layout 3).

Run it only to ADD a case (it refuses to overwrite an existing archive): a golden archive that changes is exactly
the regression these tests exist to catch. Inputs are the bundled samples or small files written into
``tests/archives/inputs/`` by this script (deterministic).

    python tests/archives/make_golden.py
"""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
INPUTS = HERE / "inputs"

# name -> (input path relative to the repository root, extra `bbans compress` arguments)
CASES = {
    "mnist-100": ("samples/mnist-test-100.npy", ["--model", "mnist", "--method", "bits-back"]),
    "mnist-small-100": ("samples/mnist-test-100.npy", ["--model", "mnist-small", "--method", "bits-back"]),
    "binarized-mnist-100": ("samples/binarized-mnist-test-100.npy",
                            ["--model", "binarized-mnist", "--method", "bits-back"]),
    "binarized-mnist-small-100": ("samples/binarized-mnist-test-100.npy",
                                  ["--model", "binarized-mnist-small", "--method", "bits-back"]),
    "mnist-small-particles4-40": ("tests/archives/inputs/mnist-40.npy",
                                  ["--model", "mnist-small", "--method", "bits-back", "--particles", "4"]),
    "binarized-mnist-particles3-20": ("tests/archives/inputs/binarized-20.npy",
                                      ["--model", "binarized-mnist", "--method", "bits-back", "--particles", "3"]),
    "auto-chunked-100": ("samples/mnist-test-100.npy", ["--chunk-items", "40"]),
    "deflate-100": ("samples/mnist-test-100.npy", ["--method", "deflate"]),
    "lzma-100": ("samples/mnist-test-100.npy", ["--method", "lzma"]),
    "bz2-100": ("samples/mnist-test-100.npy", ["--method", "bz2"]),
    "stored-100": ("samples/mnist-test-100.npy", ["--method", "stored"]),
    "auto-digit-png": ("samples/digit-7.png", []),
    "auto-idx-30": ("tests/archives/inputs/mnist-30.idx3-ubyte", []),
    "auto-idx-gz-30": ("tests/archives/inputs/mnist-30.idx3-ubyte.gz", []),
    "auto-text": ("tests/archives/inputs/notes.txt", []),
    "auto-text-chunked": ("tests/archives/inputs/notes.txt", ["--chunk-items", "1500"]),
    "auto-rgb-npy": ("tests/archives/inputs/rgb-2x5x7x3.npy", []),
}
FORMAT_1 = set(CASES)  # the cases above were written before archive layout 2: they re-encode with --format-version 1

# Layout 2 (2026-12-05): bits-back with a data seed, the shipped coding variants, and the npy container kind 6.
V2_TWINS = ["mnist-100", "mnist-small-100", "binarized-mnist-100", "binarized-mnist-small-100",
            "mnist-small-particles4-40", "binarized-mnist-particles3-20", "auto-chunked-100"]
CASES.update({f"v2-{name}": CASES[name] for name in V2_TWINS})  # the same inputs and arguments, layout 2
# Photos (2026-12-05): the photo model's 64x64 tiles, one image of two tiles, the second reaching past the edge.
# Written with the weights shipped as "photo" until 2026-12-06, now the retired file photo-v1.safetensors.
CASES["v2-photo-20x70"] = ("tests/archives/inputs/photo-1x20x70x3.npy",
                           ["--model", "models/weights/photo-v1.safetensors", "--method", "bits-back"])
# Layout 3 (2026-12-06): the data-seeded layout with a shorter header (no model name, the payload's length implied).
V3_TWINS = V2_TWINS + ["photo-20x70"]
CASES.update({f"v3-{name}": CASES.get(name) or CASES[f"v2-{name}"] for name in V3_TWINS})
CASES["v3-photo-20x70"] = (CASES["v3-photo-20x70"][0], ["--model", "photo", "--method", "bits-back"])
FORMAT_3 = {f"v3-{name}" for name in V3_TWINS}


def write_inputs() -> None:
    """The small inputs the cases use, derived from the bundled samples (deterministic)."""
    INPUTS.mkdir(exist_ok=True)
    grey = np.load(ROOT / "samples" / "mnist-test-100.npy")
    binary = np.load(ROOT / "samples" / "binarized-mnist-test-100.npy")
    np.save(INPUTS / "mnist-40.npy", np.ascontiguousarray(grey[:40]))
    np.save(INPUTS / "binarized-20.npy", np.ascontiguousarray(binary[:20]))
    idx = bytes([0, 0, 8, 3]) + np.array([30, 28, 28], ">u4").tobytes() + grey[:30].tobytes()
    (INPUTS / "mnist-30.idx3-ubyte").write_bytes(idx)
    (INPUTS / "mnist-30.idx3-ubyte.gz").write_bytes(gzip.compress(idx, 9, mtime=0))
    lines = [f"line {i}: bits-back coding pops latents under q(z|x), pushes x under p(x|z), pushes z under p(z)."
             for i in range(60)]
    (INPUTS / "notes.txt").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(12)
    np.save(INPUTS / "rgb-2x5x7x3.npy", rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8))
    yy, xx = np.mgrid[0:20, 0:70]
    base = 100 + 60 * np.sin(xx / 9.0) + 2 * yy
    photo = np.stack([base, base + 25, base - 30], axis=-1) + rng.integers(-4, 5, (20, 70, 3))
    np.save(INPUTS / "photo-1x20x70x3.npy", np.clip(photo, 0, 255).astype(np.uint8)[None])


def main() -> int:
    from click.testing import CliRunner

    from bbans_cli.main import cli

    write_inputs()
    manifest_path = HERE / "golden.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    try:
        for name, (inp, args) in CASES.items():
            out = HERE / f"{name}.bba"
            if out.exists():
                print(f"{name}: exists, kept")
                continue
            src = ROOT / inp
            local = work / src.name  # compress a copy: the archive records no path, and nothing touches inputs
            shutil.copyfile(src, local)
            version = 1 if name in FORMAT_1 else 3 if name in FORMAT_3 else 2
            argv = ["compress", str(local), "-o", str(out), "--no-elbo", "--format-version", str(version),
                    *[str(ROOT / a) if a.startswith("models/weights/") else a for a in args]]  # retired weights files
            r = CliRunner().invoke(cli, argv)
            if r.exit_code != 0:
                print(r.output, file=sys.stderr)
                raise SystemExit(f"{name}: bbans compress failed")
            blob = out.read_bytes()
            manifest[name] = {"input": inp, "args": args, "bytes": len(blob), "format_version": version,
                              "sha256": hashlib.sha256(blob).hexdigest(),
                              "input_sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
            print(f"{name}: {len(blob)} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
