"""Small pieces of the command line: a progress line, number formatting, tables."""
from __future__ import annotations

import os
import sys
import time


# ------------------------------------------------------------------------------------------------- progress


class Progress:
    """A ``progress(done, total)`` callback that tells a person how far a long step has come, on stderr.

    On a terminal: one updating line (bar, percentage, rate, time left), drawn once the step has run for ``delay``
    seconds, so short steps print nothing. Elsewhere (a log, a pipeline, a CI job): one plain line every
    ``interval`` seconds (default 10), so long jobs are never silent for minutes. ``enabled=False`` (``-q``) turns
    both off. ``BBANS_PROGRESS=0`` turns progress off, ``=1`` forces the updating line, ``=log`` the periodic lines;
    ``BBANS_PROGRESS_EVERY=S`` sets the interval of the periodic lines. ``lazy``: the step's clock starts at its
    first report (for a step created before the step it follows has run).

    The time left is rate-based and ignores the start-up before the first report (loading a model, reading the
    input): it divides the work left by the rate over the second half of the time since the first report, so the
    slow first batches of bits-back coding (1, 2, 4, ... items) stop counting as the step settles; it is shown
    from 5% of the work on (measured on the 10,000 MNIST test images: within 10% of the step's real remaining
    time at 10% and at 50%).
    """

    def __init__(self, label: str, enabled: bool | None = None, delay: float = 0.5, unit: str = "items",
                 interval: float | None = None, stream=None, lazy: bool = False):
        self.label, self.delay, self.unit = label, delay, unit
        self.stream = stream if stream is not None else sys.stderr
        env = os.environ.get("BBANS_PROGRESS", "")
        if enabled is False or env == "0":
            self.mode = "off"
        elif env == "1":
            self.mode = "line"
        elif env == "log":
            self.mode = "log"
        else:
            self.mode = "line" if _isatty(self.stream) else "log"
        if interval is None:
            try:
                interval = float(os.environ.get("BBANS_PROGRESS_EVERY", "10"))
            except ValueError:
                interval = 10.0
        self.interval = max(0.0, interval)
        self.enabled = self.mode != "off"
        self.lazy = lazy  # the step starts at the first report, not now (a step that follows another one)
        self.t0 = time.monotonic()
        self.last = 0.0 if self.mode == "line" else self.t0
        self.width = 0
        self.lines, self.finished = 0, False
        self.samples: list[tuple[float, int]] = []  # (time, done) from the first report on, thinned

    def eta(self, done: int, total: int, now: float | None = None) -> float | None:
        """Seconds left at the recent rate, or None while there is too little to go on."""
        now = time.monotonic() if now is None else now
        if not self.samples or done >= total:
            return None
        t_first, d_first = self.samples[0]
        span = now - t_first
        if span < 1.0 or done <= d_first or done < 0.05 * total:  # the first 5%: too early to say
            return None
        t_ref, d_ref = t_first, d_first
        for t, d in self.samples:  # the last sample at or before the middle of the span
            if t > t_first + span / 2:
                break
            t_ref, d_ref = t, d
        if now - t_ref <= 0 or done <= d_ref:
            t_ref, d_ref = t_first, d_first
        rate = (done - d_ref) / (now - t_ref)
        return (total - done) / rate if rate > 0 else None

    def _record(self, now: float, done: int) -> None:
        if not self.samples or now - self.samples[-1][0] >= 0.25:
            self.samples.append((now, done))
            if len(self.samples) > 4000:  # keep it bounded: drop every other sample
                self.samples = self.samples[:1] + self.samples[1::2]

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.lazy and not self.samples:
            self.t0 = self.last = now
        self._record(now, done)
        elapsed = now - self.t0
        if self.mode == "log":
            if done >= total:
                if self.lines and not self.finished:  # a log that showed the step also shows its end
                    self.finished = True
                    self._write(f"bbans: {self.label}: 100% ({done:,}/{total:,} {self.unit}) in "
                                f"{fmt_duration(elapsed)}\n")
                return
            if now - self.last < self.interval:
                return
            self.lines += 1
            self.last = now
            eta = self.eta(done, total, now)
            frac = done / total if total else 1.0
            left = f", about {fmt_duration(eta)} left" if eta is not None else ""
            self._write(f"bbans: {self.label}: {frac * 100:.0f}% ({done:,}/{total:,} {self.unit}), "
                        f"{fmt_duration(elapsed)} so far{left}\n")
            return
        if elapsed < self.delay or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        frac = done / total if total else 1.0
        eta = self.eta(done, total, now)
        left = f", {fmt_duration(eta)} left" if eta is not None else ""
        span = now - self.samples[0][0]
        rate = f", {(done - self.samples[0][1]) / span:,.0f}/s" if span > 0.5 else ""
        bar_w = 24
        fill = int(round(frac * bar_w))
        line = (f"{self.label} [{'#' * fill}{'-' * (bar_w - fill)}] {frac * 100:5.1f}% "
                f"{done:,}/{total:,} {self.unit}{rate}{left}")
        pad = max(0, self.width - len(line))
        self.width = len(line)
        self._write("\r" + line + " " * pad)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr gone (a closed pipe): progress is not worth failing for
            self.enabled = False

    def close(self) -> None:
        if self.width:
            self._write("\r" + " " * self.width + "\r")
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


def fmt_duration(s: float | None) -> str:
    """A time span as a person says it: '8 s', '3 min 05 s', '1 h 20 min'."""
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 item', '2 items', '10,000 items' (``words``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


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
