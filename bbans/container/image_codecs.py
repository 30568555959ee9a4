# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Classical lossless image codecs as archive methods: JPEG-XL (effort 7) and WebP (method 4), through
``imagecodecs``.

They code images, not bytes: data (N, H, W, C) with C in 1, 3, 4 (grey, RGB, RGBA) or (N, H, W) (grey), up to
``MAX_IMAGES`` images of at least ``MIN_PIXELS`` pixels (smaller items, such as 28 x 28 digits, are left to the
byte codecs and the models: per-image headers would dominate). WebP takes RGB and RGBA only. The payload is, per
image, a u32 little-endian length and the codec's own stream; decoding checks every image's shape against the
archive header before trusting it.

Measured on the 24 Kodak images (bits per sub-pixel, seconds per image on this 2-core CPU; benchmarks/photos.py):
JPEG-XL e7 2.902 (~0.7 s to encode, 0.1 s to decode) against e9's 2.885 at ~8.5 s; WebP m4 ~1.6 s, m6 ~11 s for
<1% less. Efforts and methods steer only the encoder; any setting decodes.
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import ArchiveError, InputError

METHODS = ("jpegxl", "webp")
MIN_PIXELS = 32 * 32
MAX_IMAGES = 256
INSTALL_HINT = "install it with: pip install imagecodecs"


def _codecs():
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def available() -> bool:
    """True when ``imagecodecs`` (a dependency of bbans) can be imported here."""
    return _codecs() is not None


def _layout(shape: tuple):
    """(N, H, W, C) of image data of ``shape``, or None when it is not images these codecs take."""
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[3] not in (1, 3, 4):
        return None
    return tuple(int(s) for s in shape)


def applicable(method: str, data: np.ndarray) -> bool:
    """True when ``method`` can code ``data`` (uint8) and is worth trying on it (see the module docstring)."""
    lay = _layout(data.shape)
    if data.dtype != np.uint8 or lay is None or not 1 <= lay[0] <= MAX_IMAGES or lay[1] * lay[2] < MIN_PIXELS:
        return False
    return lay[3] in (3, 4) if method == "webp" else True


def why_not(method: str, data: np.ndarray) -> str | None:
    """Why ``method`` cannot code ``data`` (None when it can)."""
    if not available():
        return f"method {method} needs the Python package imagecodecs; {INSTALL_HINT}"
    if not applicable(method, data):
        kinds = "RGB or RGBA" if method == "webp" else "grey, RGB or RGBA"
        return (f"method {method} codes {kinds} images (N, H, W[, C]) of at least {MIN_PIXELS} pixels, at most "
                f"{MAX_IMAGES} of them; this data is {data.dtype} {tuple(data.shape)}")
    return None


def compress(method: str, data: np.ndarray) -> bytes:
    """The payload of ``data`` (see ``applicable``) under ``method``; InputError when it does not apply."""
    problem = why_not(method, data)
    if problem:
        raise InputError(problem)
    ic = _codecs()
    n, h, w, c = _layout(data.shape)
    out = []
    for img in np.ascontiguousarray(data).reshape(n, h, w, c):
        pixels = img[..., 0] if c == 1 else img
        if method == "jpegxl":
            stream = ic.jpegxl_encode(pixels, lossless=True, effort=7)
        else:
            stream = ic.webp_encode(pixels, level=100, lossless=True, method=4)
        out.append(struct.pack("<I", len(stream)) + bytes(stream))
    return b"".join(out)


def decompress(method: str, payload: bytes, shape: tuple) -> np.ndarray:
    """Inverse of ``compress`` for data of ``shape`` (from the archive header); ArchiveError on any damage."""
    ic = _codecs()
    if ic is None:
        raise ArchiveError(f"the archive was coded with {method}, which needs the Python package imagecodecs; "
                           f"{INSTALL_HINT}")
    lay = _layout(tuple(shape))
    if lay is None or (method == "webp" and lay[3] not in (3, 4)):
        raise ArchiveError(f"a {method} archive claims data of shape {tuple(shape)}; the archive is corrupt")
    n, h, w, c = lay
    out = np.empty((n, h, w, c), np.uint8)
    pos = 0
    for i in range(n):
        if pos + 4 > len(payload):
            raise ArchiveError(f"the {method} payload ends before image {i + 1} of {n}; the archive is corrupt")
        (length,) = struct.unpack_from("<I", payload, pos)
        stream = payload[pos + 4:pos + 4 + length]
        pos += 4 + length
        if len(stream) != length:
            raise ArchiveError(f"the {method} payload ends inside image {i + 1}; the archive is corrupt")
        _check_dimensions(ic, method, stream, (h, w))
        try:
            img = np.asarray(ic.jpegxl_decode(stream) if method == "jpegxl" else ic.webp_decode(stream))
        except Exception as exc:  # imagecodecs raises its own codec errors
            raise ArchiveError(f"the {method} stream of image {i + 1} is damaged ({exc}); the archive is corrupt") \
                from None
        if img.dtype != np.uint8 or img.reshape(-1).size != h * w * c:
            raise ArchiveError(f"image {i + 1} of the {method} payload decodes to {img.dtype} {img.shape}, not "
                               f"{h} x {w} x {c}; the archive is corrupt")
        out[i] = img.reshape(h, w, c)
    if pos != len(payload):
        raise ArchiveError(f"the {method} payload has {len(payload) - pos} bytes after its images; the archive is "
                           "corrupt")
    return out.reshape(shape)


def _check_dimensions(ic, method: str, stream: bytes, size: tuple) -> None:
    """ArchiveError unless the stream declares an image of ``size`` (H, W), read before decoding so that a damaged
    stream cannot make the decoder allocate for a huge image."""
    try:
        if method == "webp":
            # RIFF....WEBPVP8L: the lossless bitstream header: 0x2f, then 14 bits width-1, 14 bits height-1
            if len(stream) < 25 or stream[:4] != b"RIFF" or stream[8:16] != b"WEBPVP8L" or stream[20] != 0x2F:
                raise ValueError("not a lossless WebP stream")
            bits = int.from_bytes(stream[21:25], "little")
            dims = ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
        else:
            dims = _jpegxl_dimensions(stream)
    except (ValueError, IndexError) as exc:
        raise ArchiveError(f"the {method} stream is damaged ({exc}); the archive is corrupt") from None
    if tuple(dims) != tuple(size):
        raise ArchiveError(f"a {method} stream declares a {dims[0]} x {dims[1]} image where the archive holds "
                           f"{size[0]} x {size[1]}; the archive is corrupt")


def _jpegxl_dimensions(stream: bytes) -> tuple[int, int]:
    """(H, W) from a bare JPEG-XL codestream's SizeHeader (ISO/IEC 18181-1, after the 0xFF0A signature)."""
    if stream[:2] != b"\xff\x0a":
        raise ValueError("not a bare JPEG-XL codestream")
    reader = _Bits(stream[2:])
    if reader.read(1):  # small: multiples of 8 up to 256
        h = (reader.read(5) + 1) * 8
        ratio = reader.read(3)
        w = _ratio_width(ratio, h) if ratio else (reader.read(5) + 1) * 8
    else:
        h = reader.u32([9, 13, 18, 30]) + 1
        ratio = reader.read(3)
        w = _ratio_width(ratio, h) if ratio else reader.u32([9, 13, 18, 30]) + 1
    return h, w


def _ratio_width(ratio: int, h: int) -> int:
    num, den = [(1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1)][ratio - 1]
    return h * num // den


class _Bits:
    """Little-endian bit reader (JPEG-XL's bit order: least significant bit of each byte first)."""

    def __init__(self, data: bytes):
        self.value, self.pos, self.n = int.from_bytes(data[:16], "little"), 0, 8 * min(len(data), 16)

    def read(self, k: int) -> int:
        if self.pos + k > self.n:
            raise ValueError("the header is truncated")
        v = (self.value >> self.pos) & ((1 << k) - 1)
        self.pos += k
        return v

    def u32(self, bits: list[int]) -> int:
        return self.read(bits[self.read(2)])
