"""Small pieces of the command line: a progress line, number formatting, tables."""
from __future__ import annotations

import os
import time

import click



# ------------------------------------------------------------------------------------------------- progress


class Progress:
    """A ``progress(done, total)`` callback drawing one updating line on stderr.

    Drawn only when stderr is a terminal (so logs and tests stay clean) and only once the work has run for
    ``delay`` seconds (short jobs print nothing). ``BBANS_PROGRESS=1`` forces it on, ``=0`` off.
    """

    def __init__(self, label: str, enabled: bool | None = None, delay: float = 0.5, unit: str = "items"):
        self.label, self.delay, self.unit = label, delay, unit
        self.stream = click.get_text_stream("stderr")
        env = os.environ.get("BBANS_PROGRESS")
        if enabled is None:
            enabled = env == "1" if env in ("0", "1") else _isatty(self.stream)
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.last = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = now - self.t0
        if elapsed < self.delay or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        frac = done / total if total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", {(total - done) / rate:.0f} s left" if 0 < rate and done < total else ""
        bar_w = 24
        fill = int(round(frac * bar_w))
        line = (f"{self.label} [{'#' * fill}{'-' * (bar_w - fill)}] {frac * 100:5.1f}% "
                f"{done:,}/{total:,} {self.unit}, {rate:,.0f}/s{eta}")
        pad = max(0, self.width - len(line))
        self.width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------- formatting


def short_sha(sha: str | None, n: int = 12) -> str:
    return (sha or "?")[:n]


def fmt_bytes(n: int) -> str:
    """'48,016 bytes', or '7,840,016 bytes = 7.84 MB' from a megabyte on."""
    for unit, k in (("GB", 1e9), ("MB", 1e6)):
        if n >= k:
            return f"{n:,} bytes = {n / k:.2f} {unit}"
    return f"{n:,} bytes"


def fmt_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.2f} s"
    return f"{s / 60:.1f} min"


def fmt_shape(shape) -> str:
    return " x ".join(str(int(s)) for s in shape) if len(shape) else "scalar"


def fmt_gap(rate: float, reference: float) -> str:
    if reference <= 0:
        return "n/a"
    return f"{(rate / reference - 1) * 100:+.2f}%"


def table(rows: list[list[str]], header: list[str]) -> str:
    cols = [header, *rows]
    widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in cols]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def kv(pairs: list[tuple[str, str]]) -> str:
    w = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k + ':':<{w + 1}} {v}" for k, v in pairs)
