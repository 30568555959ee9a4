"""Where the command line writes: a file that appears only when complete, or standard output.

``OutputFile`` writes to a temporary file beside the target and renames it into place on ``commit`` (never
replacing an existing file without ``force``); leaving it without ``commit`` (an error, Ctrl-C) removes the
temporary file, so no partial output ever appears under the output's name. Every write goes through
``bbans.container.sinks.StreamSink``, which checks that the stream took every byte.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bbans.container.sinks import StreamSink
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


class OutputFile:
    """A sink (``write(b)``) for ``path`` (None: standard output) that is complete only after ``commit``."""

    def __init__(self, path: Path | None, force: bool):
        self.path, self.force, self.tmp = path, force, None
        if path is None:
            refuse_terminal_stdout()
            self._file = sys.stdout.buffer
        else:
            check_output(path, force)
            self.tmp = temp_path_beside(path)
            self._file = open(self.tmp, "wb")
        self._sink = StreamSink(self._file)

    @property
    def bytes_written(self) -> int:
        return self._sink.bytes_written

    def write(self, b) -> None:
        self._sink.write(b)

    def commit(self) -> None:
        self._file.flush()
        if self.tmp is None:
            return
        os.fsync(self._file.fileno())
        self._file.close()
        move_into_place(self.tmp, self.path, self.force)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tmp is not None:
            if not self._file.closed:
                self._file.close()
            _unlink_quietly(self.tmp)
        return False


def refuse_terminal_stdout() -> None:
    if sys.stdout.isatty():
        raise OutputError("refusing to write archive data to a terminal; redirect it (bbans compress -c F > F.bba)")


def output_path(output: Path | None, default: Path) -> Path:
    """-o as given, ``default`` without it, or ``default``'s name inside -o when -o is a folder."""
    if output is None:
        return default
    return output / default.name if output.is_dir() else output
