"""The pretrained models shipped in ``bbans_models/weights``, each pinned by sha256 in ``weights/manifest.json``.

``provider`` is registered under the entry-point group ``bbans.models`` (pyproject.toml), which is how the core
(``bbans.container.registry``) finds models without importing this package by name.

The manifest is a JSON list of entries ``{"name", "file", "sha256", "status", "description"}``: ``file`` is in
``weights/``, ``sha256`` is that file's, ``status`` is "listed" or "retired". The names are what archives record.
An archive records a model by name and sha256, so a model file keeps decoding its archives after a rename: ``find``
matches the sha256 (the weights) when the recorded name is a former one. Retired entries are weights that were
shipped under a name and then replaced by better ones: never listed (so never picked, benchmarked or offered), but
``find`` still matches their sha256, so archives written with them keep decoding. ``scripts/ship_model.py`` writes
the manifest. What data a model codes (item shape, value range) is read from its weights file's own metadata
(``weights_file``), without torch.
"""
from __future__ import annotations

import json
from functools import cached_property, lru_cache
from pathlib import Path

from bbans.errors import ModelError

from .weights_file import PHOTO_FORMAT, data_shape, read_metadata, tile_size, value_range

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
FIELDS = ("name", "file", "sha256", "status", "description")
OPTIONAL_FIELDS = ("coding_variants",)  # list of variant dicts; the last codes new archives (coding_model.py)
STATUSES = ("listed", "retired")


def read_manifest(path: Path = MANIFEST) -> list[dict]:
    """The manifest's entries, in file order, each checked to have FIELDS, a known status and a unique name."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model manifest {path}: {exc}; reinstall bbans") from None
    if not isinstance(entries, list):
        raise ModelError(f"the model manifest {path} is not a JSON list of entries; reinstall bbans")
    names = set()
    for entry in entries:
        if (not isinstance(entry, dict) or any(not isinstance(entry.get(k), str) for k in FIELDS)
                or entry["status"] not in STATUSES or entry["name"] in names
                or not isinstance(entry.get("coding_variants", []), list)):
            raise ModelError(f"the model manifest {path} has a malformed or duplicate entry: {entry!r}")
        names.add(entry["name"])
    return entries


def write_manifest(entries: list[dict], path: Path = MANIFEST) -> None:
    """Write ``entries`` as the manifest (indented JSON, keys in FIELDS order), replacing the file atomically."""
    path = Path(path)
    text = json.dumps([{k: e[k] for k in FIELDS + OPTIONAL_FIELDS if k in e} for e in entries], indent=2,
                      ensure_ascii=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def coding_model_class(path: Path):
    """The coding-model class of the weights file at ``path``: ``PhotoCodingModel`` for the photo family, else
    ``VAECodingModel`` (ModelError when the file is unreadable)."""
    if read_metadata(path).get("format") == PHOTO_FORMAT:
        from .photo_coding_model import PhotoCodingModel

        return PhotoCodingModel
    from .coding_model import VAECodingModel

    return VAECodingModel


class BuiltinProvider:
    """Implements the provider interface of ``bbans.container.registry`` for the shipped weights."""

    @cached_property
    def _entries(self) -> dict[str, dict]:
        return {e["name"]: e for e in read_manifest(MANIFEST)}

    def list(self) -> list[dict]:
        out = []
        for entry in self._entries.values():
            if entry["status"] != "listed":
                continue
            path = WEIGHTS_DIR / entry["file"]
            meta = read_metadata(path)
            out.append({"name": entry["name"], "data_shape": data_shape(meta), "value_range": value_range(meta),
                        "tile_size": tile_size(meta), "description": entry["description"], "sha256": entry["sha256"],
                        "path": str(path)})
        return out

    @lru_cache(maxsize=None)
    def load(self, name: str):
        """The model ``name`` (listed or retired), its file checked against the pinned sha256; None if unknown."""
        return self.load_on(name, "cpu")

    def load_on(self, name: str, device: str):
        """``load``, with the integer networks on torch ``device`` (e.g. "cuda": the same integers, docs/design.md,
        "Determinism"); not cached."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        model = coding_model_class(WEIGHTS_DIR / entry["file"])(WEIGHTS_DIR / entry["file"], device=device,
                                                                expected_sha256=entry["sha256"], name=name)
        variants = list(entry.get("coding_variants", []))  # every variant ever shipped stays, so archives decode
        model.known_coding_variants = variants
        if variants:
            model = model.with_coding_variant(variants[-1])
        return model

    def load_path(self, path):
        p = Path(path)
        if not p.is_file():
            return None
        try:
            return coding_model_class(p)(p)
        except ModelError:
            return None

    def find(self, name: str, sha256: str):
        """The model with these weights: by name, or (an archive of a model since renamed) by sha256 alone.
        ``sha256`` may be a prefix (layout-2 archives store 16 hex digits, layout-3 archives 12 and no name: "")."""
        entry = self._entries.get(name)
        if entry is not None and entry["sha256"].startswith(sha256):
            return self.load(name)
        for other in self._entries.values():
            if other["sha256"].startswith(sha256):
                return self.load(other["name"])
        return None


provider = BuiltinProvider()
