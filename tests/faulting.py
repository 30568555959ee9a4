"""Fault injection for the ``bbans`` command: real processes under the faults a user's machine produces, and the
checks that no fault loses data.

Each *scenario* runs ``python -m bbans_cli compress|decompress ...`` in a fresh folder under one fault:

=========  ===========================================================================================================
fault      what happens
=========  ===========================================================================================================
pipe       the archive (or restored file) goes to standard output (``-c``), read by a reader that takes 1..n bytes
           and closes the pipe (``| head -c N``): EPIPE
fsize      a file-size limit (``RLIMIT_FSIZE``, as ``ulimit -f``; stands in for a full disk or a quota) below the
           output's size, for ``-o FILE`` and for ``-c > FILE``: short writes, then EFBIG
sigint     Ctrl-C at a random moment: SIGINT to the whole process group (worker processes of ``-j 2`` too)
sigterm    SIGTERM at a random moment, to the main process (``kill PID``) or to the group (a service manager)
readonly   the output's folder is read-only (as root the command runs without CAP_DAC_OVERRIDE, through
           ``setpriv``, since root ignores file modes otherwise)
grow       the input grows (1,000 bytes appended) at a random moment while it is being compressed
shrink     the input is truncated to half at a random moment while it is being compressed
=========  ===========================================================================================================

and classifies what it left behind (``check``):

- ``exit0_incomplete``: exit status 0 but the output is missing or differs from the complete output (for ``-c``
  into a pipe: the reader closed early, so an exit status 0 means bytes were dropped silently);
- ``input_removed``: the input (``--rm``) is gone although the output is not complete (or went to stdout);
- ``partial_left``: a ``.part`` temporary file, or a file under the output's name that is not the complete
  output;
- ``verified_on_failure``: a failed run printed "checksum verified";
- ``traceback``: a Python traceback on standard error (an uncaught exception, in the command or a worker);
- ``bad_exit``: an exit status the fault does not explain (e.g. 0 under a fault that always hits, or 1 for a
  signal);
- ``hang``: no exit within the time limit.

A signal that lands outside the command, while the interpreter starts (its first ~0.2 s: imports) or after the
command has finished (interpreter shutdown), ends the process the way Python ends any program (killed by the
signal; during imports a ``KeyboardInterrupt`` traceback for SIGINT): counted as ``outside``, not as a failure
when nothing partial is left (the checks above still apply: an output under its name must be complete).

Complete outputs are known in advance: archives are byte-identical for any run and any number of processes, so
every scenario's output is compared with a clean reference run's. ``tests/test_cli_faults.py`` runs a bounded set;
``tests/fuzz/faults.py`` runs many and prints the counts.
"""
from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("bbans")  # the console script users run (else python -m bbans_cli)
BBANS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bbans_cli"]
FAULTS = ("pipe", "fsize", "sigint", "sigterm", "readonly", "grow", "shrink")
PROBLEMS = ("exit0_incomplete", "input_removed", "partial_left", "verified_on_failure", "traceback", "bad_exit",
            "hang")
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]  # root that honours file modes


def readonly_supported() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


# ------------------------------------------------------------------------------------------------ payloads


@dataclass(frozen=True)
class Payload:
    """An input file and the compress arguments it is coded with."""

    name: str
    data: bytes
    args: tuple = ()
    model: bool = False  # coded with a shipped model (torch: seconds per run)


def raw_payload(size: int = 1_000_000, seed: int = 0) -> bytes:
    """Incompressible noise with some text in between: the archive stays above the pipe buffer (64 KiB)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, int(size * 0.6), dtype=np.uint8).tobytes()
    text = b"".join(b"line %d of the fault-injection payload\n" % i for i in range(size // 40))[:size - len(noise)]
    return noise[:len(noise) // 2] + text + noise[len(noise) // 2:]


def payloads() -> dict[str, Payload]:
    raw = raw_payload()
    import io

    binarized = np.load(ROOT / "samples" / "binarized-mnist-test-100.npy")
    buf = io.BytesIO()
    np.save(buf, binarized)
    model_args = ("-m", "binarized-mnist-small", "--method", "bits-back", "--no-elbo")
    return {
        "raw": Payload("blob.bin", raw),
        "raw-chunks": Payload("blob.bin", raw, ("--chunk-items", "250000")),
        "model": Payload("digits.npy", buf.getvalue(), model_args, model=True),
        "model-chunks": Payload("digits.npy", buf.getvalue(), model_args + ("--chunk-items", "25"), model=True),
    }


# ------------------------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    fault: str         # one of FAULTS
    op: str            # 'compress' | 'decompress'
    payload: str       # a key of payloads()
    dest: str          # 'file' (-o out/NAME), 'stdout-file' (-c > out/stdout), 'stdout-pipe' (-c | reader)
    jobs: int = 1
    rm: bool = False
    x: float = 0.5     # the fault's parameter in [0, 1): when (below 0.1: during start-up; above: a share of the
    #                    command's run), the file-size limit (share of the output), bytes the reader takes
    group: bool = True  # sigterm: to the whole process group (else to the main process only)

    @property
    def key(self) -> str:
        return (f"{self.fault}:{self.op}:{self.payload}:{self.dest}:j{self.jobs}" + (":rm" if self.rm else "")
                + ("" if self.group else ":pid"))


@dataclass
class Result:
    scenario: Scenario
    rc: int | None
    problems: list = field(default_factory=list)
    outside: bool = False  # a signal that landed outside the command (interpreter start-up or shutdown)
    hit: bool = True       # the fault reached the command (a signal after the exit did not)
    stderr: str = ""


class References:
    """Clean runs, one per (op, payload, jobs): the complete outputs and how long a run takes."""

    def __init__(self, tmp: Path, table: dict[str, Payload]):
        self.tmp, self.table = Path(tmp), table
        self.archives: dict[str, bytes] = {}
        self.changed: dict[tuple, bytes] = {}
        self._startup: float | None = None
        self.seconds: dict[tuple, float] = {}

    def archive(self, payload: str) -> bytes:
        if payload not in self.archives:
            p = self.table[payload]
            d = self.tmp / f"ref-{payload}"
            d.mkdir(parents=True, exist_ok=True)
            (d / p.name).write_bytes(p.data)
            t = time.monotonic()
            r = subprocess.run([*BBANS, "compress", p.name, "-o", "ref.bba", "-q", *p.args], cwd=d,
                               capture_output=True, text=True, env=_env(), timeout=600)
            self.seconds[("compress", payload, 1)] = time.monotonic() - t
            assert r.returncode == 0, r.stderr
            self.archives[payload] = (d / "ref.bba").read_bytes()
        return self.archives[payload]

    def changed_archive(self, payload: str, fault: str) -> bytes:
        """The archive of the input as ``fault`` ('grow' / 'shrink') leaves it (a change before the command
        opened the file is not a change while reading it)."""
        key = (payload, fault)
        if key not in self.changed:
            p = self.table[payload]
            d = self.tmp / f"changed-{payload}-{fault}"
            d.mkdir(parents=True, exist_ok=True)
            (d / p.name).write_bytes(changed(p.data, fault))
            r = subprocess.run([*BBANS, "compress", p.name, "-o", "ref.bba", "-q", *p.args], cwd=d,
                               capture_output=True, text=True, env=_env(), timeout=600)
            assert r.returncode == 0, r.stderr
            self.changed[key] = (d / "ref.bba").read_bytes()
        return self.changed[key]

    def startup(self) -> float:
        """Seconds from starting the process to the command's first line of work (imports): ``bbans --version``."""
        if self._startup is None:
            times = []
            for _ in range(3):
                t = time.monotonic()
                subprocess.run([*BBANS, "--version"], capture_output=True, env=_env(), timeout=120)
                times.append(time.monotonic() - t)
            self._startup = min(times)
        return self._startup

    def saw(self, op: str, payload: str, jobs: int, seconds: float) -> None:
        key = (op, payload, jobs)
        self.seconds[key] = min(self.seconds.get(key, seconds), seconds)

    def time(self, op: str, payload: str, jobs: int) -> float:
        key = (op, payload, jobs)
        if key not in self.seconds:
            p = self.table[payload]
            d = self.tmp / f"time-{op}-{payload}-{jobs}"
            d.mkdir(parents=True, exist_ok=True)
            if op == "compress":
                (d / p.name).write_bytes(p.data)
                argv = ["compress", p.name, "-o", "out.bba", "-q", "-j", str(jobs), *p.args]
            else:
                (d / (p.name + ".bba")).write_bytes(self.archive(payload))
                argv = ["decompress", p.name + ".bba", "-o", "out", "-q", "-j", str(jobs)]
            t = time.monotonic()
            r = subprocess.run([*BBANS, *argv], cwd=d, capture_output=True, text=True, env=_env(), timeout=600)
            self.seconds[key] = time.monotonic() - t
            assert r.returncode == 0, r.stderr
        return self.seconds[key]


def changed(data: bytes, fault: str) -> bytes:
    return data + b"\0" * 1000 if fault == "grow" else data[:len(data) // 2]


def _env() -> dict:
    env = dict(os.environ)
    env["BBANS_PROGRESS"] = "0"
    env.pop("BBANS_DEBUG", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_scenario(s: Scenario, refs: References, workdir: Path, timeout: float = 300.0) -> Result:
    """Run one scenario in the empty folder ``workdir`` and check what it left."""
    p = refs.table[s.payload]
    archive = refs.archive(s.payload)
    workdir = Path(workdir)
    src_dir, out_dir = workdir / "in", workdir / "out"
    src_dir.mkdir(parents=True)
    out_dir.mkdir()
    if s.op == "compress":
        inp, original, complete = src_dir / p.name, p.data, archive
        out = out_dir / (p.name + ".bba")
        argv = ["compress", str(inp), *p.args]
    else:
        inp, original, complete = src_dir / (p.name + ".bba"), archive, p.data
        out = out_dir / p.name
        argv = ["decompress", str(inp)]
    inp.write_bytes(original)
    argv += ["-j", str(s.jobs)] + (["--rm"] if s.rm else [])
    stdout_file = out_dir / "stdout"
    if s.dest == "file":
        argv += ["-o", str(out)]
    else:
        argv += ["-c"]

    limit = None
    prefix = []
    if s.fault == "fsize":
        limit = int(s.x * len(complete))  # always below the output's size: the fault always hits
    if s.fault == "readonly":
        os.chmod(out_dir, 0o555)
        if os.geteuid() == 0:  # root writes anywhere unless it loses CAP_DAC_OVERRIDE
            prefix = NO_DAC

    def preexec():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = _env()
    stdout_target = {"file": subprocess.DEVNULL, "stdout-pipe": subprocess.PIPE}.get(s.dest)
    mover = None
    if s.fault in ("grow", "shrink"):
        fd = os.open(inp, os.O_RDWR)
        mover = fd
    errs: list = []
    with (open(stdout_file, "wb") if s.dest == "stdout-file" else _nullcontext()) as sout:
        t0 = time.monotonic()
        # standard error is a pipe, not a file: a file-size limit must not silence the command's error message
        proc = subprocess.Popen([*prefix, *BBANS, *argv], cwd=workdir, stdin=subprocess.DEVNULL,
                                stdout=sout if s.dest == "stdout-file" else stdout_target, stderr=subprocess.PIPE,
                                env=env, preexec_fn=preexec, start_new_session=True)
        err_reader = threading.Thread(target=lambda: errs.append(proc.stderr.read()), daemon=True)
        err_reader.start()
        reader = None
        got = bytearray()
        if s.dest == "stdout-pipe":
            # the pipe fault: a reader that takes 1 byte, or part of the output, and leaves; otherwise read it all
            want = (1 if s.x < 0.2 else max(1, int(s.x * len(complete) / 2))) if s.fault == "pipe" else None

            def read_some():
                try:
                    while want is None or len(got) < want:
                        b = proc.stdout.read1(65536 if want is None else min(65536, want - len(got)))
                        if not b:
                            break
                        got.extend(b)
                finally:
                    proc.stdout.close()

            reader = threading.Thread(target=read_some, daemon=True)
            reader.start()
        hit = True
        if s.fault in ("sigint", "sigterm", "grow", "shrink"):
            # x < 0.1: during the interpreter's start-up; else a moment of the command's own run
            start, total = refs.startup(), refs.time(s.op, s.payload, s.jobs)
            delay = s.x / 0.1 * start if s.x < 0.1 else start + (s.x - 0.1) / 0.9 * max(0.0, total - start)
            time.sleep(max(0.0, delay - (time.monotonic() - t0)))
            hit = proc.poll() is None
            if hit:
                if s.fault == "sigint":
                    _signal_group(proc, signal.SIGINT)
                elif s.fault == "sigterm":
                    if s.group:
                        _signal_group(proc, signal.SIGTERM)
                    else:
                        proc.send_signal(signal.SIGTERM)
                else:
                    new = changed(original, s.fault)
                    if len(new) > len(original):
                        os.pwrite(mover, new[len(original):], len(original))
                    else:
                        os.ftruncate(mover, len(new))
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            rc = None
        if reader is not None:
            reader.join(timeout=10)
        err_reader.join(timeout=10)
        proc.stderr.close()
        if not hit and rc == 0:  # a run the fault missed: the run time to draw moments from is at most this
            refs.saw(s.op, s.payload, s.jobs, time.monotonic() - t0)
    if mover is not None:
        os.close(mover)
    if s.fault == "readonly":
        os.chmod(out_dir, 0o755)
    stderr = b"".join(errs).decode(errors="replace")
    res = Result(s, rc, stderr=stderr, hit=hit)
    alternatives = [complete]
    if s.fault in ("grow", "shrink") and s.op == "compress":
        alternatives.append(refs.changed_archive(s.payload, s.fault))
    res.problems = check(s, res, inp, out, stdout_file, alternatives, bytes(got))
    return res


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _signal_group(proc, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def check(s: Scenario, res: Result, inp: Path, out: Path, stdout_file: Path, complete: list, piped: bytes) -> list:
    """The problems (PROBLEMS) the run ``res`` of ``s`` left behind; ``complete``: the outputs that count as
    complete (the input's archive, and for grow/shrink the changed input's)."""
    rc, problems = res.rc, []
    if rc is None:
        return ["hang"]
    signalled = s.fault in ("sigint", "sigterm")
    # killed by the signal, or a KeyboardInterrupt while the interpreter imported modules (Python exits 1 when it
    # lands in site-packages' start-up files) -- before the command ran: no "bbans:" line at all
    startup = rc == 1 and res.stderr.rstrip().endswith("KeyboardInterrupt") and "bbans:" not in res.stderr
    res.outside = signalled and (rc in (-signal.SIGINT, -signal.SIGTERM) or startup)
    if "Traceback" in res.stderr and not res.outside:
        problems.append("traceback")
    parts = [p for p in inp.parent.parent.rglob("*") if p.name.endswith(".part")]
    if parts:
        problems.append("partial_left")
    to_stdout = s.dest != "file"
    if s.dest == "file":
        complete_out = out.exists() and out.read_bytes() in complete
        if out.exists() and not complete_out:
            problems.append("partial_left")
    elif s.dest == "stdout-file":
        complete_out = stdout_file.exists() and stdout_file.read_bytes() in complete
    else:
        complete_out = piped in complete
    if rc == 0 and not complete_out:
        problems.append("exit0_incomplete")
    if rc != 0 and "checksum verified" in res.stderr and not (res.outside and complete_out):
        problems.append("verified_on_failure")  # (a signal after a complete run, at interpreter exit, is not one)
    if not inp.exists():
        if not (rc == 0 and s.rm and not to_stdout and complete_out) and not (signalled and complete_out
                                                                            and not to_stdout):
            problems.append("input_removed")
    # exit statuses the fault explains
    if s.fault in ("pipe", "fsize", "readonly"):
        ok = rc not in (0,) and rc > 0
    elif signalled:
        ok = rc in (0, 130, 143, -signal.SIGINT, -signal.SIGTERM) or res.outside
    else:  # grow / shrink: either the change came after the last read (a good archive) or the run fails cleanly
        ok = rc in (0, 2) if s.op == "compress" else rc in (0, 1, 2, 3)
    if not ok:
        problems.append("bad_exit")
    return problems


# ------------------------------------------------------------------------------------------------ plans


def plan(rng: random.Random, n: int, with_models: bool = True, model_share: float = 0.1) -> list[Scenario]:
    """``n`` random scenarios, every fault class about equally often."""
    out = []
    for i in range(n):
        fault = FAULTS[i % len(FAULTS)]
        out.append(random_scenario(rng, fault, with_models and rng.random() < model_share))
    return out


def random_scenario(rng: random.Random, fault: str, model: bool = False) -> Scenario:
    if fault == "readonly" and not readonly_supported():
        fault = "fsize"
    op = "compress" if fault in ("grow", "shrink") else rng.choice(["compress", "decompress"])
    chunks = rng.random() < 0.5
    payload = ("model" if model else "raw") + ("-chunks" if chunks else "")
    jobs = 2 if chunks and rng.random() < 0.5 else 1
    if fault == "pipe":
        dest = "stdout-pipe"
    elif fault == "fsize":
        dest = rng.choice(["file", "stdout-file"])
    elif fault == "readonly":
        dest = "file"
    else:
        dest = rng.choice(["file", "file", "stdout-file", "stdout-pipe"])
    if model and fault not in ("sigint", "sigterm"):
        # model archives are a few KB (smaller than a pipe buffer), and a changed .npy no longer fits the model
        payload = "raw" + ("-chunks" if chunks else "")
    return Scenario(fault, op, payload, dest, jobs, rm=rng.random() < 0.7, x=rng.random(),
                    group=rng.random() < 0.5)


def run_plan(scenarios, tmp: Path, refs: References | None = None, log=None) -> tuple[list[Result], References]:
    tmp = Path(tmp)
    refs = refs or References(tmp / "refs", payloads())
    results = []
    for k, s in enumerate(scenarios):
        work = tmp / f"case-{k}"
        res = run_scenario(s, refs, work)
        results.append(res)
        if log is not None:
            log(k, res)
        shutil.rmtree(work, ignore_errors=True)
    return results, refs


def tally(results) -> dict:
    """Counts per fault class: runs, faults that hit, signals outside the command, exit statuses, each problem."""
    table: dict = {}
    for r in results:
        t = table.setdefault(r.scenario.fault, {"runs": 0, "hit": 0, "outside": 0, "exits": Counter(),
                                                **{p: 0 for p in PROBLEMS}})
        t["runs"] += 1
        t["hit"] += int(r.hit)
        t["outside"] += int(r.outside)
        t["exits"][r.rc] += 1
        for p in set(r.problems):
            t[p] += 1
    return table
