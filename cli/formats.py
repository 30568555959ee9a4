"""Input files <-> (uint8 array, container info) for the command line.

The core compresses arrays; the CLI compresses *files*. This module turns a file into the array the core codes plus
a small *container info* byte string (stored in the archive's ``extra`` field) from which ``render`` rebuilds the
file after decoding:

=========  ==========================================  ======================================================
kind       array                                       restored file
=========  ==========================================  ======================================================
npy        uint8 or bool (as 0/1), C order, (N,H,W)     byte-identical (the npy header is kept verbatim)
           or (N,H,W,C); a 2-D (H,W) array is coded
           as (1,H,W)
idx        uint8 IDX (MNIST), 3 or 4 dims, or 2 dims   byte-identical IDX; a gzip-compressed input is restored
           (one image)                                 *uncompressed* (gzip bytes depend on the compressor)
png        one image: (1,H,W) for modes 1/L/P,         a PNG with identical pixels (mode, palette and
           (1,H,W,C) for LA/RGB/RGBA                   transparency kept), not identical bytes
raw        any other file (or one of the above that    byte-identical: the file's bytes, coded as a 1-D array
           cannot be read as such): its bytes, (size,)  of single-byte items (no model fits: classical codecs)
(none)     archives made through the Python API        a .npy file of the decoded array
=========  ==========================================  ======================================================

Container info layout (little-endian, no pickle)::

    u8 version (=1) | u8 kind | kind fields

    npy:  u32 n | n bytes: the original npy preamble (magic, version, header dict, padding)
    idx:  u8 flags (bit 0: the input was gzip-compressed) | u32 n | n bytes: the original IDX header
    png:  str mode | u8 has_palette [| str palette_mode | u32 n | n palette bytes]
          | u8 transparency kind (0 none, 1 integer, 2 bytes, 3 RGB triple) [| payload]
    raw:  nothing (the data are the file's bytes)
    str = u8 length + ASCII

``parse_info`` checks every length before use and raises ``ArchiveError`` on anything malformed, so a damaged or
hostile archive produces a clear message instead of a traceback or a wrong file.
"""
from __future__ import annotations

import ast
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bbans.container.archive import MAGIC as ARCHIVE_MAGIC
from bbans.errors import ArchiveError, InputError
from bbans.idx import GZIP_MAGIC, idx_header, is_idx, maybe_gunzip, parse_idx

INFO_VERSION = 1
KIND_NPY, KIND_IDX, KIND_PNG, KIND_RAW = 1, 2, 3, 4
KIND_NAMES = {KIND_NPY: "npy", KIND_IDX: "idx", KIND_PNG: "png", KIND_RAW: "raw"}

NPY_MAGIC = b"\x93NUMPY"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: PNG modes we accept, with the number of channels they store (None: 2-D array).
PNG_MODES = {"1": None, "L": None, "P": None, "LA": 2, "RGB": 3, "RGBA": 4}
_MAX_NPY_HEADER = 1 << 20  # numpy itself refuses headers over ~10 kB; anything near this is garbage


@dataclass
class Loaded:
    """A file read for compression."""

    data: np.ndarray          # uint8, (N, H, W) or (N, H, W, C), C-contiguous
    info: bytes               # container info for the archive's extra field
    kind: str                 # 'npy' | 'idx' | 'png' | 'raw'
    description: str          # one line for the user, e.g. "IDX (gzip-compressed), 10000 x 28 x 28"
    notes: list = field(default_factory=list)  # things the user should know (e.g. gzip is not restored)


@dataclass
class Container:
    """Parsed container info."""

    kind: str                          # 'npy' | 'idx' | 'png' | 'raw' | 'none'
    header: bytes = b""                # npy preamble / IDX header
    gzip: bool = False                 # idx: the original file was gzip-compressed
    mode: str = ""                     # png
    palette_mode: str = ""             # png mode P
    palette: bytes = b""
    transparency: object = None        # png: None, int, bytes or (r, g, b)

    def describe(self) -> str:
        if self.kind == "npy":
            d = _npy_header_fields(self.header)
            return f"npy (numpy format {self.header[6]}.{self.header[7]}, header {d})"
        if self.kind == "idx":
            gz = ", input was gzip-compressed: restored uncompressed" if self.gzip else ""
            return f"idx (MNIST IDX, {self.header[3]} dims{gz})"
        if self.kind == "png":
            extra = f", {self.palette_mode} palette of {len(self.palette) // len(self.palette_mode)} colours" \
                if self.mode == "P" else ""
            tr = ", with transparency" if self.transparency is not None else ""
            return f"png (mode {self.mode}{extra}{tr}; pixels restored exactly, not the file bytes)"
        if self.kind == "raw":
            return "raw (the file's bytes, restored exactly)"
        return "none (archive made through the Python API; decompress writes a .npy file)"


# ----------------------------------------------------------------------------------------------- reading inputs


def load(path: Path) -> Loaded:
    """Read ``path`` into an array and container info; ``InputError`` for anything unreadable or unsupported."""
    raw = read_input_bytes(path)
    return load_bytes(raw, name=str(path))


def read_input_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    try:
        return path.read_bytes()
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_bytes(raw: bytes, name: str = "input") -> Loaded:
    """The array and container info of a file's bytes: npy, IDX (plain or gzip) or PNG when it reads as one,
    else the bytes themselves (kind 'raw', with a note saying why). Only a bbans archive is refused."""
    if raw.startswith(ARCHIVE_MAGIC):
        raise InputError(f"{name}: looks like a bbans archive already; use 'bbans decompress'")
    try:
        return _load_structured(raw, name)
    except InputError as exc:
        return load_raw(raw, name, str(exc))


def raw_description(size: int) -> str:
    return f"raw bytes, {size:,} bytes"


def load_raw(raw: bytes, name: str, why: str) -> Loaded:
    """A file as raw bytes: a uint8 array (size,), restored byte for byte; ``why`` says why it is not structured."""
    data = np.frombuffer(raw, np.uint8).copy()
    return Loaded(data, raw_info(), "raw", raw_description(len(raw)), [raw_note(why)])


def raw_info() -> bytes:
    return _pack(KIND_RAW, b"")


def raw_note(why: str) -> str:
    return f"{why.rstrip('.')}: compressed as raw bytes (restored byte for byte)"


def _load_structured(raw: bytes, name: str) -> Loaded:
    if raw.startswith(NPY_MAGIC):
        return _load_npy(raw, name)
    if raw.startswith(PNG_MAGIC):
        return _load_png(raw, name)
    if raw.startswith(GZIP_MAGIC):
        inner, _ = maybe_gunzip(raw)
        if not is_idx(inner):
            raise InputError(f"{name}: a gzip file whose content is not a uint8 IDX (MNIST) file; "
                             "gunzip it and compress the content if it is .npy or .png")
        return _load_idx(inner, name, was_gzip=True)
    if is_idx(raw):
        return _load_idx(raw, name, was_gzip=False)
    if raw.startswith(ARCHIVE_MAGIC):
        raise InputError(f"{name}: looks like a bbans archive already; use 'bbans decompress'")
    if not raw:
        raise InputError(f"{name}: the file is empty")
    if len(raw) >= 4 and raw[0] == 0 and raw[1] == 0 and raw[2] in (0x09, 0x0B, 0x0C, 0x0D, 0x0E):
        raise InputError(f"{name}: an IDX file of type 0x{raw[2]:02X} (not uint8); bbans codes uint8 IDX files only")
    raise InputError(f"{name}: not a uint8 .npy array, MNIST IDX file (plain or .gz) or PNG image, the kinds "
                     "bbans models")


def _npy_header_fields(preamble: bytes) -> dict:
    """Parse an npy preamble (magic..padding) into its dict; ``ValueError`` when malformed."""
    f = io.BytesIO(preamble)
    major, minor = np.lib.format.read_magic(f)
    if (major, minor) == (1, 0):
        n = struct.unpack("<H", preamble[8:10])[0]
        start = 10
    elif (major, minor) in ((2, 0), (3, 0)):
        n = struct.unpack("<I", preamble[8:12])[0]
        start = 12
    else:
        raise ValueError(f"unsupported npy format version {major}.{minor}")
    if start + n != len(preamble):
        raise ValueError("npy header length does not match")
    encoding = "utf8" if major == 3 else "latin1"
    text = preamble[start:].decode(encoding)
    d = ast.literal_eval(text)  # literals only: never executes code
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError("npy header is not a {descr, fortran_order, shape} dict")
    if not isinstance(d["shape"], tuple) or not all(isinstance(s, int) and s >= 0 for s in d["shape"]):
        raise ValueError("npy header has a bad shape")
    return d


def _npy_preamble_length(raw: bytes) -> int:
    if len(raw) < 10:
        raise ValueError("truncated npy header")
    major = raw[6]
    if major == 1:
        return 10 + struct.unpack("<H", raw[8:10])[0]
    if major in (2, 3):
        if len(raw) < 12:
            raise ValueError("truncated npy header")
        return 12 + struct.unpack("<I", raw[8:12])[0]
    raise ValueError(f"unsupported npy format version {major}.{raw[7]}")


def _load_npy(raw: bytes, name: str) -> Loaded:
    try:
        n = _npy_preamble_length(raw)
        if n > len(raw) or n > _MAX_NPY_HEADER:
            raise ValueError("truncated npy header")
        preamble = raw[:n]
        d = _npy_header_fields(preamble)
    except (ValueError, SyntaxError, UnicodeDecodeError, struct.error, MemoryError, RecursionError) as exc:
        raise InputError(f"{name}: not a readable .npy file ({exc})") from None
    try:
        dtype = np.dtype(d["descr"]) if isinstance(d["descr"], str) else None
    except TypeError:
        dtype = None
    if dtype not in (np.uint8, np.bool_):  # bool arrays are stored as 0/1 bytes: coded as uint8 0/1
        raise InputError(f"{name}: the array's dtype is {d['descr']!r}; bbans codes uint8 (or bool) data only "
                         "(convert with arr.astype(np.uint8) if the values are 0..255)")
    shape = d["shape"]
    if d["fortran_order"] and len(shape) > 1:
        raise InputError(f"{name}: the array is stored in Fortran order; save it C-ordered "
                         "(np.save(path, np.ascontiguousarray(arr)))")
    if len(shape) not in (2, 3, 4):
        raise InputError(f"{name}: the array has shape {shape}; bbans expects (N, H, W), (N, H, W, C) "
                         "or a single (H, W) image")
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - n != count:
        raise InputError(f"{name}: the .npy header declares shape {shape} ({count} bytes of data) but the file "
                         f"holds {len(raw) - n}; the file is truncated or has trailing bytes")
    data = np.frombuffer(raw, dtype=np.uint8, offset=n)
    if dtype == np.bool_ and data.size and data.max() > 1:
        raise InputError(f"{name}: a bool array holding bytes other than 0 and 1; the file is damaged")
    data = data.reshape((1, *shape) if len(shape) == 2 else shape)
    info = _pack(KIND_NPY, _u32_bytes(preamble))
    shown = " x ".join(map(str, shape))
    return Loaded(data.copy(), info, "npy", f".npy {dtype} array, {shown}")  # copy: writable, owns its memory


def _load_idx(raw: bytes, name: str, was_gzip: bool) -> Loaded:
    try:
        header, data = parse_idx(raw)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    if data.ndim not in (2, 3, 4):
        what = " (a label file?)" if data.ndim == 1 else ""
        raise InputError(f"{name}: the IDX file has shape {data.shape}{what}; bbans codes images: "
                         "(N, H, W), (N, H, W, C) or one (H, W) image")
    if data.ndim == 2:
        data = data.reshape(1, *data.shape)
    info = _pack(KIND_IDX, bytes([1 if was_gzip else 0]) + _u32_bytes(header))
    shown = " x ".join(str(int(s)) for s in np.frombuffer(header[4:], dtype=">u4"))
    notes = []
    if was_gzip:
        notes.append("the input is gzip-compressed: decompress restores the uncompressed IDX file (a gzip "
                     "wrapper cannot be rebuilt byte for byte; gzip it again if you need the .gz)")
    desc = f"MNIST IDX{' (gzip-compressed)' if was_gzip else ''}, {shown}"
    return Loaded(data.copy(), info, "idx", desc, notes)


def _load_png(raw: bytes, name: str) -> Loaded:
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(raw))
        im.load()
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBombError, ...)
        raise InputError(f"{name}: not a readable PNG image ({type(exc).__name__}: {exc})") from None
    if getattr(im, "n_frames", 1) > 1:
        raise InputError(f"{name}: an animated PNG ({im.n_frames} frames); bbans codes single images")
    mode = im.mode
    if mode not in PNG_MODES:
        raise InputError(f"{name}: PNG mode {mode!r} is not supported (8-bit modes only: "
                         f"{', '.join(PNG_MODES)}); 16-bit images cannot be coded losslessly as uint8")
    palette_mode, palette, transparency = "", b"", im.info.get("transparency")
    if mode == "1":
        arr = np.array(im, dtype=np.uint8)  # bool -> 0/1
    else:
        arr = np.array(im)
    if mode == "P":
        palette_mode = im.palette.mode if im.palette is not None else "RGB"
        if palette_mode not in ("RGB", "RGBA"):
            raise InputError(f"{name}: PNG palette mode {palette_mode!r} is not supported")
        palette = bytes(im.getpalette(palette_mode) or [])
    if arr.dtype != np.uint8:
        raise InputError(f"{name}: PNG pixels decode to {arr.dtype}, not uint8")
    if transparency is not None and not isinstance(transparency, (int, bytes, tuple)):
        transparency = None
    if isinstance(transparency, tuple) and (len(transparency) != 3
                                            or not all(isinstance(t, int) for t in transparency)):
        raise InputError(f"{name}: unsupported PNG transparency entry {transparency!r}")
    info = _pack(KIND_PNG, _png_fields(mode, palette_mode, palette, transparency))
    h, w = arr.shape[:2]
    chans = f" x {arr.shape[2]} channels" if arr.ndim == 3 else ""
    data = arr.reshape(1, *arr.shape)
    return Loaded(np.ascontiguousarray(data), info, "png", f"PNG image, mode {mode}, {h} x {w}{chans}",
                  ["PNG: decompress restores identical pixels (mode, palette, transparency), not identical "
                   "file bytes; other chunks (text, colour profile, gamma) are not kept"])


# ------------------------------------------------------------------------------------------- container info


def _u32_bytes(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def _str_bytes(s: str) -> bytes:
    e = s.encode("ascii")
    return bytes([len(e)]) + e


def _pack(kind: int, body: bytes) -> bytes:
    return bytes([INFO_VERSION, kind]) + body


def _png_fields(mode, palette_mode, palette, transparency) -> bytes:
    out = _str_bytes(mode)
    if mode == "P":
        out += b"\x01" + _str_bytes(palette_mode) + _u32_bytes(palette)
    else:
        out += b"\x00"
    if transparency is None:
        out += b"\x00"
    elif isinstance(transparency, int):
        out += b"\x01" + struct.pack("<I", transparency)
    elif isinstance(transparency, bytes):
        out += b"\x02" + _u32_bytes(transparency)
    else:
        out += b"\x03" + struct.pack("<3I", *transparency)
    return out


class _Reader:
    """Bounds-checked reads from container info; every failure is an ArchiveError."""

    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.b):
            raise ArchiveError("the archive's container info is truncated or corrupt")
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def blob(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        try:
            return self.take(self.u8()).decode("ascii")
        except UnicodeDecodeError:
            raise ArchiveError("the archive's container info is corrupt (bad text field)") from None

    def done(self) -> None:
        if self.i != len(self.b):
            raise ArchiveError("the archive's container info has trailing bytes; it is corrupt")


def parse_info(info: bytes) -> Container:
    """Parse container info (the archive's extra bytes); empty means 'no container'."""
    if not info:
        return Container("none")
    r = _Reader(bytes(info))
    version = r.u8()
    if version != INFO_VERSION:
        raise ArchiveError(f"the archive's container info has version {version}; this bbans reads version "
                           f"{INFO_VERSION} (upgrade bbans to read newer archives)")
    kind = r.u8()
    if kind == KIND_NPY:
        header = r.blob()
        try:
            if _npy_preamble_length(header) != len(header):
                raise ValueError("length mismatch")
            _npy_header_fields(header)
        except (ValueError, SyntaxError, UnicodeDecodeError, struct.error, MemoryError, RecursionError):
            raise ArchiveError("the archive's stored .npy header is corrupt") from None
        c = Container("npy", header=header)
    elif kind == KIND_IDX:
        flags = r.u8()
        if flags & ~1:
            raise ArchiveError("the archive's container info is corrupt (unknown IDX flags)")
        header = r.blob()
        if not is_idx(header) or len(header) != 4 + 4 * header[3]:
            raise ArchiveError("the archive's stored IDX header is corrupt")
        c = Container("idx", header=header, gzip=bool(flags & 1))
    elif kind == KIND_RAW:
        c = Container("raw")
    elif kind == KIND_PNG:
        mode = r.text()
        if mode not in PNG_MODES:
            raise ArchiveError(f"the archive's container info names an unknown PNG mode {mode!r}")
        c = Container("png", mode=mode)
        has_palette = r.u8()
        if has_palette not in (0, 1) or bool(has_palette) != (mode == "P"):
            raise ArchiveError("the archive's container info is corrupt (PNG palette flag)")
        if has_palette:
            c.palette_mode = r.text()
            c.palette = r.blob()
            if c.palette_mode not in ("RGB", "RGBA") or len(c.palette) % len(c.palette_mode) \
                    or len(c.palette) > 256 * len(c.palette_mode):
                raise ArchiveError("the archive's stored PNG palette is corrupt")
        t = r.u8()
        if t == 0:
            c.transparency = None
        elif t == 1:
            c.transparency = r.u32()
        elif t == 2:
            c.transparency = r.blob()
        elif t == 3:
            c.transparency = struct.unpack("<3I", r.take(12))
        else:
            raise ArchiveError("the archive's container info is corrupt (PNG transparency)")
    else:
        raise ArchiveError(f"the archive's container info names an unknown file kind {kind}; "
                           "it is corrupt or from a newer bbans")
    r.done()
    return c


# --------------------------------------------------------------------------------------------- writing back


def render(data: np.ndarray, container: Container) -> bytes:
    """The restored file's bytes for decoded ``data``; ``ArchiveError`` when data and container disagree."""
    data = np.ascontiguousarray(data)
    if data.dtype != np.uint8:
        raise ArchiveError(f"decoded data has dtype {data.dtype}, expected uint8")
    if container.kind == "none":
        buf = io.BytesIO()
        np.save(buf, data, allow_pickle=False)
        return buf.getvalue()
    if container.kind == "raw":
        if data.ndim != 1:
            raise ArchiveError(f"decoded data has shape {data.shape}, not the 1-D bytes of a raw file; corrupt")
        return data.tobytes()
    if container.kind == "npy":
        shape = tuple(_npy_header_fields(container.header)["shape"])
        _check_shape(data, shape)
        return container.header + data.tobytes()
    if container.kind == "idx":
        shape = tuple(int(s) for s in np.frombuffer(container.header[4:], dtype=">u4"))
        _check_shape(data, shape)
        return container.header + data.tobytes()
    return _render_png(data, container)


def _check_shape(data: np.ndarray, shape: tuple) -> None:
    want = (1, *shape) if len(shape) == 2 else shape
    if tuple(data.shape) != tuple(want):
        raise ArchiveError(f"decoded data has shape {data.shape} but the stored file header says {shape}; "
                           "the archive is corrupt")


def _render_png(data: np.ndarray, c: Container) -> bytes:
    from PIL import Image

    chans = PNG_MODES[c.mode]
    if data.shape[0] != 1 or data.ndim != (3 if chans is None else 4) or (chans and data.shape[3] != chans):
        raise ArchiveError(f"decoded data has shape {data.shape}, which is not one PNG image of mode {c.mode}")
    img = data[0]
    h, w = img.shape[:2]
    if c.mode == "1":
        if img.size and img.max() > 1:
            raise ArchiveError("decoded data for a 1-bit PNG holds values above 1; the archive is corrupt")
        im = Image.frombytes("1", (w, h), np.packbits(img.astype(bool), axis=1).tobytes())
    else:
        im = Image.frombytes(c.mode, (w, h), img.tobytes())
    if c.mode == "P":
        im.putpalette(c.palette, rawmode=c.palette_mode)
    kwargs = {}
    if c.transparency is not None:
        kwargs["transparency"] = c.transparency
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, **kwargs)
    return buf.getvalue()


def default_output(archive_path: Path, container: Container) -> Path:
    """Where decompress writes by default: the archive name without .bba (and without .gz for gzip IDX)."""
    p = Path(archive_path)
    name = p.name[:-4] if p.name.lower().endswith(".bba") and len(p.name) > 4 else p.name + ".out"
    if container.kind == "idx" and container.gzip and name.lower().endswith(".gz") and len(name) > 3:
        name = name[:-3]
    if container.kind == "none" and not name.lower().endswith(".npy"):
        name += ".npy"
    return p.with_name(name)


def file_prefix(container: Container, shape: tuple) -> bytes | None:
    """The bytes that come before the data when writing decoded items of ``shape`` (N, *item) as ``container``'s
    kind of file, so the data can follow chunk by chunk; None for PNG (rendered whole by ``render``).

    For a sub-range of the archive's items, the npy/IDX header is rewritten for N items (same dtype, same layout);
    ``ArchiveError`` when the item shape disagrees with the stored header."""
    shape = tuple(int(d) for d in shape)
    if container.kind == "raw":
        if len(shape) != 1:
            raise ArchiveError(f"decoded data has shape {shape}, not the 1-D bytes of a raw file; corrupt")
        return b""
    if container.kind == "none":
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
        return buf.getvalue()
    if container.kind == "npy":
        d = _npy_header_fields(container.header)
        stored = tuple(d["shape"])
        full = (1, *stored) if len(stored) == 2 else stored
        if shape[1:] != full[1:]:
            raise ArchiveError(f"decoded items have shape {shape[1:]} but the stored .npy header says {stored}; "
                               "the archive is corrupt")
        if shape == full:
            return container.header
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": d["descr"], "fortran_order": False, "shape": shape})
        return buf.getvalue()
    if container.kind == "idx":
        stored = tuple(int(s) for s in np.frombuffer(container.header[4:], dtype=">u4"))
        full = (1, *stored) if len(stored) == 2 else stored
        if shape[1:] != full[1:]:
            raise ArchiveError(f"decoded items have shape {shape[1:]} but the stored IDX header says {stored}; "
                               "the archive is corrupt")
        if shape == full:
            return container.header
        return idx_header(shape)
    return None
