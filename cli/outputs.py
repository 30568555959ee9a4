"""Where the command line writes: a file that appears only when complete, or standard output.

``OutputFile`` writes to a temporary file beside the target and renames it into place on ``commit`` (never
replacing an existing file without ``force``); leaving it without ``commit`` (an error, Ctrl-C) removes the
temporary file, so no partial output ever appears under the output's name. Every write goes through
``bbans.container.sinks.StreamSink``, which checks that the stream took every byte (a short write, EPIPE, ENOSPC
or EFBIG raises OSError, so the command fails instead of reporting success).

Creating, renaming and removing the temporary file happen with SIGINT and SIGTERM held back
(``signals_deferred``): an interrupt that lands there is acted on right after, so it can never leave a stray
``.part`` file or a half-done rename.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from bbans.container.sinks import StreamSink
from bbans.errors import BBANSError


class OutputError(BBANSError):
    """The output file cannot be written (exists without --force, missing folder, ...)."""

    exit_code = 1


# ---------------------------------------------------------------------------------------------- signals

_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back inside the block (main thread only); a signal that arrived meanwhile is
    delivered, and its handler runs, when the block ends."""
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ---------------------------------------------------------------------------------------------- output files


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (through links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(out: Path | None, inp: Path | None, what: str = "input") -> None:
    """Refuse to write the output over the file being read (even with --force)."""
    if out is not None and inp is not None and (same_file(out, inp) or Path(os.path.abspath(out)) ==
                                                Path(os.path.abspath(inp))):
        raise OutputError(f"{out}: the output is the {what} file itself; give another name with -o")


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


def temp_path_beside(path: Path) -> Path:
    """A fresh, unused temporary name in ``path``'s folder (for writers that want a path, not a file object)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".part", dir=_folder(Path(path)))
    os.close(fd)
    return Path(tmp)


def sync_folder(path: Path) -> None:
    """Make a rename in ``path``'s folder durable (before an input is deleted); best effort."""
    try:
        fd = os.open(_folder(Path(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


class OutputFile:
    """A sink (``write(b)``) for ``path`` (None: standard output) that is complete only after ``commit``."""

    def __init__(self, path: Path | None, force: bool):
        self.path, self.force, self.tmp, self.committed = path, force, None, False
        if path is None:
            refuse_terminal_stdout()
            self._file = stdout_binary()
        else:
            check_output(path, force)
            with signals_deferred():
                try:
                    self.tmp = temp_path_beside(path)
                except OSError as exc:  # e.g. a read-only folder (root passes the access check of check_output)
                    raise OutputError(f"{_folder(Path(path))}: cannot create the output there "
                                      f"({exc.strerror or exc})") from None
                try:
                    self._file = open(self.tmp, "wb")
                except BaseException:
                    _unlink_quietly(self.tmp)
                    raise
        self._sink = StreamSink(self._file)

    @property
    def name(self) -> str:
        return "standard output" if self.path is None else str(self.path)

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is None and not isinstance(exc, BrokenPipeError):
            exc.filename = self.name
        return exc

    @property
    def bytes_written(self) -> int:
        return self._sink.bytes_written

    def write(self, b) -> None:
        try:
            self._sink.write(b)
        except OSError as exc:
            raise self._named(exc)

    def commit(self) -> None:
        """Make the output complete: flush (and for a file: fsync, close, rename into place). Raises OSError if
        any byte could not be written; afterwards the output is whole."""
        try:
            self._sink.flush()
            if self.tmp is not None:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._named(exc)
        if self.tmp is None:
            self.committed = True
            return
        with signals_deferred():
            self._file.close()
            move_into_place(self.tmp, self.path, self.force)
            self.committed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tmp is not None:
            with signals_deferred():
                try:
                    if not self._file.closed:
                        self._file.close()
                except OSError:  # the close's flush fails the same way the write did: already reported
                    pass
                _unlink_quietly(self.tmp)
        return False


def stdout_binary():
    """Standard output as a binary stream (what click.get_binary_stream gave, without the deprecated call)."""
    return getattr(sys.stdout, "buffer", sys.stdout)


def refuse_terminal_stdout() -> None:
    if sys.stdout.isatty():
        raise OutputError("refusing to write archive data to a terminal; redirect it (bbans compress -c F > F.bba)")


def output_path(output: Path | None, default: Path) -> Path:
    """-o as given, ``default`` without it, or ``default``'s name inside -o when -o is a folder."""
    if output is None:
        return default
    return output / default.name if output.is_dir() else output
