"""Where bbans's encode and decode time goes, by stage, for each shipped model (cProfile).

    python benchmarks/profile.py [--models NAME ...] [--items 2000] [--threads 1] [--batch-size 100] [--top N]
                                 [--json PATH]

Each model runs in a fresh child process (``--one MODEL``) on the first ``--items`` items of its test set
(mnist-test for 0..255 models, binarized-mnist-test for 0..1 models, Kodak images for image models such as
``photo``; retired "-v1" models only when named): after
an untimed warm-up round trip of one batch, once unprofiled, for the wall times and items/s, then once under
cProfile for the split. It prints per model the wall seconds, items/s, the archive's bits/dim and one table: rows
are stages, columns the profiled seconds of each phase (encode = ``bbans.compress(method="bits-back")``, decode =
``bbans.decompress``) and their share in percent. A stage is the sum of the tottime (seconds inside a function
itself) of its functions, so the stages add up to the profiled total, which includes cProfile's overhead:

- networks: models/integer_net.py, models/coding_model.py, models/photo_coding_model.py, torch;  AR loop:
  models/ar_head.py, models/photo_ar_head.py, bbans/codecs/autoregressive.py;  tables: the integer-table codecs (twostage, tables, logistic, gaussian,
  fixedlog, hierarchy, the compiled kernels);  coder: constriction and bbans/codecs/basic.py;  chain:
  bbans/bitsback/;  I/O & container: bbans/container/, bbans/api.py.
- Built-ins (numpy, ...) and library code in no stage are split among their callers' stages in proportion to the
  time spent under each caller; what has no attributable caller is "other". cProfile sees only the main thread:
  work on the "bbans-blocks" threads (bbans/codecs/blocks.py) shows as the main thread's waits for it, which land
  in the stage that started the blocks (tables, or the AR head's all-positions pass).

``--top N`` also lists the N functions with the most tottime per phase. ``--json PATH`` writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
# `python benchmarks/profile.py` puts benchmarks/ first on sys.path, where this file would shadow the standard
# library's `profile` module, which cProfile imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

STAGES = ("networks", "AR loop", "tables", "coder", "chain", "I/O & container", "other")
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (  # (stage, path fragments of its source files)
    ("networks", ("models/integer_net.py", "models/coding_model.py", "models/photo_coding_model.py", "/torch/")),
    ("AR loop", ("models/ar_head.py", "models/photo_ar_head.py", "bbans/codecs/autoregressive.py")),
    ("tables", tuple(f"bbans/codecs/{m}.py" for m in ("twostage", "tables", "logistic", "gaussian", "fixedlog",
                                                      "hierarchy", "kernels"))),
    ("coder", ("bbans/codecs/basic.py", "/constriction/")),
    ("chain", ("bbans/bitsback/",)),
    ("I/O & container", ("bbans/container/", "bbans/api.py")),
)
Func = tuple[str, int, str]  # pstats' key: (file, line, function name)


def direct_stage(file: str, name: str) -> str | None:
    """The stage a function belongs to by its own source file or, for a built-in (file "~"), its name."""
    if file == "~":
        if "AnsCoder" in name or "constriction" in name:
            return "coder"
        return "networks" if "torch" in name else None
    path = file.replace("\\", "/")
    return next((stage for stage, parts in RULES if any(p in path for p in parts)), None)


def attribute(stats: dict) -> dict[Func, dict[str, float]]:
    """Each function of ``pstats.Stats(...).stats`` -> {stage: share of its tottime}: its own stage, or else a
    split among its callers' stages in proportion to the tottime it spent under each caller."""
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, path: frozenset) -> dict[str, float]:
        if func in memo:
            return memo[func]
        stage = direct_stage(func[0], func[2])
        out: dict[str, float] = {stage: 1.0} if stage else {}
        if not stage:
            edges = {c: e for c, e in stats[func][4].items() if c in stats and c not in path}
            weights = {c: e[2] for c, e in edges.items()}
            if sum(weights.values()) <= 0:  # too fast to time under any caller: split by calls instead
                weights = {c: float(e[0]) for c, e in edges.items()}
            total = sum(weights.values())
            for caller, w in weights.items():
                for s, f in shares(caller, path | {func}).items():
                    out[s] = out.get(s, 0.0) + f * w / total
        memo[func] = out or {"other": 1.0}
        return memo[func]

    return {func: shares(func, frozenset()) for func in stats}


def split(stats: dict, top: int) -> dict:
    """Seconds per stage (tottime x share, summed) and the ``top`` functions with the most tottime as
    [name, stage holding most of it, seconds, calls]."""
    share = attribute(stats)
    seconds = dict.fromkeys(STAGES, 0.0)
    for func, (_, _, tottime, _, _) in stats.items():
        for s, f in share[func].items():
            seconds[s] += tottime * f
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    named = [[name if f == "~" else f"{'/'.join(Path(f).parts[-2:])}:{line}({name})",
              max(share[(f, line, name)].items(), key=lambda kv: kv[1])[0], tt, nc]
             for (f, line, name), (_, nc, tt, _, _) in rows]
    return {"stages": seconds, "top": named}


def kodak_images(count: int):
    """The first ``count`` Kodak images (``photos/test/kodak``, 768x512 RGB, turned ones transposed back to
    landscape so that they stack) as uint8 (count, 512, 768, 3)."""
    import numpy as np
    from PIL import Image

    from bbans_models.datasets import photo_folder

    images = []
    for path in sorted(photo_folder("kodak").glob("*.png"))[:count]:
        with Image.open(path) as im:
            x = np.asarray(im.convert("RGB"))
        images.append(x if x.shape[0] <= x.shape[1] else x.transpose(1, 0, 2))
    return np.stack(images)


def measure(name: str, items: int, batch_size: int, threads: int, top: int) -> dict:
    """Wall times (unprofiled run) and the profiled split of encode and decode of ``name`` on ``items`` items."""
    import cProfile
    import pstats

    import numpy as np
    import torch

    import bbans
    from bbans.container.registry import load_model
    from bbans_models.datasets import load_dataset

    torch.set_num_threads(threads)
    model = load_model(name)
    if getattr(model, "tile_size", None):  # an image model: the first `items` Kodak images, each one archive's item
        data = kodak_images(items or 1)
        warm = data[:1, :2 * model.tile_size, :2 * model.tile_size]
    else:
        data = load_dataset("binarized-mnist-test" if tuple(model.value_range) == (0, 1) else "mnist-test")
        data = data[:items or 2000]
        warm = data[:batch_size]  # untimed: one-time costs (torch's first calls, caches) stay out of both runs
    out: dict = {"model": name, "items": len(data), "batch_size": batch_size, "threads": torch.get_num_threads()}
    bbans.decompress(bbans.compress(warm, model, method="bits-back", batch_size=batch_size), model)
    out.update(wall_s={}, profiled_s={}, split={})

    def timed(profiled: bool, phase: str, call: Callable[[], Any]) -> Any:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        result = profiler.runcall(call) if profiled else call()
        out["profiled_s" if profiled else "wall_s"][phase] = time.perf_counter() - start
        if profiled:
            out["split"][phase] = split(pstats.Stats(profiler).stats, top)
        return result

    for profiled in (False, True):
        blob = timed(profiled, "encode", lambda: bbans.compress(data, model, method="bits-back",
                                                                 batch_size=batch_size))
        decoded = timed(profiled, "decode", lambda: bbans.decompress(blob, model))
        assert np.array_equal(decoded, data), f"{name}: decode differs from the input"
    out.update(bytes=len(blob), bits_per_dim=8 * len(blob) / data.size)
    return out


def table(rows: list[list[str]], left: int = 1) -> list[str]:
    """Markdown table lines, columns padded to align: the first ``left`` columns to the left, the others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rule = ["-" * w if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]

    def fmt(r: list[str]) -> str:
        cells = (c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        return "| " + " | ".join(cells) + " |"

    return [fmt(rows[0]), fmt(rule), *map(fmt, rows[1:])]


def report(r: dict) -> list[str]:
    wall, prof, parts = r["wall_s"], r["profiled_s"], r["split"]
    lines = [f"## {r['model']}: {r['items']} items, batch {r['batch_size']}, {r['threads']} thread(s)", "",
             f"wall (unprofiled run): encode {wall['encode']:.2f} s ({r['items'] / wall['encode']:.0f} items/s), "
             f"decode {wall['decode']:.2f} s ({r['items'] / wall['decode']:.0f} items/s); "
             f"{r['bits_per_dim']:.4f} bits/dim; decode == input", "",
             "stage seconds below are from the profiled run (cProfile tottime, overhead included):", ""]
    totals = {p: sum(parts[p]["stages"].values()) for p in ("encode", "decode")}
    rows = [["stage", "encode s", "encode %", "decode s", "decode %"]]
    for stage in (*STAGES, "total"):
        cells = [stage]
        for p in ("encode", "decode"):
            s = totals[p] if stage == "total" else parts[p]["stages"][stage]
            cells += [f"{s:.3f}", f"{100 * s / totals[p]:.1f}" if totals[p] else "-"]
        rows.append(cells)
    lines += table(rows)
    lines.append(f"\n(profiled wall: encode {prof['encode']:.2f} s, decode {prof['decode']:.2f} s)")
    for p in ("encode", "decode"):
        if parts[p]["top"]:
            lines += ["", f"top {len(parts[p]['top'])} functions by tottime, {p}:", ""]
            lines += table([["function", "stage", "seconds", "calls"]] +
                           [[fn, stage, f"{tt:.3f}", str(nc)] for fn, stage, tt, nc in parts[p]["top"]], left=2)
    return lines + [""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", help="model names (default: every shipped model but retired -v1 ones)")
    p.add_argument("--items", type=int, help="items of the test set to code (default 2000; for an image model, "
                                             "Kodak images: default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch, OpenMP and table threads (default 1)")
    p.add_argument("--batch-size", type=int, default=100, help="batch_size= of bbans.compress (default 100)")
    p.add_argument("--top", type=int, default=0, help="also list the N functions with most tottime per phase")
    p.add_argument("--json", type=Path, help="write the figures of every model to this JSON file")
    p.add_argument("--one", metavar="MODEL", help=argparse.SUPPRESS)  # child: measure one model, print JSON
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BBANS_THREADS"):  # before numpy or torch is imported
        os.environ[var] = str(args.threads)
    if args.one:
        print(json.dumps(measure(args.one, args.items, args.batch_size, args.threads, args.top)))
        return
    import bbans

    names = args.models or [m["name"] for m in bbans.list_models() if not m["name"].endswith("-v1")]
    results = []
    for name in names:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--top", str(args.top)]
        cmd += ["--items", str(args.items)] if args.items else []
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print("\n".join(report(results[-1])), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
