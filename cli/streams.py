"""Files in and out for ``bbans compress`` / ``bbans decompress``: any input file, stdin and stdout, memory-mapped
inputs of any size, chunked archives streamed into a temporary file that is renamed only when complete, item
ranges, and removing the input afterwards (gzip's ``--rm``).

Inputs: a plain (uncompressed) uint8/bool ``.npy`` or IDX file and any unrecognised file (raw bytes) are read
through a memory map one chunk at a time (``bbans.container.sources.FileSource``); gzip IDX and PNG files are read into
memory. ``-`` is standard input, spooled to a temporary file first (deleted on exit).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bbans.errors import ArchiveError, BBANSError, InputError
from bbans.idx import GZIP_MAGIC, is_idx

from . import formats
from .ui import OutputError, check_output, move_into_place, temp_path_beside

STDIN = "-"
_HEAD_BYTES = 1 << 16


@dataclass
class Input:
    """A file to compress. ``source`` gives its items (N, *item_shape) chunk by chunk."""

    path: Path            # the file read (a spooled copy for stdin)
    name: str             # what the user called it ('-' shows as 'stdin')
    kind: str             # 'npy' | 'idx' | 'png' | 'raw'
    shape: tuple
    info: bytes           # container info for the archive's extra field
    description: str
    source: object        # bbans.container.sources.ArraySource or FileSource
    file_bytes: int
    notes: list = field(default_factory=list)
    from_stdin: bool = False

    @property
    def n_items(self) -> int:
        return int(self.shape[0])

    @property
    def item_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1


def _remove_quietly(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def spool_stdin() -> Path:
    """Copy standard input into a temporary file (removed when the program exits) and return its path."""
    fd, tmp = tempfile.mkstemp(prefix="bbans-stdin.")
    atexit.register(_remove_quietly, tmp)
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    return Path(tmp)


def _readable(path: Path) -> int:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return path.stat().st_size


def _mapped_npy(path: Path, head: bytes, size: int, name: str):
    """(Input fields) of a plain uint8/bool C-order .npy file read through a memory map, or the reason it is not."""
    try:
        n = formats._npy_preamble_length(head)
        if n > len(head):
            raise ValueError("truncated npy header")
        preamble = head[:n]
        d = formats._npy_header_fields(preamble)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        return f"{name}: not a readable .npy file ({exc})"
    except Exception as exc:  # struct.error and friends
        return f"{name}: not a readable .npy file ({exc})"
    try:
        dtype = np.dtype(d["descr"]) if isinstance(d["descr"], str) else None
    except TypeError:
        dtype = None
    shape = d["shape"]
    if dtype not in (np.uint8, np.bool_):
        return f"{name}: the array's dtype is {d['descr']!r}, not uint8 or bool"
    if d["fortran_order"] and len(shape) > 1:
        return f"{name}: the array is stored in Fortran order"
    if len(shape) not in (2, 3, 4):
        return f"{name}: the array has shape {shape}, not (N, H, W), (N, H, W, C) or one (H, W) image"
    count = int(np.prod(shape, dtype=np.int64))
    if size - n != count:
        return (f"{name}: the .npy header declares shape {shape} ({count} bytes of data) but the file holds "
                f"{size - n}; the file is truncated or has trailing bytes")
    full = (1, *shape) if len(shape) == 2 else tuple(shape)
    info = formats._pack(formats.KIND_NPY, formats._u32_bytes(preamble))
    return "npy", full, info, f".npy {dtype} array, {' x '.join(map(str, shape))}", n, []


def _mapped_idx(path: Path, head: bytes, size: int, name: str):
    ndim = head[3]
    hl = 4 + 4 * ndim
    if len(head) < hl:
        return f"{name}: the IDX header is truncated"
    shape = tuple(int(d) for d in np.frombuffer(head[4:hl], dtype=">u4"))
    count = int(np.prod(shape, dtype=np.int64))
    if size - hl != count:
        return f"{name}: the IDX header declares shape {shape} ({count} bytes) but the file holds {size - hl} bytes"
    if ndim not in (2, 3, 4):
        what = " (a label file?)" if ndim == 1 else ""
        return f"{name}: the IDX file has shape {shape}{what}, not images (N, H, W), (N, H, W, C) or one (H, W)"
    full = (1, *shape) if ndim == 2 else shape
    info = formats._pack(formats.KIND_IDX, bytes([0]) + formats._u32_bytes(head[:hl]))
    return "idx", full, info, f"MNIST IDX, {' x '.join(map(str, shape))}", hl, []


def open_input(file) -> Input:
    """Open the file to compress (``-``: standard input). Never reads a plain .npy, IDX or unrecognised file whole."""
    from bbans.container.archive import MAGIC
    from bbans.container.sources import ArraySource, FileSource

    from_stdin = str(file) == STDIN
    path = spool_stdin() if from_stdin else Path(file)
    name = "stdin" if from_stdin else str(file)
    size = _readable(path)
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(MAGIC):
        raise InputError(f"{name}: looks like a bbans archive already; use 'bbans decompress'")
    if head.startswith(formats.PNG_MAGIC) or head.startswith(GZIP_MAGIC) or (
            size <= len(head) and not head.startswith(formats.NPY_MAGIC) and not is_idx(head)):
        loaded = formats.load_bytes(path.read_bytes(), name)  # PNG, gzip IDX, or their bytes when unreadable
        return Input(path, name, loaded.kind, tuple(loaded.data.shape), loaded.info, loaded.description,
                     ArraySource(loaded.data), size, list(loaded.notes), from_stdin)
    why = None
    if head.startswith(formats.NPY_MAGIC):
        got = _mapped_npy(path, head, size, name)
    elif is_idx(head):
        got = _mapped_idx(path, head, size, name)
    else:
        got = (f"{name}: the file is empty" if not size else
               f"{name}: not a uint8 .npy array, MNIST IDX file (plain or .gz) or PNG image, the kinds bbans models")
    if isinstance(got, str):
        why = got
        got = ("raw", (size,), formats.raw_info(), formats.raw_description(size), 0, [formats.raw_note(why)])
    kind, shape, info, desc, offset, notes = got
    return Input(path, name, kind, tuple(shape), info, desc, FileSource(str(path), offset, tuple(shape)), size,
                 notes, from_stdin)


# ------------------------------------------------------------------------------------------------ writing


class Sink:
    """Where output goes: a temporary file beside ``out`` renamed into place by ``commit``, or standard output.

    Use as a context manager; leaving it without ``commit`` (an error, Ctrl-C) removes the temporary file, so no
    partial output ever appears under the output's name.
    """

    def __init__(self, out: Path | None, force: bool):
        self.out, self.force, self.tmp = out, force, None
        if out is None:
            self.f = sys.stdout.buffer
        else:
            check_output(out, force)
            self.tmp = temp_path_beside(out)
            self.f = open(self.tmp, "wb")

    def write(self, b) -> None:
        self.f.write(b)

    def commit(self) -> None:
        if self.tmp is None:
            self.f.flush()
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        move_into_place(self.tmp, self.out, self.force)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tmp is not None:
            if not self.f.closed:
                self.f.close()
            _remove_quietly(str(self.tmp))
        return False


def refuse_terminal_stdout() -> None:
    if sys.stdout.isatty():
        raise OutputError("refusing to write archive data to a terminal; redirect it (bbans compress -c F > F.bba)")


def remove_input(inp_path: Path, from_stdin: bool) -> None:
    """--rm: delete the input after the output is complete (never standard input)."""
    if not from_stdin:
        os.unlink(inp_path)


def parse_range(text: str, n: int) -> tuple[int, int]:
    """'i:j' (either side may be empty; Python slice bounds, no negatives) -> (i, j) checked against n items."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        i = int(parts[0]) if parts[0].strip() else 0
        j = int(parts[1]) if parts[1].strip() else n
    except ValueError:
        raise InputError(f"--range {text!r}: give items as I:J (e.g. 0:100 or 5000:), 0-based, J excluded") from None
    if not 0 <= i < j <= n:
        raise InputError(f"--range {text}: the archive holds items 0:{n}; give 0 <= I < J <= {n}")
    return i, j


# ------------------------------------------------------------------------------------------------ decompress


@dataclass
class Decoded:
    out: str
    kind: str
    nbytes: int
    shape: tuple
    whole: bool
    chunks_read: int
    chunks: int
    gzip: bool = False  # idx: the original was gzip-compressed


def decompress_file(file, model, model_ref, force: bool, item_range: str | None, jobs: int, progress,
                    output_for) -> Decoded:
    """Decode the archive ``file`` (``-``: stdin), all items or ``item_range`` ('I:J').

    ``output_for(container)`` gives the output path for the archive's container info (None: stdout). Nothing
    appears under that path unless every checksum verified (stdout gets a multi-chunk archive chunk by chunk).
    """
    import bbans
    from bbans.container import chunked
    from bbans.container import pipeline as chunkjobs
    from bbans.container.archive import read_header

    path = spool_stdin() if str(file) == STDIN else Path(file)
    _readable(path)
    with open(path, "rb") as f:
        is_chunked = chunked.is_chunked(f.read(6))
        f.seek(0)
        if is_chunked:
            h = chunked.read_index(f)
            blob = None
        else:
            blob = f.read()
            h = read_header(blob)
        container = formats.parse_info(h.extra or b"")
        n = h.n_items
        i, j = parse_range(item_range, n) if item_range else (0, n)
        if n == 0:
            i = j = 0
        target = output_for(container)
        shape = (j - i, *h.shape[1:])
        prefix = formats.file_prefix(container, shape)
        if prefix is None and (i, j) != (0, n):
            raise InputError(f"--range: a {container.kind} archive holds one image; decode it whole")
        chunks_read = len(h.chunks_for(i, j)) if is_chunked else 1
        with Sink(target, force) as sink:
            if not is_chunked:
                data = bbans.decompress(blob, model, progress=progress)[i:j]
                payload = formats.render(np.asarray(data), container) if prefix is None else \
                    prefix + np.ascontiguousarray(data).tobytes()
                sink.write(payload)
                written = len(payload)
            else:
                sink.write(prefix)
                written = len(prefix)
                for part in chunkjobs.decompress_iter(f, h, i, j, model=model, model_ref=model_ref, jobs=jobs,
                                                      path=str(path), progress=progress):
                    b = np.ascontiguousarray(part).tobytes()
                    sink.write(b)
                    written += len(b)
            sink.commit()
    return Decoded(str(target) if target is not None else "stdout", container.kind, written, shape,
                   (i, j) == (0, n), chunks_read, h.n_chunks if is_chunked else 1, container.gzip)


def raw_file_archive(inp: Input, blob: bytes, report):
    """The archive of the input file's own bytes when that is smaller than ``blob`` (the archive of its decoded
    data; e.g. a PNG whose pixels code larger than the PNG itself): (blob, report) either way."""
    import bbans

    raw = np.frombuffer(inp.path.read_bytes(), np.uint8)
    blob2, report2 = bbans.compress_with_report(raw, None, extra=formats.raw_info(), method="auto")
    if len(blob2) >= len(blob):
        return blob, report
    report2.reason = (f"the {inp.kind} file's own {inp.file_bytes:,} bytes code smaller ({len(blob2):,} bytes) than "
                      f"its decoded data ({report.method}, {len(blob):,} bytes); {report2.method} of the file's bytes, "
                      "restored byte for byte")
    inp.notes[:] = ["the archive holds the file's bytes, so decompress restores this exact file"]
    return blob2, report2


def is_chunked_file(path) -> bool:
    """True when ``path`` is a readable file that starts like a multi-chunk archive."""
    from bbans.container.chunked import is_chunked

    try:
        with open(path, "rb") as f:
            return is_chunked(f.read(6))
    except OSError:
        return False
