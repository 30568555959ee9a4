"""Files to compress -> sources of uint8 items plus container info: one probe per input format.

Each probe reads a file's head (and size) and either returns how to read the file as items or says why it is not
of its kind. Plain ``.npy`` and IDX files are read one chunk at a time (``CheckedFileSource``: positioned reads, so
memory does not grow with the input, and a file that shrinks while being read is an error, not a crash: a memory
map of a truncated file kills the process with SIGBUS); PNG images and gzip IDX files are decoded into memory; any
other file is its own bytes, items of shape (size,), read the same way. ``-`` is standard input, spooled to a
temporary file first (deleted on exit). The container info each probe packs (formats.py) lets decompress rebuild
the file. ``Input.check_unchanged`` tells whether the file changed since it was opened (size, modification time,
inode), so an archive of a file that changed while being read is never kept.
"""
from __future__ import annotations

import atexit
import io
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bbans.container.archive import FORMAT_VERSION, MAGIC as ARCHIVE_MAGIC
from bbans.container.pipeline import FileBytes
from bbans.container.sources import ArraySource, FileSource
from bbans.errors import InputError
from bbans.idx import GZIP_MAGIC, is_idx, maybe_gunzip, parse_idx

from . import formats

STDIN = "-"
HEAD_BYTES = 1 << 16
NPY_MAGIC = b"\x93NUMPY"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class InputChanged(InputError):
    """The input file changed (size, modification time or identity) while it was being read."""


@dataclass(frozen=True)
class CheckedFileSource(FileSource):
    """A ``FileSource`` read with positioned reads instead of a memory map: the same items, the same bounded
    memory, but a file that became shorter raises ``InputChanged`` (a truncated memory map raises SIGBUS)."""

    def read(self, i: int, j: int) -> np.ndarray:
        n = max(0, j - i)
        out = np.empty((n, *self.shape[1:]), np.uint8)
        if n == 0:
            return out
        view = memoryview(out.reshape(-1)).cast("B")
        pos, got = self.offset + i * self.item_bytes, 0
        with open(self.path, "rb", buffering=0) as f:
            while got < view.nbytes:
                k = os.preadv(f.fileno(), [view[got:]], pos + got) if hasattr(os, "preadv") else \
                    _pread_into(f, view[got:], pos + got)
                if k <= 0:
                    raise InputChanged(f"{self.path}: the file became shorter while it was being read "
                                       f"({pos + got:,} bytes instead of {self.offset + self.shape[0] * self.item_bytes:,}); "
                                       "nothing was written")
                got += k
        return out


def _pread_into(f, view, pos: int) -> int:
    f.seek(pos)
    return f.readinto(view) or 0


def file_state(path: Path) -> tuple:
    """What tells that a file changed: (device, inode, size, modification time in ns)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class Input:
    """A file to compress. ``source`` gives its items (N, *item_shape) chunk by chunk."""

    path: Path            # the file read (a spooled copy for stdin)
    name: str             # what the user called it ('-' shows as 'stdin')
    kind: str             # 'npy' | 'idx' | 'png' | 'raw'
    info: bytes           # container info for the archive's extra field (formats.py)
    description: str
    source: object        # ArraySource or FileSource
    file_bytes: int
    notes: list = field(default_factory=list)
    from_stdin: bool = False
    state: tuple = ()     # file_state(path) before anything was read

    def check_unchanged(self, after: bool = False) -> None:
        """InputChanged unless the file is still as it was when opened (what was coded is what is on disk);
        ``after``: checked again after the archive was kept, before deleting the input (--rm)."""
        try:
            now = file_state(self.path)
        except OSError:
            now = None
        if now != self.state:
            what = "was removed or replaced" if now is None or now[:2] != self.state[:2] else \
                f"changed size ({self.state[2]:,} -> {now[2]:,} bytes)" if now[2] != self.state[2] else "was modified"
            if after:
                raise InputChanged(f"{self.name}: the file {what} after it was compressed, so it was not deleted "
                                   "(--rm); the archive holds its earlier content")
            raise InputChanged(f"{self.name}: the file {what} while it was being compressed; the archive was not "
                               "kept (compress it again once nothing writes to it)")

    @property
    def shape(self) -> tuple:
        return tuple(self.source.shape)

    @property
    def n_items(self) -> int:
        return int(self.shape[0])

    @property
    def raw_source(self) -> FileSource:
        """The file's own bytes as items of shape (size,)."""
        return CheckedFileSource(str(self.path), 0, (self.file_bytes,))

    def file_bytes_fallback(self) -> FileBytes | None:
        """The file's own bytes for the pipeline to code instead when they code smaller than the decoded data
        (e.g. a PNG); None for a file coded as its bytes already."""
        return None if self.kind == "raw" else FileBytes(self.raw_source, formats.raw_info(), self.kind)


class NotThisKind(Exception):
    """A probe's answer: the file is not of its kind, and why (the reason becomes the raw-bytes note)."""


# ------------------------------------------------------------------------------------------------ the probes


def probe_npy(path: Path, head: bytes, size: int, name: str):
    """A plain uint8/bool C-order .npy array, memory-mapped: (kind, info, description, source)."""
    try:
        preamble = formats.npy_preamble(head)
        d = formats.npy_header_fields(preamble)
    except Exception as exc:  # ValueError, SyntaxError, struct.error, ... all mean "not readable as .npy"
        raise NotThisKind(f"{name}: not a readable .npy file ({exc})") from None
    try:
        dtype = np.dtype(d["descr"]) if isinstance(d["descr"], str) else None
    except TypeError:
        dtype = None
    shape = d["shape"]
    if dtype not in (np.uint8, np.bool_):  # bool arrays are stored as 0/1 bytes: coded as uint8 0/1
        raise NotThisKind(f"{name}: the array's dtype is {d['descr']!r}; bbans codes uint8 (or bool) data only "
                          "(convert with arr.astype(np.uint8) if the values are 0..255)")
    if d["fortran_order"] and len(shape) > 1:
        raise NotThisKind(f"{name}: the array is stored in Fortran order; save it C-ordered "
                          "(np.save(path, np.ascontiguousarray(arr)))")
    if len(shape) not in (2, 3, 4):
        raise NotThisKind(f"{name}: the array has shape {shape}; bbans expects (N, H, W), (N, H, W, C) "
                          "or a single (H, W) image")
    count = int(np.prod(shape, dtype=np.int64))
    if size - len(preamble) != count:
        raise NotThisKind(f"{name}: the .npy header declares shape {shape} ({count} bytes of data) but the file "
                          f"holds {size - len(preamble)}; the file is truncated or has trailing bytes")
    items = (1, *shape) if len(shape) == 2 else tuple(shape)
    # kind 6 (one byte) when the preamble is the standard one numpy writes, else the preamble verbatim (kind 1)
    info = formats.npy_info_for(preamble, d["descr"], tuple(shape))
    return ("npy", info, f".npy {dtype} array, {' x '.join(map(str, shape))}",
            CheckedFileSource(str(path), len(preamble), items))


def _idx_items(header: bytes, name: str) -> tuple:
    shape = tuple(int(d) for d in np.frombuffer(header[4:], dtype=">u4"))
    if len(shape) not in (2, 3, 4):
        what = " (a label file?)" if len(shape) == 1 else ""
        raise NotThisKind(f"{name}: the IDX file has shape {shape}{what}; bbans codes images: "
                          "(N, H, W), (N, H, W, C) or one (H, W) image")
    return (1, *shape) if len(shape) == 2 else shape


def probe_idx(path: Path, head: bytes, size: int, name: str):
    """A plain uint8 IDX (MNIST) file, memory-mapped."""
    n = 4 + 4 * head[3]
    if len(head) < n:
        raise NotThisKind(f"{name}: the IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(head[4:n], dtype=">u4"))
    count = int(np.prod(shape, dtype=np.int64))
    if size - n != count:
        raise NotThisKind(f"{name}: the IDX header declares shape {shape} ({count} bytes) but the file holds "
                          f"{size - n} bytes")
    items = _idx_items(head[:n], name)
    return ("idx", formats.idx_info(head[:n], was_gzip=False), f"MNIST IDX, {' x '.join(map(str, shape))}",
            CheckedFileSource(str(path), n, items))


def probe_gzip_idx(path: Path, head: bytes, size: int, name: str):
    """A gzip-compressed uint8 IDX file, decompressed into memory (restored uncompressed)."""
    try:
        inner, _ = maybe_gunzip(path.read_bytes())
    except InputError as exc:
        raise NotThisKind(f"{name}: {exc}") from None
    if not is_idx(inner):
        raise NotThisKind(f"{name}: a gzip file whose content is not a uint8 IDX (MNIST) file; "
                          "gunzip it and compress the content if it is .npy or .png")
    try:
        header, data = parse_idx(inner)
    except InputError as exc:
        raise NotThisKind(f"{name}: {exc}") from None
    items = _idx_items(header, name)
    shown = " x ".join(str(int(s)) for s in data.shape)
    return ("idx", formats.idx_info(header, was_gzip=True), f"MNIST IDX (gzip-compressed), {shown}",
            ArraySource(np.ascontiguousarray(data).reshape(items)))


def probe_png(path: Path, head: bytes, size: int, name: str):
    """One 8-bit PNG image (modes 1, L, P, LA, RGB, RGBA), decoded into memory as (1, H, W[, C])."""
    from PIL import Image

    raw = path.read_bytes()
    try:
        im = Image.open(io.BytesIO(raw))
        im.load()
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBombError, ...)
        raise NotThisKind(f"{name}: not a readable PNG image ({type(exc).__name__}: {exc})") from None
    if getattr(im, "n_frames", 1) > 1:
        raise NotThisKind(f"{name}: an animated PNG ({im.n_frames} frames); bbans codes single images")
    try:
        arr, info = formats.png_pixels_and_info(im, raw)
    except ValueError as exc:
        raise NotThisKind(f"{name}: {exc}") from None
    problem = png_restore_problem(raw, arr, info)
    if problem is not None:  # never code a PNG as pixels unless decompress gives back its pixels and chunks
        raise NotThisKind(f"{name}: a PNG, but {problem}")
    h, w = arr.shape[:2]
    chans = f" x {arr.shape[2]} channels" if arr.ndim == 3 else ""
    return ("png", info, f"PNG image, mode {im.mode}, {h} x {w}{chans}",
            ArraySource(np.ascontiguousarray(arr.reshape(1, *arr.shape))))


def png_restore_problem(original: bytes, pixels: np.ndarray, info: bytes) -> str | None:
    """Why the PNG that decompress would write from ``pixels`` and ``info`` differs from ``original`` in its
    pixels (as decoded) or in its other chunks (type, data, order); None when both are the same."""
    from PIL import Image

    try:
        c = formats.parse_info(info)
        made = formats.render(pixels.reshape(1, *pixels.shape), c)
        back = Image.open(io.BytesIO(made))
        back.load()
        orig = Image.open(io.BytesIO(original))
        orig.load()
        if back.mode != orig.mode or not np.array_equal(np.asarray(back), np.asarray(orig)):
            return "its pixels would not come back identical"
        anew = formats.png_written_anew(c.mode, c.transparency)
        if formats.png_layout(formats.png_chunks(made), anew) != formats.png_layout(formats.png_chunks(original), anew):
            return "its other chunks (text, colour profile, ...) would not come back identical"
    except Exception as exc:  # noqa: BLE001 -- any failure means "cannot promise the same file"
        return f"it cannot be written back as it was ({type(exc).__name__}: {exc})"
    return None


def _probe_for(head: bytes):
    """The probe for a file's head, or the reason none applies."""
    if head.startswith(NPY_MAGIC):
        return probe_npy
    if head.startswith(PNG_MAGIC):
        return probe_png
    if head.startswith(GZIP_MAGIC):
        return probe_gzip_idx
    if is_idx(head):
        return probe_idx
    if not head:
        return "the file is empty"
    if len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in (0x09, 0x0B, 0x0C, 0x0D, 0x0E):
        return f"an IDX file of type 0x{head[2]:02X} (not uint8); bbans codes uint8 IDX files only"
    return "not a uint8 .npy array, MNIST IDX file (plain or .gz) or PNG image, the kinds bbans models"


PNG_NOTE = ("PNG: decompress restores identical pixels (mode, palette, transparency) and keeps every other chunk "
            "(text, colour profile, gamma, ...) verbatim; the pixel data is compressed anew, so the file bytes differ")
GZIP_NOTE = ("the input is gzip-compressed: decompress restores the uncompressed IDX file (a gzip wrapper cannot be "
             "rebuilt byte for byte; gzip it again if you need the .gz)")


def open_input(file, format_version: int = FORMAT_VERSION) -> Input:
    """Open the file to compress (``-``: standard input) with the probe its first bytes call for; a file no probe
    reads is its own bytes (kind 'raw', with a note saying why). Only a bbans archive is refused. With
    ``format_version`` 1 the container info is as bbans wrote it before archive layout 2 (no npy kind 6)."""
    from_stdin = str(file) == STDIN
    path = spool_stdin() if from_stdin else Path(file)
    name = "stdin" if from_stdin else str(file)
    size = readable_size(path)
    state = file_state(path)
    size = state[2]
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(ARCHIVE_MAGIC):
        raise InputError(f"{name}: looks like a bbans archive already; use 'bbans decompress'")
    probe, notes = _probe_for(head), []
    try:
        if isinstance(probe, str):
            raise NotThisKind(f"{name}: {probe}")
        kind, info, description, source = probe(path, head, size, name)
        if format_version == 1:
            info = formats.layout1_info(info, tuple(source.shape))
        notes = [PNG_NOTE] if kind == "png" else [GZIP_NOTE] if description.startswith("MNIST IDX (gzip") else []
    except NotThisKind as why:
        kind, info, description = "raw", formats.raw_info(), "raw bytes"
        source, notes = CheckedFileSource(str(path), 0, (size,)), [f"{str(why).rstrip('.')}: compressed as raw "
                                                                    "bytes (restored byte for byte)"]
    return Input(path, name, kind, info, description, source, size, notes, from_stdin, state)


# ------------------------------------------------------------------------------------------------ plumbing


def _remove_quietly(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


_SPOOLED: list = []


def remove_spooled() -> None:
    """Remove the spooled copies of standard input now (for an exit that skips atexit handlers)."""
    while _SPOOLED:
        _remove_quietly(_SPOOLED.pop())


def spool_stdin() -> Path:
    """Copy standard input into a temporary file (removed when the program exits) and return its path."""
    fd, tmp = tempfile.mkstemp(prefix="bbans-stdin.")
    _SPOOLED.append(tmp)
    atexit.register(_remove_quietly, tmp)
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    return Path(tmp)


def readable_size(path: Path) -> int:
    """The size of a readable regular file; InputError saying what is wrong otherwise."""
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

