"""Model discovery through the ``bbans.models`` entry-point group (no import of any models package by name).

Each entry point loads to a *provider* with:

- ``list() -> list[dict]``: one dict per model: ``name``, ``data_shape``, ``value_range``, ``description``,
  ``sha256`` (and maybe more);
- ``load(name) -> model``: a model following bbans/bitsback/protocol.py;
- ``load_path(path) -> model | None``: a model from a weights file, or None if the provider does not recognise it;
- ``find(name, sha256) -> model | None``: the model whose weights' sha256 is, or begins with, ``sha256`` (layout-2
  archives store its first 16 hex digits, layout-3 archives its first 12 and no name: ``name`` is then ""), or
  None.

A provider that fails to import or to list is skipped (its error is named when no model is found).
"""
from __future__ import annotations

import os
from importlib.metadata import entry_points
from types import SimpleNamespace

from ..errors import ModelError
from ..bitsback.protocol import model_fits

GROUP = "bbans.models"
WEIGHTS_SUFFIXES = (".safetensors", ".st", ".bin", ".pt")  # what a path to a weights file ends with


def _entry_points():
    """The installed entry points of GROUP (tests replace this)."""
    return list(entry_points(group=GROUP))


def _providers() -> tuple[list, list[str]]:
    """(list of (entry point name, provider), list of problems with providers that failed to load)."""
    providers, problems = [], []
    for ep in _entry_points():
        try:
            providers.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plugin must not break the core
            problems.append(f"model provider {ep.name!r} failed to load ({type(exc).__name__}: {exc})")
    return providers, problems


def _listing() -> tuple[list, list[str]]:
    """(list of (provider, info dict), problems)."""
    providers, problems = _providers()
    out = []
    for ep_name, prov in providers:
        try:
            out.extend((prov, dict(info, provider=ep_name)) for info in prov.list())
        except Exception as exc:
            problems.append(f"model provider {ep_name!r} failed to list its models ({type(exc).__name__}: {exc})")
    return out, problems


def _installed_text(listing, problems) -> str:
    names = ", ".join(f"{i['name']} (sha256 {str(i.get('sha256', ''))[:12]})" for _, i in listing) or "none"
    extra = "; " + "; ".join(problems) if problems else ""
    return f"installed models: {names}{extra}"


def describe(model) -> str:
    """'name (items 28 x 28, values 0..255)' for a model object or a listing's info dict."""
    get = model.get if isinstance(model, dict) else (lambda k, d=None: getattr(model, k, d))
    shape = " x ".join(str(int(d)) for d in (get("data_shape") or ()))
    lo, hi = get("value_range") or ("?", "?")
    if get("tile_size"):
        return (f"{get('name', '?')} (images of any size with {int(get('data_shape')[-1])} channels, as "
                f"{shape} tiles, values {lo}..{hi})")
    return f"{get('name', '?')} (items of shape {shape}, values {lo}..{hi})"


def installed_text() -> str:
    """A sentence listing the installed models with their item shapes and value ranges (for error messages)."""
    listing, problems = _listing()
    if not listing:
        text = "no models are installed (train one with 'bbans train')"
    else:
        text = "installed models:\n" + "\n".join(f"  {describe(info)}" for _, info in listing)
    return text + "".join(f"\n  ({p})" for p in problems)


def list_models() -> list[dict]:
    """Info dicts of every installed model (each with an added ``provider`` key: the entry point's name)."""
    return [info for _, info in _listing()[0]]


def load_model(name_or_path: str):
    """Load a model by its listed name, or from a weights file path any provider recognises.

    A listed name wins over a same-named file or folder in the working directory; a path is only tried when it is
    a regular file and no model has that name.
    """
    listing, problems = _listing()
    looks_like_path = os.sep in name_or_path or "/" in name_or_path or name_or_path.endswith(WEIGHTS_SUFFIXES)
    if not any(info["name"] == name_or_path for _, info in listing) and looks_like_path:
        if not os.path.exists(name_or_path):
            raise ModelError(f"{name_or_path}: no such file (give an installed model's name or a weights file)")
        if os.path.isdir(name_or_path):
            raise ModelError(f"{name_or_path}: is a directory, not a weights file")
    if any(info["name"] == name_or_path for _, info in listing):
        for prov, info in listing:
            if info["name"] == name_or_path:
                return prov.load(name_or_path)
    if os.path.isfile(name_or_path):
        for _, prov in _providers()[0]:
            model = prov.load_path(name_or_path)
            if model is not None:
                return model
        listing, problems = _listing()
        raise ModelError(f"no installed model provider recognises the weights file {name_or_path}; "
                         + _installed_text(listing, problems))
    raise ModelError(f"no model named {name_or_path!r}; " + _installed_text(listing, problems))


def find_model(name: str | None, sha256: str):
    """The installed model with this name and weights sha256 (or its prefix); ``name`` None (archive layout 3
    stores none): the model whose weights' sha256 begins with ``sha256``. ModelError naming what is installed
    otherwise."""
    for _, prov in _providers()[0]:
        model = prov.find(name or "", sha256)
        if model is not None:
            return model
    listing, problems = _listing()
    raise ModelError(
        f"the archive needs {archive_model_text(name, sha256)}, which is not installed; install the package that "
        f"provides it or pass the model; " + _installed_text(listing, problems)
    )


def _listed_info(sha256: str) -> dict | None:
    """The listing's info dict of the model whose weights' sha256 begins with ``sha256`` (an archive's model), read
    without loading it; None when no listed model has it."""
    for _, info in _listing()[0]:
        if sha256 and str(info.get("sha256", "")).startswith(str(sha256)):
            return info
    return None


def listed_name(sha256: str) -> str | None:
    """The name of the listed model whose weights' sha256 begins with ``sha256``; None when none is (a layout-3
    archive names its model by that prefix alone)."""
    info = _listed_info(sha256)
    return None if info is None else str(info["name"])


def archive_model_name(name: str | None, sha256: str) -> str:
    """An archive's model as reports name it: the name it records, else (layout 3) the listed model's with that
    sha256 prefix, else an installed unlisted (retired) model's, loaded to ask it, else "unknown (sha256 …)"."""
    name = name or listed_name(sha256)
    if name:
        return name
    try:
        return str(find_model(None, sha256).name)
    except ModelError:
        return f"unknown (sha256 {sha256[:12]}…)"


def archive_model_text(name: str | None, sha256: str) -> str:
    """How messages name an archive's model: "model 'mnist' (sha256 ee2f7a4d9a3a…)"; for a layout-3 archive
    (``name`` None) the listed model with that sha256 prefix, or "the model whose weights' sha256 begins …"."""
    name = name or listed_name(sha256)
    if name:
        return f"model {name!r} (sha256 {sha256[:12]}…)"
    return f"the model whose weights' sha256 begins {sha256[:12]}…"


def listed_tile_size(sha256: str) -> int:
    """The tile side of the listed image model whose weights' sha256 starts with ``sha256`` (an archive's model),
    read from the listing without loading it; 0 for other models or when none is installed."""
    info = _listed_info(sha256)
    return 0 if info is None else int(info.get("tile_size") or 0)


def default_model_for(data):
    """The model for ``data`` (N, *shape) uint8: among listed models whose data shape and value range fit, the one
    with the narrowest value range (binary data goes to a binary model, not an 8-bit one), first listed on ties;
    None when no model fits."""
    fitting = []
    for prov, info in _listing()[0]:
        try:
            probe = SimpleNamespace(data_shape=tuple(info["data_shape"]), value_range=tuple(info["value_range"]),
                                    tile_size=int(info.get("tile_size") or 0))
            if model_fits(probe, data):
                fitting.append((probe.value_range[1] - probe.value_range[0], len(fitting), prov, info["name"]))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed listing entry is not a candidate
    if not fitting:
        return None
    _, _, prov, name = min(fitting, key=lambda t: t[:2])
    return prov.load(name)
