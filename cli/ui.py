"""Small pieces of the command line: safe output files, a progress line, number formatting, tables."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import click

from bbans.errors import BBANSError


class OutputError(BBANSError):
    """The output file cannot be written (exists without --force, missing folder, ...)."""

    exit_code = 1


# ---------------------------------------------------------------------------------------------- output files


def check_output(path: Path, force: bool) -> None:
    """Fail early (before any slow work) when ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name with -o")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputError(f"{path} already exists; use -f/--force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{parent}: no such folder for the output")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{parent}: folder is not writable")


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def write_atomic(path: Path, payload: bytes, force: bool) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then move it into place.

    A reader never sees a half-written file, and an interrupt (Ctrl-C) or error leaves only what was there before.
    Without ``force`` an existing file is never replaced, even one created while we worked.
    """
    path = Path(path)
    check_output(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=_folder(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        move_into_place(Path(tmp), path, force)
    finally:
        _unlink_quietly(Path(tmp))


def temp_path_beside(path: Path) -> Path:
    """A fresh, unused temporary name in ``path``'s folder (for writers that want a path, not a file object)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".part", dir=_folder(Path(path)))
    os.close(fd)
    return Path(tmp)


def move_into_place(tmp: Path, path: Path, force: bool) -> None:
    """Rename the finished file ``tmp`` (same folder) to ``path``; without ``force`` never replace a file."""
    os.chmod(tmp, 0o666 & ~_umask())
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic "create, but never clobber"
    except FileExistsError:
        raise OutputError(f"{path} already exists; use -f/--force to overwrite it") from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise OutputError(f"{path} already exists; use -f/--force to overwrite it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _unlink_quietly(p: Path) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


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


def field(obj, *names, default=None):
    """First present attribute/key of ``obj`` among ``names`` (reports and headers may be objects or dicts)."""
    for n in names:
        if isinstance(obj, dict):
            if n in obj:
                return obj[n]
        elif hasattr(obj, n):
            return getattr(obj, n)
    return default
