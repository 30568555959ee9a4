"""Long hostile-archive fuzz (not collected by pytest): N mutated archives (default 100,000) through
``bbans.decompress``, and every 100th case through ``bbans decompress`` in a temporary folder, checking that no
output file appears unless the archive decoded to its original data.

    nice -n 10 python tests/fuzz/run_fuzz.py [--cases 100000] [--seed 0] [--timeout 10] [--no-shipped | --photos]

Prints the count of each outcome (clean errors, harmless damage decoded to the original, wrong outputs, crashes,
hangs) and of outputs written by the CLI on failed cases; exits 1 if any crash, hang, wrong output or stray output
file was seen. Mutations and outcomes: tests/fuzzing.py. Shipped-model archives (torch) are ~1 case in 11;
``--photos`` mutates only the shipped photo model's archives (images coded as tiles).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bbans.container import registry  # noqa: E402
from fuzzing import OUTCOMES, mutate, run_case, shipped_corpus, toy_corpus  # noqa: E402
from toy_models import FakeEntryPoint, FakeProvider, ToyBinary  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--no-shipped", action="store_true", help="toy and classical archives only (no torch)")
    ap.add_argument("--photos", action="store_true", help="only the shipped photo model's archives")
    ap.add_argument("--cli-every", type=int, default=100, help="run every Nth case through the CLI too")
    args = ap.parse_args()

    real = list(registry._entry_points())
    toys = FakeEntryPoint("fuzz-toys", FakeProvider(ToyBinary((4, 4))))
    registry._entry_points = lambda: [toys, *real]  # the CLI finds the toy model by name + sha256 too
    corpus = toy_corpus()
    weights = [1.0] * len(corpus)
    if args.photos:
        corpus = [s for s in shipped_corpus(HERE.parent.parent / "samples") if "photo" in s.name]
        weights = [1.0] * len(corpus)
    elif not args.no_shipped:
        shipped = shipped_corpus(HERE.parent.parent / "samples")
        corpus += shipped
        weights += [0.1 * len(weights) / len(shipped)] * len(shipped)  # ~1 case in 11 uses a shipped model
    p = np.asarray(weights) / np.sum(weights)
    print(f"corpus: {len(corpus)} archives: " + ", ".join(f"{s.name} ({len(s.blob)} B)" for s in corpus))

    from bbans_cli.main import cli

    rng = np.random.default_rng(args.seed)
    counts, per_sample, examples = Counter(), Counter(), {}
    cli_cases, cli_written = 0, 0
    runner = CliRunner()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        arc = Path(tmp) / "case.bba"
        out = Path(tmp) / "out.bin"
        for case in range(args.cases):
            k = rng.choice(len(corpus), p=p)
            sample, other = corpus[k], corpus[rng.integers(0, len(corpus))]
            blob = mutate(rng, sample.blob, other.blob)
            outcome, detail = run_case(blob, sample, args.timeout)
            counts[outcome] += 1
            per_sample[(sample.name, outcome)] += 1
            if outcome not in ("clean", "same") and outcome not in examples:
                examples[outcome] = (sample.name, detail, blob.hex()[:400])
            if case % args.cli_every == 0:
                cli_cases += 1
                arc.write_bytes(blob)
                r = runner.invoke(cli, ["decompress", str(arc), "-o", str(out)])
                leftovers = set(os.listdir(tmp)) - {"case.bba"}
                if r.exit_code != 0 and leftovers:
                    cli_written += 1
                if r.exit_code != 0 and "Traceback" in (r.output or ""):
                    counts["cli traceback"] += 1
                if r.exit_code not in (0, 1, 2, 3, 4):
                    counts["cli bad exit"] += 1
                for f in leftovers:
                    os.unlink(Path(tmp) / f)
            if (case + 1) % 5000 == 0:
                el = time.perf_counter() - t0
                print(f"  {case + 1:,} cases, {el:.0f} s: " + ", ".join(f"{o} {counts[o]:,}" for o in OUTCOMES),
                      flush=True)
    el = time.perf_counter() - t0
    print(f"\n{args.cases:,} mutated archives in {el:.0f} s (seed {args.seed}, {args.timeout:g} s per case limit)")
    print(f"clean errors:            {counts['clean']:,}")
    print(f"decoded to the original: {counts['same']:,} (harmless damage)")
    print(f"wrong outputs:           {counts['wrong']:,}")
    print(f"crashes:                 {counts['crash']:,}")
    print(f"hangs:                   {counts['hang']:,}")
    print(f"CLI cases:               {cli_cases:,}; outputs written on failure: {cli_written}; "
          f"tracebacks: {counts['cli traceback']}; unexpected exit codes: {counts['cli bad exit']}")
    print("per archive: " + "; ".join(f"{n} {o} {c}" for (n, o), c in sorted(per_sample.items())))
    for o, (name, detail, hexed) in examples.items():
        print(f"first {o}: {name}: {detail}\n  {hexed}")
    bad = counts["wrong"] + counts["crash"] + counts["hang"] + cli_written + counts["cli traceback"] \
        + counts["cli bad exit"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
