"""One prepared run for a lent GPU (issue 17), and the CPU-side check of what it brings back.

On the GPU machine (the device tool runs it in the repository root; $OUT comes back):

    python scripts/gpu_run.py run --out $OUT --items 10000 --photos 24 --train-minutes 8

1. **Portability first** (a few minutes): the first ``--items`` 8-bit MNIST test images with `mnist` and the first
   ``--photos`` Kodak images with `photo` are coded with bits-back, the integer networks on ``--device`` (cuda);
   each archive goes to OUT/archives/ at once, with OUT/archives/index.json (input, model, bytes, sha256, seconds).
2. **Then training** with the minutes left: `bbans train photo --resume` from a copy of the kept CPU checkpoint
   (models/checkpoints/photo-160min.float.safetensors) on ``--device``, ``--batch-size`` crops per step, for
   ``--train-minutes`` more minutes; the float checkpoint (with the Adam state) is rewritten in OUT/train/ after
   every epoch, so a cut-off run still returns weights, and OUT/train/log.txt has the test −ELBO curve.

Back on this CPU (the archives in the fetched folder):

    python scripts/gpu_run.py check FETCHED_OUT

decodes every archive on the CPU, compares the result with its input, re-encodes the input on the CPU and says
whether the archive bytes are identical (else the first differing byte). Exit status 1 if any archive fails.

Tested on the CPU with tiny budgets (``--device cpu``): tests/test_gpu_run.py. Units: seconds; bits per dimension
(bits per sub-pixel for photos).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "models" / "checkpoints" / "photo-160min.float.safetensors"
CHECKPOINT_MINUTES = 160.0  # the kept checkpoint's training minutes (models/checkpoints/photo-160min.json)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def inputs(items: int, photos: int) -> list[tuple[str, str, np.ndarray]]:
    """(label, model name, uint8 data) of the portability check: MNIST test images, then Kodak photos (1, H, W, 3)."""
    from PIL import Image

    from bbans_models.datasets import load_dataset, photo_folder

    out = []
    if items:
        out.append((f"mnist-test-{items}", "mnist", np.ascontiguousarray(load_dataset("mnist-test")[:items])))
    for path in sorted(photo_folder("kodak").glob("*.png"))[:photos]:
        out.append((path.stem, "photo", np.asarray(Image.open(path).convert("RGB"))[None].copy()))
    return out


def encode_on(device: str, out: Path, items: int, photos: int) -> list[dict]:
    """Phase 1: code every input with its model's networks on ``device``; archives and index.json under out/archives."""
    import bbans
    from bbans_models.registry import provider

    folder = out / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    models, index = {}, []
    for label, name, data in inputs(items, photos):
        model = models.get(name) or models.setdefault(name, provider.load_on(name, device))
        t0 = time.perf_counter()
        blob = bbans.compress(data, model, method="bits-back")
        seconds = time.perf_counter() - t0
        (folder / f"{label}.bba").write_bytes(blob)
        np.save(folder / f"{label}.npy", data)
        index.append({"label": label, "model": name, "device": device, "bytes": len(blob),
                      "bits_per_dim": 8 * len(blob) / data.size, "sha256": hashlib.sha256(blob).hexdigest(),
                      "seconds": round(seconds, 2)})
        (folder / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        log(f"{label}: {len(blob):,} bytes, {8 * len(blob) / data.size:.4f} bits/dim, coded on {device} in "
            f"{seconds:.1f} s")
    return index


def train_on(device: str, out: Path, minutes: float, batch_size: int, lr: float) -> int:
    """Phase 2: resume the photo recipe from the kept CPU checkpoint for ``minutes`` more on ``device``."""
    folder = out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "photo-gpu.safetensors"
    shutil.copyfile(CHECKPOINT, Path(f"{weights}.float.safetensors"))
    cmd = [sys.executable, "-m", "bbans_cli.main", "train", "photo", "--out", str(weights), "--resume",
           "--minutes", str(CHECKPOINT_MINUTES + minutes), "--device", device, "--batch-size", str(batch_size),
           "--lr", str(lr), "--name", "photo"]
    log("training: " + " ".join(cmd[2:]))
    with open(folder / "log.txt", "w") as f:
        f.write(" ".join(cmd[2:]) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode


def check(folder: Path) -> int:
    """Decode every archive of a run's out/archives on this CPU; compare with the inputs and a CPU re-encode."""
    import bbans

    index = json.loads((folder / "archives" / "index.json").read_text())
    failed = 0
    for e in index:
        blob = (folder / "archives" / f"{e['label']}.bba").read_bytes()
        data = np.load(folder / "archives" / f"{e['label']}.npy")
        try:
            back = bbans.decompress(blob)
            restored = np.array_equal(back, data)
        except Exception as exc:  # a GPU-written archive that does not decode is the finding, not a crash
            restored, back = False, f"{type(exc).__name__}: {exc}"
        again = bbans.compress(data, _cpu(e["model"]), method="bits-back")
        same = again == blob
        first = next((i for i, (a, b) in enumerate(zip(again, blob)) if a != b), min(len(again), len(blob)))
        failed += not (restored and same)
        print(f"{e['label']} (coded on {e['device']}): decoded on the CPU "
              f"{'identical to the input' if restored else 'WRONG: ' + str(back)[:200]}; CPU re-encode "
              f"{'byte-identical' if same else f'differs from byte {first:,}'} ({len(blob):,} bytes)", flush=True)
    print(f"{len(index) - failed} of {len(index)} archives portable")
    return 1 if failed else 0


def _cpu(name: str):
    from bbans.container.registry import load_model

    return load_model(name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the GPU half: portability archives, then training")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--device", default="cuda")
    r.add_argument("--items", type=int, default=10000, help="MNIST test images to code [10000]")
    r.add_argument("--photos", type=int, default=24, help="Kodak images to code [24]")
    r.add_argument("--train-minutes", type=float, default=8.0, help="more training minutes; 0 skips [8]")
    r.add_argument("--batch-size", type=int, default=256, help="crops per training step [256]")
    r.add_argument("--lr", type=float, default=2e-4,
                   help="Adam learning rate, constant [2e-4: the checkpoint ended its cosine near 0; a CPU test at "
                        "5e-4 with batch 8 went from 3.12 to 3.56 bpsp in one epoch]")
    c = sub.add_parser("check", help="the CPU half: decode a fetched run's archives here")
    c.add_argument("folder", type=Path)
    a = ap.parse_args()
    if a.cmd == "check":
        return check(a.folder)
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run it where one is, or with --device cpu to test the script", file=sys.stderr)
        return 2
    if a.device == "cuda":
        log(f"device: {torch.cuda.get_device_name(0)}")
    encode_on(a.device, a.out, a.items, a.photos)
    if a.train_minutes > 0:
        return train_on(a.device, a.out, a.train_minutes, a.batch_size, a.lr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
