"""The one renderer of what a command did: a ``Report`` is an ordered list of fields, each with the text a person
reads and the value a program reads, shown as aligned ``key: text`` lines or as JSON (``--json``).

The builders below turn what the core returns (the pipeline's ``Report``, an archive's header) into these fields.
Sizes in bytes, rates in bits per dimension (bits/dim: archive bits over the number of data values).
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np

from .ui import fmt_bytes, fmt_gap, fmt_seconds, fmt_shape, kv, short_sha

BITS_BACK = ("bits-back", "bits-back-is")  # archive methods coded with a model


def jsonable(v):
    """``v`` with bytes as hex, tuples as lists and numpy scalars as Python numbers."""
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (tuple, list)):
        return [jsonable(x) for x in v]
    if isinstance(v, (dict, Counter)):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


class Report:
    """Fields in order: ``add(key, text, value)``; ``render(as_json)``."""

    def __init__(self):
        self.fields: list[tuple[str, str, object]] = []
        self.data: dict = {}

    def add(self, key: str, text: str, value=None, json_key: str | None = None) -> None:
        self.fields.append((key, text, value))
        if value is not None:
            self.data[json_key or key.replace(" ", "_").replace("-", "neg_").lower()] = jsonable(value)

    def extend(self, **values) -> None:
        """Values shown only in JSON."""
        self.data.update({k: jsonable(v) for k, v in values.items()})

    def render(self, as_json: bool = False) -> str:
        return json.dumps(self.data, indent=2) if as_json else kv([(k, t) for k, t, _ in self.fields])


def _ratio(before: int, after: int) -> str:
    if after <= before:
        return f"{before / max(after, 1):.2f}x smaller than the input file"
    return f"{after / max(before, 1):.2f}x LARGER than the input file"


def compress_report(inp, rep, out: str, jobs: int) -> Report:
    """What ``bbans compress`` did with the input ``inp`` (cli/inputs.py): ``rep`` is the pipeline's report."""
    r = Report()
    dims = rep.raw_bytes
    bpd = 8 * rep.archive_bytes / dims if dims else None
    mapped = rep.n_chunks > 1 and hasattr(inp.source, "path")
    r.add("input", f"{inp.name}: {inp.description}; {fmt_bytes(inp.file_bytes)}"
          + (" (memory-mapped, read one chunk at a time)" if mapped else ""), inp.name)
    values = f", values {rep.value_range[0]}..{rep.value_range[1]}" if rep.value_range else ""
    r.add("data", f"{fmt_shape(inp.shape)} uint8{values}", list(inp.shape), "shape")
    r.extend(value_range=rep.value_range)
    used = rep.method
    if rep.model_name is not None:
        r.add("model", f"{rep.model_name} (sha256 {short_sha(rep.model_sha256)})", rep.model_name)
    elif rep.fitting_model is not None:
        r.add("model", f"{rep.fitting_model}; not used for this archive", rep.fitting_model)
    r.add("method", used + (f" ({rep.reason})" if rep.reason else ""), used)
    r.extend(reason=rep.reason)
    if rep.n_chunks > 1:
        r.add("chunks", f"{rep.n_chunks:,} independent chunks of up to {rep.chunk_items:,} items "
                        "(decode part with --range I:J)", rep.n_chunks, "n_chunks")
    r.add("archive", f"{out}: {fmt_bytes(rep.archive_bytes)}, " + (f"{bpd:.4f} bits/dim, " if bpd else "")
          + _ratio(inp.file_bytes, rep.archive_bytes), rep.archive_bytes, "archive_bytes")
    r.extend(output=out, bits_per_dim=bpd, input_bytes=inp.file_bytes)
    if rep.elbo_bits is not None and dims:
        elbo = rep.elbo_bits / dims
        r.add("-ELBO", f"{elbo:.4f} bits/dim (the model's own -ELBO on this data)", elbo, "neg_elbo_bits_per_dim")
        tail = "; includes the archive header and initial bits)" if used in BITS_BACK else ")"
        r.add("gap", f"{fmt_gap(bpd, elbo)} (archive rate relative to the -ELBO{tail}")
    if rep.iwae_bits is not None and dims:
        k, bound = rep.particles, rep.iwae_bits / dims
        r.add(f"IWAE-{k}", f"{bound:.4f} bits/dim (the model's {k}-sample bound, what {k} particles aim at); "
                           f"gap {fmt_gap(bpd, bound)}", bound, "iwae_bits_per_dim")
    rate = f", {rep.n_items / rep.seconds:,.0f} items/s" if rep.seconds else ""
    procs = f" with {jobs} process{'es' if jobs > 1 else ''}" if rep.n_chunks > 1 else ""
    r.add("time", f"{fmt_seconds(rep.seconds)} to code {rep.n_items:,} items{procs}{rate}", rep.seconds, "seconds")
    for note in inp.notes:
        r.add("note", note)
    return r


def schedule_summary(schedule, particles: bool) -> str:
    """'1, 2, 4, 8, 16, 32, 64, 100 x 97 (10,000 items in 104 batches)' from (items, particles, repeat) runs;
    with ``particles``, each batch size is labelled with its particle count: '1 [1p], 1 [2p] x 2, ...'."""
    if not schedule:
        return "none"
    merged: list[list] = []
    for items, k, rep in schedule:
        key = (int(items), int(k) if particles else None)
        if merged and merged[-1][0] == key:
            merged[-1][1] += int(rep)
        else:
            merged.append([key, int(rep)])
    label = [f"{s}" if k is None else f"{s} [{k}p]" for (s, k), _ in merged]
    parts = [lab if r == 1 else f"{lab} x {r}" for lab, (_, r) in zip(label, merged)]
    if len(parts) > 9:
        parts = parts[:5] + ["..."] + parts[-3:]
    items = sum(s * r for (s, _), r in merged)
    batches = sum(r for _, r in merged)
    return f"{', '.join(parts)} ({items:,} items in {batches:,} batches)"


def info_report(path, reader, container, chunk_headers=None) -> Report:
    """``bbans info`` of the archive ``reader`` (container/pipeline.py ``ArchiveReader``); ``chunk_headers``: the
    headers of a multi-chunk archive's chunks."""
    h = reader.header
    r = Report()
    shape = tuple(h.shape)
    dims = int(np.prod(shape, dtype=np.int64))
    bpd = 8 * h.archive_bytes / dims if dims else None
    r.extend(**{k: v for k, v in dataclasses.asdict(h).items() if k not in ("offsets",)})
    r.add("archive", f"{path}: {fmt_bytes(h.archive_bytes)}" + (f", {bpd:.4f} bits/dim" if bpd else ""))
    r.extend(n_items=h.n_items, bits_per_dim=bpd, container=container.kind,
             container_description=container.describe())
    r.add("format", f"bbans archive version {h.version}" + (", multi-chunk" if reader.chunked else ""))
    if reader.chunked:
        methods = Counter(c.method for c in chunk_headers)
        models = Counter(f"{c.model_name} (sha256 {c.model_sha256[:12]})" for c in chunk_headers if c.model_name)
        r.add("method", ", ".join(f"{m} ({n} chunk{'s' if n > 1 else ''})" for m, n in methods.most_common()))
        r.extend(method="chunked", chunk_methods=dict(methods), models=dict(models), chunk_bytes=h.lengths)
        if models:
            r.add("model", ", ".join(models))
    else:
        r.add("method", h.method + ("" if h.model_name else " (classical fallback, no model)"))
        if h.model_name:
            r.add("model", h.model_name)
            r.add("model sha256", h.model_sha256)
    r.add("data", f"{fmt_shape(shape)} {h.dtype} ({h.n_items:,} items of {fmt_shape(shape[1:])})")
    if reader.chunked:
        r.add("chunks", f"{h.n_chunks:,} of up to {h.chunk_items:,} items, each a complete archive "
                        f"({min(h.lengths):,}..{max(h.lengths):,} bytes)")
        r.add("data crc32", f"{h.data_crc32:08x} (whole data; each chunk has its own)")
    else:
        r.add("count", f"{h.n_items:,} items, {dims:,} values")
        r.add("data crc32", f"{h.data_crc32:08x}")
        if h.model_name:
            settings = h.coder_settings or {}
            r.add("batches", schedule_summary(h.schedule, h.method == "bits-back-is"))
            if h.method == "bits-back-is":
                r.add("particles", f"up to {h.particles} per item (Monte-Carlo bits-back; [Np]: N particles)")
            r.add("coder", ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "default")
            r.add("initial bits", f"{h.seed_words:,} seed words, {h.prefix_words:,} of them not stored")
        r.add("payload", f"{fmt_bytes(h.payload_bytes)}; header and checks "
                         f"{h.archive_bytes - h.payload_bytes:,} bytes")
    r.add("container", container.describe())
    return r


def decompress_line(out: str, kind: str, nbytes: int, shape: tuple, part: str, seconds: float) -> str:
    return (f"restored {out}: {kind if kind != 'none' else 'npy'} file, {fmt_bytes(nbytes)}, data {fmt_shape(shape)}"
            f"{part}, in {fmt_seconds(seconds)}; checksum verified")
