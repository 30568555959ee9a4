"""Every codec side by side on the MNIST test sets — one command, one table per set, written to BENCHMARKS.md.

    python benchmarks/run.py              # both whole test sets (10,000 images each); writes BENCHMARKS.md
    python benchmarks/run.py --quick      # 500 evenly spaced images per set, NLL on 50 of them; prints only
    python benchmarks/run.py --limit 2000 --out /tmp/bench.md

Per set (8-bit MNIST test, binarized MNIST test): gzip -9, bz2 -9, xz -9e, zstd -19 and brotli -11 on the raw
bytes (binary data packed 8 pixels per byte), PNG and WebP lossless per image (Pillow, sizes summed), and bbans
with each shipped model that fits the set: archive bits/dim beside the model's -ELBO (all images) and its
importance-sampled NLL estimate (a seeded random subset), encode and decode wall seconds, and peak memory. Then
the one-image case: bytes of every codec on the first test image of each set.

Each codec runs in a fresh Python process (benchmarks/jobs.py), which reports its own peak resident set size.
Needs ../shared/data (or $BBANS_DATA) and the benchmark extras: pip install -e .[bench].
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bbans_models.datasets import load_dataset

import bbans
from bbans.container.classic import REFERENCE_CODECS, optional_reference_codecs

ROOT = Path(__file__).resolve().parent.parent
JOBS = Path(__file__).resolve().parent / "jobs.py"
SETS = (("8-bit MNIST test set", "mnist-test"), ("Binarized MNIST test set", "binarized-mnist-test"))
IMAGE_FORMATS = (("PNG", "png"), ("WebP lossless", "webp"))
# Published figures for context (bits/dim; ../shared/data/README.md); never measured here.
PUBLISHED = {
    "mnist-test": "BB-ANS 1.41 (its −ELBO 1.39), Bit-Swap 1.29 (−ELBO 1.27), best likelihood models 1.14–1.20",
    "binarized-mnist-test": "BB-ANS 0.19 (its −ELBO 0.19)",
}


JOB_LOADS: list[float] = []  # 1-minute load average when each job started


def run_job(spec: dict) -> dict:
    """Run one benchmarks/jobs.py job in a fresh interpreter; its JSON result plus ``load`` (1-minute load average
    when it started). Exits with the job's error output if it fails."""
    load = os.getloadavg()[0]
    JOB_LOADS.append(load)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(JOBS), json.dumps(spec)], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    log(f"    {time.perf_counter() - t:.1f} s (load {load:.2f})")
    if proc.returncode != 0:
        sys.exit(f"benchmarks/run.py: error: job {spec} failed:\n{proc.stderr.strip()}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("exact") is False:
        sys.exit(f"benchmarks/run.py: error: job {spec} did not round-trip exactly")
    return dict(result, load=load)


def evenly_spaced(n_total: int, n: int | None) -> np.ndarray:
    """Indices of n items spread evenly over n_total (all of them when n is None or too large). The binarized
    set is grouped by digit, so a prefix would not be representative."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.arange(n) * n_total // n


def models_for(data: np.ndarray) -> list[str]:
    """Installed models whose data shape and value range are exactly this set's (8-bit -> 0..255, binary -> 0..1)."""
    vr = (0, 1) if int(data.max()) <= 1 else (0, 255)
    return [m["name"] for m in bbans.list_models()
            if tuple(m["data_shape"]) == data.shape[1:] and tuple(m["value_range"]) == vr]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_set(path: Path, data: np.ndarray, nll_items: int, nll_samples: int, threads: int,
              particles: list[int]) -> dict:
    """All rows of one set: {"codecs": [(name, result)], "models": [(name, archive result, eval result)],
    "particles": [(name, K, archive result)]}."""
    np.save(path, data)
    out = {"codecs": [], "models": [], "particles": []}
    generic = [name for name, _, _ in REFERENCE_CODECS] + [name for name, _, _ in optional_reference_codecs()]
    for name in generic:
        log(f"  {name}")
        out["codecs"].append((name, run_job({"job": "generic", "codec": name, "data": str(path)})))
    for label, fmt in IMAGE_FORMATS:
        log(f"  {label}")
        out["codecs"].append((label, run_job({"job": "image", "fmt": fmt, "data": str(path)})))
    for model in models_for(data):
        log(f"  bbans {model}: archive")
        arch = run_job({"job": "bbans", "model": model, "method": "bits-back", "threads": threads,
                        "data": str(path)})
        log(f"  bbans {model}: -ELBO and NLL (k={nll_samples}, {min(nll_items, len(data))} images)")
        ev = run_job({"job": "model_eval", "model": model, "nll_items": nll_items, "nll_samples": nll_samples,
                      "threads": threads, "data": str(path)})
        out["models"].append((model, arch, ev))
        for k in particles:
            log(f"  bbans {model}: Monte-Carlo bits-back, {k} particles")
            out["particles"].append((model, k, run_job({"job": "bbans", "model": model, "method": "bits-back",
                                                        "threads": threads, "particles": k, "data": str(path)})))
    return out


def mem(r: dict) -> str:
    return f"{r['peak_mib']:.0f} ({r['start_mib']:.0f})"


def set_table(title: str, data: np.ndarray, rows: dict, binary: bool, n_total: int) -> list[str]:
    dims = data.size
    scope = "all" if len(data) == n_total else f"{len(data):,} evenly spaced of the {n_total:,}"
    lines = [f"## {title} ({len(data):,} images, {scope})", "",
             "| codec | bits/dim | model −ELBO | model NLL est. | encode s | decode s | peak MiB (at start) |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for model, arch, ev in rows["models"]:
        rate = 8 * arch["bytes"] / dims
        lines.append(f"| **bbans `{model}`** (bits-back, whole archive) | **{rate:.4f}** | {ev['neg_elbo']:.4f} | "
                     f"{ev['nll']:.4f} | {arch['encode_s']:.1f} | {arch['decode_s']:.1f} | {mem(arch)} |")
        gap = 100 * (rate / ev["neg_elbo"] - 1)
        notes.append(f"bbans `{model}`: archive {arch['bytes']:,} bytes, {gap:+.2f}% vs the model's −ELBO on the "
                     f"same images; NLL = −log of the {ev['nll_samples']}-sample importance estimate "
                     f"(Burda et al., ICLR 2016) on {ev['nll_items']:,} of these images (seeded random subset), whose "
                     f"−ELBO is {ev['neg_elbo_subset']:.4f}; round trip byte-exact.")
        for m, k, r in rows.get("particles", ()):
            if m == model:
                lines.append(f"| bbans `{model}`, Monte-Carlo bits-back, K = {k} | {8 * r['bytes'] / dims:.4f} | "
                             f"| | {r['encode_s']:.1f} | {r['decode_s']:.1f} | {mem(r)} |")
                notes.append(f"bbans `{model}` with K = {k} particles (`particles={k}`, archive method "
                             f"{r['method']}): pays about the IWAE-{k} bound instead of the −ELBO, at about {k}× "
                             "the model work; round trip byte-exact.")
    for name, r in sorted(rows["codecs"], key=lambda t: t[1]["bytes"]):
        lines.append(f"| {name} | {8 * r['bytes'] / dims:.4f} | | | {r['encode_s']:.1f} | {r['decode_s']:.1f} | "
                     f"{mem(r)} |")
    floors = [f"{name} {r['blank_bytes']} bytes ({8 * r['blank_bytes'] / data[0].size:.2f} bits/dim)"
              for name, r in rows["codecs"] if "blank_bytes" in r]
    raw_note = "binary pixels packed 8 per byte" if binary else "raw pixel bytes"
    notes.append(f"Generic codecs: the tool's file format on the {raw_note} of all images in one stream (no IDX "
                 "header). PNG/WebP: one lossless file per image, sizes summed"
                 + ("; PNG as 1-bit mode \"1\", WebP (no 1-bit mode) as 8-bit grey 0/255" if binary else "")
                 + f". Per-file floor (an all-black image's file): {', '.join(floors)}.")
    return lines + [""] + [f"- {n}" for n in notes] + [""]


def one_image_table(results: list[tuple[str, dict]]) -> list[str]:
    head = "| codec | " + " | ".join(f"{title}: bytes" for title, _ in results) + " |"
    lines = ["## One 28×28 digit (the first test image of each set)", "", head,
             "|---|" + "---|" * len(results)]
    names = list(results[0][1]["sizes"])
    labels = {"png": "PNG (Pillow, optimize)", "webp": "WebP lossless (method 6)"}
    for name in names:
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(f"{r['sizes'][name]:,}" for _, r in results) + " |")
    lines.append("| **bbans, default method (auto)** | "
                 + " | ".join(f"**{r['bbans_auto']['bytes']:,}** ({r['bbans_auto']['method']})" for _, r in results)
                 + " |")
    lines.append("| bbans, bits-back only | "
                 + " | ".join(f"{r['bbans_bits-back']['bytes']:,}" for _, r in results) + " |")
    lines += ["", ("- bbans sizes are whole archives (header, checksums, model name and sha256 included). With one "
                   "image bits-back has nothing to give back and pays its initial bits, so `auto` stores the "
                   "smallest classical payload (raw deflate/LZMA without the gzip/xz containers the tools write)."),
              ""]
    return lines


KEEP_MARKER = "<!-- measured by other commands (each section says which); benchmarks/run.py keeps what follows -->"
README_START = "<!-- benchmarks/run.py: start -->"
README_END = "<!-- benchmarks/run.py: end -->"


def kept_sections(path: Path) -> str:
    """What follows KEEP_MARKER in the file ``path`` (the marker included, with a blank line before), or "": the
    sections other benchmarks measured, which a new run must not drop."""
    old = path.read_text() if path.exists() else ""
    return "\n" + old[old.index(KEEP_MARKER):] if KEEP_MARKER in old else ""


def readme_block(sections: list[list[str]], stamp: str) -> list[str]:
    """The README's copy of the results: ``stamp`` (when and under what load), then each set's heading (as bold
    text) and table, verbatim from BENCHMARKS.md."""
    block = [stamp, ""]
    for section in sections:
        heading = section[0].removeprefix("## ")
        table = section[2:section.index("", 2)]
        block += [f"**{heading}**", "", *table, ""]
    return block[:-1]


def update_readme(path: Path, block: list[str]) -> None:
    """Replace the lines between README_START and README_END in ``path`` with ``block`` (nothing else changes)."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        log(f"{path.name} has no {README_START} ... {README_END} markers; its results table was not updated")
        return
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    path.write_text(head + README_START + "\n" + "\n".join(block) + "\n" + README_END + tail)
    log(f"updated the results tables in {path.name}")


def machine_lines(load_start: tuple, load_end: tuple, job_loads: list[float], torch_info: str) -> list[str]:
    cpu = "unknown CPU"
    mem_total = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_total = f", {int(line.split()[1]) / 2 ** 20:.0f} GiB RAM"
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT, check=False).stdout.strip() or "?"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "bbans", "models", "cli"],
                               capture_output=True, text=True, cwd=ROOT, check=False).stdout.splitlines()
        if dirty:
            commit += f" with uncommitted edits to {len(dirty)} tracked files in bbans/, models/, cli/"
    except OSError:
        commit = "?"
    from importlib.metadata import version

    libs = ", ".join(f"{name} {version(name)}" for name in ("pillow", "zstandard", "brotli"))
    return [(f"- Machine: {cpu}, {os.cpu_count()} cores{mem_total}, no GPU used; {platform.system()} "
             f"{platform.release()}; Python {platform.python_version()} (zlib, bz2, lzma from its standard library; "
             f"{libs}), {torch_info}, bbans {bbans.__version__} (git {commit})."),
            (f"- Load average (1/5/15 min) at start {'/'.join(f'{v:.2f}' for v in load_start)}, at end "
             f"{'/'.join(f'{v:.2f}' for v in load_end)}; 1-minute load when each codec started: "
             f"{min(job_loads):.2f} to {max(job_loads):.2f}. Other work shares these cores, so wall times can vary a "
             "lot between runs; sizes and bits/dim are deterministic.")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="500 images per set, NLL on 50 of them (under a minute "
                   "on a quiet 2-core machine)")
    p.add_argument("--limit", type=int, default=None, help="N evenly spaced test images per set (default: all)")
    p.add_argument("--nll-items", type=int, default=None, help="images for the NLL estimate (default 1000; 50 "
                   "with --quick)")
    p.add_argument("--nll-samples", type=int, default=250, help="importance samples per image (default 250)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for bbans (default 1: every other codec "
                   "here is single-threaded, and 2 threads slow down many-fold when another process holds a core)")
    p.add_argument("--particles", default="", help="comma-separated particle counts K > 1: add a bbans row "
                   "with Monte-Carlo bits-back per K (about K times slower; off by default)")
    p.add_argument("--out", default=None, help="markdown file to write (default: BENCHMARKS.md for a run on the "
                   "whole sets, nothing otherwise)")
    a = p.parse_args()
    limit = 500 if a.quick and a.limit is None else a.limit
    try:
        particles = [int(k) for k in a.particles.split(",") if k.strip()]
    except ValueError:
        sys.exit(f"benchmarks/run.py: error: --particles takes integers separated by commas, got {a.particles!r}")
    if any(k < 2 for k in particles):
        sys.exit("benchmarks/run.py: error: --particles counts must be at least 2 (K = 1 is the plain bbans row)")
    nll_items = a.nll_items or (50 if a.quick else 1000)
    try:
        optional_reference_codecs()
    except ImportError as exc:
        sys.exit(f"benchmarks/run.py: error: {exc}")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0, load_start = time.perf_counter(), os.getloadavg()
    sections, singles, torch_info, full = [], [], "torch ?", limit is None
    with tempfile.TemporaryDirectory() as tmp:
        for title, name in SETS:
            everything = load_dataset(name)
            data = everything[evenly_spaced(len(everything), limit)]
            log(f"{name}: {len(data):,} images")
            rows = bench_set(Path(tmp) / f"{name}.npy", data, nll_items, a.nll_samples, a.threads, particles)
            for _, _, ev in rows["models"]:
                n = ev["torch_threads"]
                torch_info = f"torch {ev['torch']} ({n} thread{'' if n == 1 else 's'} for bbans)"
            sections.append(set_table(title, data, rows, int(data.max()) <= 1, len(everything)))
            one = Path(tmp) / f"{name}-one.npy"
            np.save(one, everything[:1])
            log("  one image")
            singles.append((title.replace(" test set", ""), run_job({"job": "one_image", "data": str(one)})))
    elapsed = time.perf_counter() - t0
    cmd = "python benchmarks/run.py" + "".join(f" {x}" for x in sys.argv[1:])
    lines = ["# Benchmarks", "",
             (f"Generated by `{cmd}` on {started:%Y-%m-%d %H:%M} UTC ({elapsed / 60:.1f} min in all). "
              "Bits/dim = 8 × compressed bytes / pixels (lower is better). Times are wall seconds of the codec "
              "calls alone; peak MiB is the peak resident set size of the fresh process that ran the codec (Python, "
              "its imports — numpy, Pillow, and for bbans torch and the model —, the data, the codec's working "
              "memory and output), with the same figure before the codec started in parentheses."), "",
             *machine_lines(load_start, os.getloadavg(), JOB_LOADS, torch_info), ""]
    for (title, name), section in zip(SETS, sections):
        lines += section
        if name in PUBLISHED:
            lines += [f"Published for context (not measured here): {PUBLISHED[name]}.", ""]
    lines += one_image_table(singles)
    text = "\n".join(lines)
    print(text)
    out = Path(a.out) if a.out else (ROOT / "BENCHMARKS.md" if full else None)
    if out:
        out.write_text(text + "\n" + kept_sections(out))
        log(f"wrote {out}")
    if full and not a.out:
        stamp = (f"Measured {started:%Y-%m-%d} with `{cmd}`; 1-minute load average {min(JOB_LOADS):.1f} to "
                 f"{max(JOB_LOADS):.1f} on the 2 cores while it ran (times are wall seconds and slow down with load; "
                 "sizes are exact).")
        update_readme(ROOT / "README.md", readme_block(sections, stamp))


if __name__ == "__main__":
    main()
