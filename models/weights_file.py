"""The coding-model weights file, format ``bbans-vae-2`` (or ``bbans-photo-1`` for the photo family): a safetensors
file with one metadata entry.

The file (written by ``export``) holds the float weights (``float.*``), the integer coding networks (``int.*``)
and, under the safetensors header's ``__metadata__["bbans"]``, sorted-key JSON with the format, name,
architecture (``config``), integer layer layout (``int_layers``), coder settings and model card (``card``).

This module reads only that header: the safetensors layout is an 8-byte little-endian header length N, then N bytes
of JSON (tensor offsets plus ``__metadata__``, a string-to-string map), then the tensor data. So listing a model or
checking what data it codes needs neither torch nor the tensors, and nothing here imports training code.
"""
from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from bbans.errors import ModelError

FORMAT = "bbans-vae-2"
PHOTO_FORMAT = "bbans-photo-1"  # the photo family (``photo_export``): tiles of C-channel images of any size
FORMATS = (FORMAT, PHOTO_FORMAT)
TILE_FILL = 128  # photo family: pixels of a tile outside its image hold this value, (x - 128)/128 = 0 for the encoder
INPUT_OFFSET, INPUT_EXPONENT = 128, 7  # photo family: the integer encoder sees x - 128 at exponent 7
METADATA_KEY = "bbans"
MU_EXPONENT = 12  # posterior means are stored as round(mu * 2^12) = 2^(12-b) x (mean in bins of width 2^-b)
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes: the identity of the weights that archives record."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path: Path) -> dict:
    """The ``bbans`` metadata of the weights file at ``path`` as a dict, read from the safetensors header alone.

    Raises ModelError when the file is missing, is not a safetensors file, or is not of format ``FORMAT``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if not 0 < length <= min(MAX_HEADER_BYTES, path.stat().st_size - 8):
                raise ValueError("no safetensors header")
            header = json.loads(f.read(length))
        entries = header.get("__metadata__") or {}
        meta = json.loads(entries.get(METADATA_KEY, "{}"))
        if not isinstance(meta, dict):
            raise ValueError(f"the {METADATA_KEY!r} metadata is not a JSON object")
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError, UnicodeDecodeError included
        raise ModelError(f"cannot read model file {path}: {exc}") from None
    if meta.get("format") not in FORMATS:
        raise ModelError(f"{path} is not a bbans model file ({' or '.join(FORMATS)}; found format "
                         f"{meta.get('format')!r}); export it again with this bbans version")
    return meta


def data_shape(meta: dict) -> tuple:
    """Shape of one item the file codes, from its metadata: (image_size, image_size) for the MNIST family;
    (T, T, C) for the photo family, whose items are the tiles of images of any size (``tile_size``)."""
    if meta.get("format") == PHOTO_FORMAT:
        t = tile_size(meta)
        return (t, t, int(meta["config"]["channels"]))
    size = int(meta["config"]["image_size"])
    return (size, size)


def tile_size(meta: dict) -> int:
    """T, the tile side of a photo-family file (0 for other files)."""
    return int(meta["coder_settings"]["tile"]) if meta.get("format") == PHOTO_FORMAT else 0


def value_range(meta: dict) -> tuple[int, int]:
    """Inclusive (lowest, highest) pixel value the file codes: (0, 1) for a Bernoulli likelihood, else (0, 255)
    (8-bit data: the logistic mixture)."""
    return (0, 1) if meta["config"].get("likelihood") == "bernoulli" else (0, 255)
