# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Input files <-> (uint8 array, container info) for the command line.

The core compresses arrays; the CLI compresses *files*. This module turns a file into the array the core codes plus
a small *container info* byte string (stored in the archive's ``extra`` field) from which ``render`` rebuilds the
file after decoding:

=========  ==========================================  ======================================================
kind       array                                       restored file
=========  ==========================================  ======================================================
npy        uint8 or bool (as 0/1), C order, (N,H,W)    byte-identical (the npy header is kept verbatim, or,
           or (N,H,W,C); a 2-D (H,W) array is coded    when it is the one numpy writes, rebuilt: kind 6)
           as (1,H,W)
idx        uint8 IDX (MNIST), 3 or 4 dims, or 2 dims   byte-identical IDX; a gzip-compressed input is restored
           (one image)                                 *uncompressed* (gzip bytes depend on the compressor)
png        one image: (1,H,W) for modes 1/L/P,         a PNG with identical pixels (mode, palette and
           (1,H,W,C) for LA/RGB/RGBA                   transparency kept) and every other chunk (text, ICC
                                                       profile, gamma, ...) verbatim in its place; the pixel
                                                       data (IDAT) is compressed anew, so not identical bytes
raw        any other file (or one of the above that    byte-identical: the file's bytes, coded as a 1-D array
           cannot be read as such): its bytes, (size,)  of single-byte items (no model fits: classical codecs)
(none)     archives made through the Python API        a .npy file of the decoded array
=========  ==========================================  ======================================================

Container info layout (little-endian, no pickle)::

    u8 version (=1) | u8 kind | kind fields

    npy:  u32 n | n bytes: the original npy preamble (magic, version, header dict, padding)
    npy with a standard header (kind 6, written only when the file's preamble is byte for byte the one
          ``standard_npy_preamble`` makes for its descr and shape, i.e. what np.save writes; any other gets kind 1
          above, byte for byte as before): u8 flags, nothing else. Bit 0: descr '|b1' (bool) instead of '|u1';
          bit 1: the file's array was 2-D (H, W), coded as (1, H, W); other bits 0. The shape is the decoded
          data's (without its leading 1 for bit 1); restoring writes standard_npy_preamble(descr, shape).
    idx:  u8 flags (bit 0: the input was gzip-compressed) | u32 n | n bytes: the original IDX header
    png:  str mode | u8 has_palette [| str palette_mode | u32 n | n palette bytes]
          | u8 transparency kind (0 none, 1 integer, 2 bytes, 3 RGB triple) [| payload]
    raw:  nothing (the data are the file's bytes)
    png with chunks (kind 5, written only for a PNG that has chunks to keep; one without any gets kind 3 above,
          byte for byte as before): the png fields above | u32 count | count entries, in the file's order:
          4 bytes chunk type | u8 stored (0: written anew on restore; 1: kept) [| u32 n | n bytes: chunk data]
          Exactly the chunks the renderer writes are "written anew": IHDR (first), IDAT (one entry for all of
          them), IEND (last), PLTE for mode P, tRNS when there is transparency. Every other chunk is kept verbatim
          (its CRC is recomputed, so it equals the original's). Restoring writes the kept chunks back between the
          renderer's chunks at the same places.
    str = u8 length + ASCII

``parse_info`` checks every length before use and raises ``ArchiveError`` on anything malformed, so a damaged or
hostile archive produces a clear message instead of a traceback or a wrong file.
"""
from __future__ import annotations

import ast
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bbans.container.binary import Reader
from bbans.errors import ArchiveError
from bbans.idx import idx_header, is_idx

INFO_VERSION = 1
KIND_NPY, KIND_IDX, KIND_PNG, KIND_RAW, KIND_PNG_CHUNKS, KIND_NPY_STANDARD = 1, 2, 3, 4, 5, 6
KIND_NAMES = {KIND_NPY: "npy", KIND_IDX: "idx", KIND_PNG: "png", KIND_RAW: "raw", KIND_PNG_CHUNKS: "png",
              KIND_NPY_STANDARD: "npy"}
#: kind 6 flags: the array is bool ('|b1', else '|u1'); the file's array was 2-D (H, W), coded as (1, H, W).
NPY_FLAG_BOOL, NPY_FLAG_2D = 1, 2


#: PNG modes we accept, with the number of channels they store (None: 2-D array).
PNG_MODES = {"1": None, "L": None, "P": None, "LA": 2, "RGB": 3, "RGBA": 4}
_MAX_NPY_HEADER = 1 << 20  # numpy itself refuses headers over ~10 kB; anything near this is garbage


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
    chunks: list | None = None         # png kind 5: [(type, data or None = written anew)] in the file's order
    npy_flags: int | None = None       # npy kind 6 (standard header, rebuilt): NPY_FLAG_*; None for kind 1

    @property
    def npy_standard(self) -> bool:
        """An npy container of kind 6: its preamble is rebuilt from the decoded data's shape (``npy_preamble_for``)."""
        return self.kind == "npy" and self.npy_flags is not None

    def describe(self, shape: tuple | None = None) -> str:
        """One line on the file decompress writes; ``shape``: the archive's data shape (N, *item), which a kind-6
        npy container needs to name the file's shape (without it, the line says where the shape comes from)."""
        if self.npy_standard:
            descr = npy_standard_descr(self.npy_flags)
            if shape is not None:
                try:
                    d = npy_header_fields(self.npy_preamble_for(shape))
                    return f"npy (numpy format 1.0, header {d}; standard header, rebuilt on restore)"
                except ArchiveError:
                    pass
            where = "<the data's (1, H, W) as (H, W)>" if self.npy_flags & NPY_FLAG_2D else "<the data's shape>"
            return (f"npy (numpy format 1.0, header {{'descr': {descr!r}, 'fortran_order': False, "
                    f"'shape': {where}}}; standard header, rebuilt on restore)")
        if self.kind == "npy":
            d = npy_header_fields(self.header)
            return f"npy (numpy format {self.header[6]}.{self.header[7]}, header {d})"
        if self.kind == "idx":
            gz = ", input was gzip-compressed: restored uncompressed" if self.gzip else ""
            return f"idx (MNIST IDX, {self.header[3]} dims{gz})"
        if self.kind == "png":
            extra = f", {self.palette_mode} palette of {len(self.palette) // len(self.palette_mode)} colours" \
                if self.mode == "P" else ""
            tr = ", with transparency" if self.transparency is not None else ""
            kept = [t.decode("ascii") for t, d in self.chunks or [] if d is not None]
            if kept:
                return (f"png (mode {self.mode}{extra}{tr}; pixels restored exactly, with {len(kept)} other "
                        f"chunk{'s' if len(kept) != 1 else ''} kept verbatim: {', '.join(kept)}; "
                        "not the same file bytes)")
            return f"png (mode {self.mode}{extra}{tr}; pixels restored exactly, not the file bytes)"
        if self.kind == "raw":
            return "raw (the file's bytes, restored exactly)"
        return "none (archive made through the Python API; decompress writes a .npy file)"

    def npy_preamble_for(self, shape: tuple) -> bytes:
        """The npy preamble of the file whose data (N, *item) have ``shape``: the stored one (kind 1) or, for kind
        6, the standard one rebuilt (for the 2-D flag, ``shape`` must be (1, H, W) and the file's is (H, W));
        ``ArchiveError`` when the shape cannot be the file's."""
        shape = tuple(int(s) for s in shape)
        if not self.npy_standard:
            return self.header
        if self.npy_flags & NPY_FLAG_2D:
            if len(shape) != 3 or shape[0] != 1:
                raise ArchiveError(f"decoded data has shape {shape} but the container info says one 2-D .npy "
                                   "array, coded as (1, H, W); the archive is corrupt")
            shape = shape[1:]
        try:
            return standard_npy_preamble(npy_standard_descr(self.npy_flags), shape)
        except ValueError as exc:
            raise ArchiveError(f"decoded data has shape {shape}, which no .npy version 1.0 header can hold "
                               f"({exc}); the archive is corrupt") from None


# ----------------------------------------------------------------------------------------------- container info


def raw_info() -> bytes:
    """Container info of a file coded as its own bytes."""
    return _pack(KIND_RAW, b"")


def npy_info(preamble: bytes) -> bytes:
    """Container info of a .npy file: its preamble (magic, version, header dict, padding), kept verbatim."""
    return _pack(KIND_NPY, _u32_bytes(preamble))


def npy_standard_info(is_bool: bool, two_d: bool) -> bytes:
    """Container info of a .npy file whose preamble is ``standard_npy_preamble`` of its descr ('|b1' when
    ``is_bool``, else '|u1') and shape (2-D when ``two_d``: coded as (1, H, W)): one byte of flags (kind 6)."""
    return _pack(KIND_NPY_STANDARD, bytes([(NPY_FLAG_BOOL if is_bool else 0) | (NPY_FLAG_2D if two_d else 0)]))


def layout1_info(info: bytes, items_shape: tuple) -> bytes:
    """Container info as bbans wrote it before kind 6 (``--format-version 1``): a kind-6 npy info becomes kind 1
    with the same (standard) preamble, for the items' shape ``items_shape``; any other info is returned as is."""
    if len(info) < 3 or info[1] != KIND_NPY_STANDARD:
        return info
    descr = npy_standard_descr(info[2])
    shape = tuple(items_shape[1:]) if info[2] & NPY_FLAG_2D else tuple(items_shape)
    return npy_info(standard_npy_preamble(descr, shape))


def npy_info_for(preamble: bytes, descr, shape: tuple) -> bytes:
    """The container info of a .npy file with ``preamble`` (whose header says ``descr`` and ``shape``): kind 6 (one
    byte) when the preamble is byte for byte ``standard_npy_preamble(descr, shape)`` for a '|u1' or '|b1' array of
    2 to 4 dims, else kind 1 (the preamble verbatim), byte for byte as before kind 6 existed."""
    if descr in ("|u1", "|b1") and isinstance(shape, tuple) and len(shape) in (2, 3, 4):
        try:
            standard = standard_npy_preamble(descr, shape)
        except ValueError:
            standard = None
        if standard is not None and standard == bytes(preamble):
            return npy_standard_info(descr == "|b1", len(shape) == 2)
    return npy_info(preamble)


def idx_info(header: bytes, was_gzip: bool) -> bytes:
    """Container info of an IDX file: whether it was gzip-compressed, and its header, kept verbatim."""
    return _pack(KIND_IDX, bytes([1 if was_gzip else 0]) + _u32_bytes(header))


def png_pixels_and_info(im, file_bytes: bytes | None = None) -> tuple[np.ndarray, bytes]:
    """(pixels uint8 (H, W) or (H, W, C), container info) of a loaded PIL image; ValueError naming what is not
    supported (modes other than PNG_MODES, palettes other than RGB/RGBA, odd transparency entries).

    With ``file_bytes`` (the PNG file), every chunk the renderer does not write itself is kept verbatim (kind 5);
    a PNG without such chunks gets the plain png kind (3), as before."""
    mode = im.mode
    if mode not in PNG_MODES:
        raise ValueError(f"PNG mode {mode!r} is not supported (8-bit modes only: {', '.join(PNG_MODES)}); "
                         "16-bit images cannot be coded losslessly as uint8")
    palette_mode, palette, transparency = "", b"", im.info.get("transparency")
    arr = np.array(im, dtype=np.uint8) if mode == "1" else np.array(im)  # mode 1: bool -> 0/1
    if mode == "P":
        palette_mode = im.palette.mode if im.palette is not None else "RGB"
        if palette_mode not in ("RGB", "RGBA"):
            raise ValueError(f"PNG palette mode {palette_mode!r} is not supported")
        palette = bytes(im.getpalette(palette_mode) or [])
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels decode to {arr.dtype}, not uint8")
    if transparency is not None and not isinstance(transparency, (int, bytes, tuple)):
        transparency = None
    if isinstance(transparency, tuple) and (len(transparency) != 3
                                            or not all(isinstance(t, int) for t in transparency)):
        raise ValueError(f"unsupported PNG transparency entry {transparency!r}")
    fields = _png_fields(mode, palette_mode, palette, transparency)
    if file_bytes is not None:
        layout = png_layout(png_chunks(file_bytes), png_written_anew(mode, transparency))
        if any(d is not None for _, d in layout):
            return arr, _pack(KIND_PNG_CHUNKS, fields + _layout_bytes(layout))
    return arr, _pack(KIND_PNG, fields)


# ------------------------------------------------------------------------------------------------ PNG chunks

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_CHUNK = (1 << 31) - 1  # the PNG spec's limit on a chunk's length


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks (type, data) of a PNG file, up to and including IEND; ValueError when malformed (bad signature,
    truncated chunk, bad type, CRC mismatch, no IEND, or bytes after IEND, which could not be restored)."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    out, pos, n = [], len(PNG_SIGNATURE), len(data)
    while True:
        if pos + 12 > n:
            raise ValueError("the PNG file is truncated (no IEND chunk)")
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        ctype = data[pos + 4:pos + 8]
        if length > _MAX_CHUNK or pos + 12 + length > n:
            raise ValueError(f"the PNG chunk {ctype!r} is truncated")
        if not _chunk_type_ok(ctype):
            raise ValueError(f"the PNG file has a chunk of invalid type {ctype!r}")
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(ctype + body) != crc:
            raise ValueError(f"the PNG chunk {ctype.decode('ascii')} fails its CRC")
        out.append((ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    if pos != n:
        raise ValueError(f"the PNG file has {n - pos:,} bytes after its IEND chunk")
    return out


def _chunk_type_ok(t: bytes) -> bool:
    return len(t) == 4 and all(65 <= c <= 90 or 97 <= c <= 122 for c in t)


def png_written_anew(mode: str, transparency) -> frozenset:
    """The chunk types the renderer writes for an image of ``mode`` (with or without transparency)."""
    return frozenset({b"IHDR", b"IDAT", b"IEND"} | ({b"PLTE"} if mode == "P" else set())
                     | ({b"tRNS"} if transparency is not None else set()))


def png_layout(chunks, anew: frozenset) -> list[tuple[bytes, bytes | None]]:
    """The file's chunks in order, those of ``anew`` types as (type, None) (consecutive IDATs as one), the others
    with their data; ValueError when the chunks the renderer writes are not each there once (IHDR first, IEND
    last), which a PNG that PIL decoded always satisfies."""
    layout: list = []
    for t, d in chunks:
        if t in anew:
            if t == b"IDAT" and layout and layout[-1] == (b"IDAT", None):
                continue
            layout.append((t, None))
        elif t in (b"IHDR", b"IDAT", b"IEND"):
            raise ValueError(f"unexpected PNG chunk {t.decode('ascii')}")
        else:
            layout.append((t, bytes(d)))
    _check_layout(layout, anew, ValueError)
    return layout


def _check_layout(layout, anew, error) -> None:
    placed = [t for t, d in layout if d is None]
    if sorted(placed) != sorted(anew) or not layout or layout[0] != (b"IHDR", None) \
            or layout[-1] != (b"IEND", None):
        raise error("the PNG chunk layout is not IHDR first, IEND last, with the image's chunks once each")


def _layout_bytes(layout) -> bytes:
    out = [struct.pack("<I", len(layout))]
    for t, d in layout:
        out.append(t + (b"\x00" if d is None else b"\x01" + _u32_bytes(d)))
    return b"".join(out)


def _chunk_bytes(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


#: what numpy's format writer pads the header with so the first axis can grow in place (numpy's
#: GROWTH_AXIS_MAX_DIGITS and ARRAY_ALIGN); fixed here: archives must not depend on the installed numpy.
_NPY_GROWTH_DIGITS, _NPY_ALIGN = 21, 64


def standard_npy_preamble(descr: str, shape: tuple) -> bytes:
    """The npy format version 1.0 preamble numpy writes (``np.save``) for a C-order array of ``descr`` and
    ``shape``: magic, version 1.0, u16 header length, the header dict, spaces and a newline so that the preamble's
    length is a multiple of 64. Our own writer, byte for byte what numpy 1.x and 2.x write, so that restored files
    do not depend on the installed numpy. ``ValueError`` when the header does not fit version 1.0."""
    if not isinstance(descr, str) or not isinstance(shape, tuple) \
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(f"not an npy descr and shape: {descr!r}, {shape!r}")
    shape = tuple(int(s) for s in shape)  # plain ints, whose repr is the one numpy writes
    text = "{" + f"'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, " + "}"
    if shape:  # numpy's room to grow the first axis in place
        text += " " * max(0, _NPY_GROWTH_DIGITS - len(repr(shape[0])))
    header = text.encode("latin1")
    n = len(header) + 1  # + the final newline
    pad = _NPY_ALIGN - (10 + n) % _NPY_ALIGN  # 1..64 spaces, as numpy pads (never 0)
    if n + pad > 0xFFFF:
        raise ValueError(f"an npy header for shape {shape} does not fit format version 1.0")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", n + pad) + header + b" " * pad + b"\n"


def npy_standard_descr(flags: int) -> str:
    """The descr of a kind-6 npy container's array."""
    return "|b1" if flags & NPY_FLAG_BOOL else "|u1"


def npy_header_fields(preamble: bytes) -> dict:
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


def npy_preamble(head: bytes) -> bytes:
    """The npy preamble (magic .. padding) at the start of ``head``; ValueError when truncated or absurd."""
    n = npy_preamble_length(head)
    if n > len(head) or n > _MAX_NPY_HEADER:
        raise ValueError("truncated npy header")
    return head[:n]


def npy_preamble_length(raw: bytes) -> int:
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


def _u32_blob(r: Reader, what: str) -> bytes:
    return r.take(r.u32(what + " length"), what)


def _text(r: Reader, what: str) -> str:
    try:
        return r.take(r.byte(what + " length"), what).decode("ascii")
    except UnicodeDecodeError:
        raise ArchiveError("the archive's container info is corrupt (bad text field)") from None


def parse_info(info: bytes) -> Container:
    """Parse container info (the archive's extra bytes); empty means 'no container'."""
    if not info:
        return Container("none")
    r = Reader(bytes(info))
    version = r.byte("container info version")
    if version != INFO_VERSION:
        raise ArchiveError(f"the archive's container info has version {version}; this bbans reads version "
                           f"{INFO_VERSION} (upgrade bbans to read newer archives)")
    kind = r.byte("container kind")
    if kind == KIND_NPY:
        header = _u32_blob(r, "npy header")
        try:
            if npy_preamble_length(header) != len(header):
                raise ValueError("length mismatch")
            npy_header_fields(header)
        except (ValueError, SyntaxError, UnicodeDecodeError, struct.error, MemoryError, RecursionError):
            raise ArchiveError("the archive's stored .npy header is corrupt") from None
        c = Container("npy", header=header)
    elif kind == KIND_NPY_STANDARD:
        if not r.left:
            raise ArchiveError("the archive's container info is corrupt (a standard .npy header without its flags)")
        flags = r.byte("npy flags")
        if flags & ~(NPY_FLAG_BOOL | NPY_FLAG_2D):
            raise ArchiveError(f"the archive's container info is corrupt (unknown .npy flags {flags:#04x})")
        c = Container("npy", npy_flags=flags)
    elif kind == KIND_IDX:
        flags = r.byte("IDX flags")
        if flags & ~1:
            raise ArchiveError("the archive's container info is corrupt (unknown IDX flags)")
        header = _u32_blob(r, "IDX header")
        if not is_idx(header) or len(header) != 4 + 4 * header[3]:
            raise ArchiveError("the archive's stored IDX header is corrupt")
        c = Container("idx", header=header, gzip=bool(flags & 1))
    elif kind == KIND_RAW:
        c = Container("raw")
    elif kind in (KIND_PNG, KIND_PNG_CHUNKS):
        mode = _text(r, "PNG mode")
        if mode not in PNG_MODES:
            raise ArchiveError(f"the archive's container info names an unknown PNG mode {mode!r}")
        c = Container("png", mode=mode)
        has_palette = r.byte("PNG palette flag")
        if has_palette not in (0, 1) or bool(has_palette) != (mode == "P"):
            raise ArchiveError("the archive's container info is corrupt (PNG palette flag)")
        if has_palette:
            c.palette_mode = _text(r, "PNG mode")
            c.palette = _u32_blob(r, "PNG palette")
            if c.palette_mode not in ("RGB", "RGBA") or len(c.palette) % len(c.palette_mode) \
                    or len(c.palette) > 256 * len(c.palette_mode):
                raise ArchiveError("the archive's stored PNG palette is corrupt")
        t = r.byte("PNG transparency kind")
        if t == 0:
            c.transparency = None
        elif t == 1:
            c.transparency = r.u32("PNG transparency")
        elif t == 2:
            c.transparency = _u32_blob(r, "PNG transparency")
        elif t == 3:
            c.transparency = struct.unpack("<3I", r.take(12, "PNG transparency"))
        else:
            raise ArchiveError("the archive's container info is corrupt (PNG transparency)")
        if kind == KIND_PNG_CHUNKS:
            c.chunks = _parse_layout(r, png_written_anew(mode, c.transparency))
    else:
        raise ArchiveError(f"the archive's container info names an unknown file kind {kind}; "
                           "it is corrupt or from a newer bbans")
    if r.left:
        raise ArchiveError("the archive's container info has trailing bytes; it is corrupt")
    return c


def _parse_layout(r: Reader, anew: frozenset) -> list:
    count = r.u32("PNG chunk count")
    if count > r.left // 5:  # every entry takes at least 5 bytes
        raise ArchiveError("the archive's container info is corrupt (PNG chunk count)")
    layout = []
    for _ in range(count):
        t = r.take(4, "PNG chunk type")
        stored = r.byte("PNG chunk flag")
        if not _chunk_type_ok(t) or stored not in (0, 1):
            raise ArchiveError("the archive's container info is corrupt (PNG chunk entry)")
        if stored:
            d = _u32_blob(r, "PNG chunk")
            if t in anew or t in (b"IHDR", b"IDAT", b"IEND") or len(d) > _MAX_CHUNK:
                raise ArchiveError("the archive's container info is corrupt (PNG chunk entry)")
            layout.append((t, d))
        else:
            layout.append((t, None))
    _check_layout(layout, anew, lambda m: ArchiveError(f"the archive's container info is corrupt ({m})"))
    return layout


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
    if container.npy_standard:
        return container.npy_preamble_for(data.shape) + data.tobytes()
    if container.kind == "npy":
        shape = tuple(npy_header_fields(container.header)["shape"])
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
    if not c.chunks:
        return buf.getvalue()
    return _splice(buf.getvalue(), c.chunks)


def _splice(rendered: bytes, layout) -> bytes:
    """The rendered PNG with the kept chunks put back where ``layout`` says (between the renderer's chunks).

    Lenient with the PNG writer (another Pillow version may write other chunks): a chunk type it writes that the
    layout does not place goes just before the image data, a placed type it did not write is skipped."""
    made: dict = {}
    for t, d in png_chunks(rendered):
        made.setdefault(t, []).append(d)
    placed = {t for t, d in layout if d is None}
    extra = [(t, d) for t, ds in made.items() if t not in placed for d in ds]
    out = [PNG_SIGNATURE]
    for t, d in layout:
        if d is not None:
            out.append(_chunk_bytes(t, d))
            continue
        if t == b"IDAT":
            out.extend(_chunk_bytes(x, y) for x, y in extra)
        out.extend(_chunk_bytes(t, body) for body in made.get(t, []))
    return b"".join(out)


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
    if container.npy_standard:
        return container.npy_preamble_for(shape)
    if container.kind == "npy":
        d = npy_header_fields(container.header)
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
