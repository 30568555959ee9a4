"""Long fault-injection run of the ``bbans`` command (not collected by pytest): N random scenarios (default 300)
of every fault class in tests/faulting.py -- EPIPE from a reader that leaves early, a file-size limit (full disk),
Ctrl-C and SIGTERM at random moments of compress and decompress (one chunk and several, ``-j 1`` and ``-j 2``, with
and without ``--rm``), a read-only output folder, an input that grows or shrinks while it is read -- then the
counts per class.

    nice -n 10 python tests/fuzz/faults.py [--cases 300] [--seed 0] [--models 0.1] [--verbose]

A run passes when every class has 0 cases of exit 0 with incomplete output, 0 inputs removed after a failed or
partial write, 0 partial files left, 0 "checksum verified" on failure, 0 tracebacks, 0 unexplained exit
statuses and 0 hangs; exits 1 otherwise. ``--models`` is the share of signal scenarios coded with a shipped model
(torch; several seconds each) instead of classical codecs.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import faulting as F  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", type=float, default=0.1, help="share of scenarios coded with a shipped model")
    ap.add_argument("--verbose", action="store_true", help="print every scenario")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    scenarios = F.plan(rng, args.cases, with_models=args.models > 0, model_share=args.models)
    t0 = time.monotonic()
    failures = []

    def log(k, r):
        if r.problems:
            failures.append(r)
        if args.verbose or r.problems:
            tail = r.stderr.strip().splitlines()[-1:] if not r.problems else r.stderr.strip()[-800:]
            print(f"{k:4d} {r.scenario.key} x={r.scenario.x:.2f} exit {r.rc} {r.problems or ''}"
                  f"{' (outside)' if r.outside else ''}{'' if r.hit else ' (missed)'} {tail}", flush=True)
        elif k % 25 == 24:
            print(f"... {k + 1} scenarios, {time.monotonic() - t0:.0f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="bbans-faults-") as tmp:
        results, _ = F.run_plan(scenarios, Path(tmp), log=log)
    table = F.tally(results)
    print(f"\n{len(results)} scenarios in {time.monotonic() - t0:.0f} s (seed {args.seed})\n")
    cols = ["runs", "hit", "outside", *F.PROBLEMS]
    print(f"{'fault':<9}" + "".join(f"{c:>{len(c) + 2}}" for c in cols) + "   exit statuses")
    for fault in F.FAULTS:
        if fault not in table:
            continue
        t = table[fault]
        exits = ", ".join(f"{k}: {v}" for k, v in sorted(t["exits"].items(), key=lambda kv: str(kv[0])))
        print(f"{fault:<9}" + "".join(f"{t[c]:>{len(c) + 2}}" for c in cols) + f"   {exits}")
    total = {c: sum(table[f][c] for f in table) for c in cols}
    print(f"{'all':<9}" + "".join(f"{total[c]:>{len(c) + 2}}" for c in cols))
    print("\nhit: the fault reached the running command (a signal after the exit, or a change after the last read,"
          "\ndid not); outside: a signal during the interpreter's start-up or shutdown (killed by it; nothing "
          "partial left)")
    bad = sum(table[f][p] for f in table for p in F.PROBLEMS)
    print(f"\n{'FAIL' if bad else 'PASS'}: {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
