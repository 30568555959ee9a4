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

from .ui import fmt_bytes, fmt_gap, fmt_seconds, fmt_shape, kv, plural, short_sha

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
    if before <= 0:
        return "the input is empty"
    if after <= before:
        return f"{before / max(after, 1):.2f}x smaller than the input file"
    return f"{after / before:.2f}x LARGER than the input file"


def _elbo_not_computed(rep, dims: int, elbo_asked: bool) -> str | None:
    """Why the report has no -ELBO line, or None when there is nothing worth saying."""
    if not dims:
        return "the input holds no data values"
    if not elbo_asked:
        return "skipped (--no-elbo)" if rep.model_name or rep.fitting_model else None
    if not any(m in BITS_BACK for m in rep.methods):
        return None  # no model coded this archive: there is no bits-back rate to compare
    if any(m not in BITS_BACK for m in rep.methods):
        return "not computed: some chunks were coded with a classical codec, so it would not describe the archive"
    return f"not computed: the model {rep.model_name!r} does not report its -ELBO (no neg_elbo_bits method)"


def compress_report(inp, rep, out: str, jobs: int, *, elbo_asked: bool = True, verbose: bool = False) -> Report:
    """What ``bbans compress`` did with the input ``inp`` (cli/inputs.py): ``rep`` is the pipeline's report;
    ``elbo_asked``: whether the -ELBO pass was wanted (no --no-elbo); ``verbose`` (-v) adds the coder's details."""
    r = Report()
    dims = rep.raw_bytes
    bpd = 8 * rep.archive_bytes / dims if dims else None
    mapped = rep.n_chunks > 1 and hasattr(inp.source, "path")
    r.add("input", f"{inp.name}: {inp.description}; {fmt_bytes(inp.file_bytes)}"
          + (" (read one chunk at a time)" if mapped else ""), inp.name)
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
        r.add("chunks", f"{rep.n_chunks:,} independent chunks of up to {plural(rep.chunk_items, 'item')} "
                        "(decode part with --range I:J)", rep.n_chunks, "n_chunks")
    r.add("archive", f"{out}: {fmt_bytes(rep.archive_bytes)}, " + (f"{bpd:.4f} bits/dim, " if bpd else "")
          + _ratio(inp.file_bytes, rep.archive_bytes), rep.archive_bytes, "archive_bytes")
    r.extend(output=out, bits_per_dim=bpd, input_bytes=inp.file_bytes)
    bits_back = used in BITS_BACK
    if rep.elbo_bits is not None and dims:
        elbo = rep.elbo_bits / dims
        r.add("-ELBO", f"{elbo:.4f} bits/dim (the model's own -ELBO on this data)", elbo, "neg_elbo_bits_per_dim")
        if bits_back:
            r.add("gap", f"{fmt_gap(bpd, elbo)} (archive rate relative to the -ELBO; includes the archive header "
                         "and initial bits)")
    else:
        why = _elbo_not_computed(rep, dims, elbo_asked)
        if why is not None and (verbose or not why.startswith("skipped")):
            r.add("-ELBO", why)
        r.extend(neg_elbo_not_computed=why)
    if rep.iwae_bits is not None and dims:
        k, bound = rep.particles, rep.iwae_bits / dims
        gap = f"; gap {fmt_gap(bpd, bound)}" if bits_back else ""
        r.add(f"IWAE-{k}", f"{bound:.4f} bits/dim (the model's {k}-sample bound, what {k} particles aim at){gap}",
              bound, "iwae_bits_per_dim")
    if verbose:
        if rep.initial_bits:
            r.add("initial bits", f"{rep.initial_bits:,} bits ({rep.initial_bits / 8:,.0f} bytes): the one-off cost "
                                  "of bits-back's first pops", rep.initial_bits, "initial_bits")
        if rep.seed_items:
            r.add("seed", f"the first {plural(rep.seed_items, 'item')} coded under p(x | z = 0) without bits back: "
                          "the bits the first posterior pops take", rep.seed_items, "seed_items")
        if rep.payload_bits:
            r.add("payload", f"{rep.payload_bits:,} bits; header, schedule and checks "
                             f"{max(0, 8 * rep.archive_bytes - rep.payload_bits):,} bits", rep.payload_bits,
                  "payload_bits")
        if rep.schedule:
            r.add("batches", schedule_summary(rep.schedule, used == "bits-back-is"))
        if len(rep.methods) > 1:
            r.add("chunk methods", ", ".join(f"{m}: {plural(n, 'chunk')}" for m, n in rep.methods.most_common()))
    r.extend(methods=dict(rep.methods), initial_bits=rep.initial_bits, seed_items=rep.seed_items,
             payload_bits=rep.payload_bits)
    rate = f", {rep.n_items / rep.seconds:,.0f} items/s" if rep.seconds and rep.n_items > 1 else ""
    procs = f" with {plural(jobs, 'process', 'processes')}" if rep.n_chunks > 1 else ""
    r.add("time", f"{fmt_seconds(rep.seconds)} to code {plural(rep.n_items, 'item')}{procs}{rate}", rep.seconds,
          "seconds")
    for note in inp.notes:
        r.add("note", note)
    return r


def coder_line(h) -> str:
    """A layout-2 archive's coder settings and coding variant, read from the installed model its digest names (the
    archive stores only the digest); the digest alone when that model is not installed."""
    from bbans.bitsback.protocol import variant_of, with_digest
    from bbans.container.registry import find_model
    from bbans.errors import BBANSError

    digest = f"digest {h.settings_digest:0{h.digest_bits // 4}x}"
    try:
        model = with_digest(find_model(h.model_name, h.model_sha256), h.settings_digest, h.digest_bits)
    except BBANSError:
        return f"{digest} (its model is not installed, so the settings it names are unknown here)"
    items = {**dict(model.coder_settings), **{f"variant {k}": v for k, v in variant_of(model).items()}}
    return ", ".join(f"{k}={v}" for k, v in sorted(items.items())) + f" ({digest})"


def batch_runs(h) -> list | None:
    """The (items, particles, repeat) runs of a layout-2 or 3 bits-back archive's ramp (bitsback/schedule.py), or None
    when the header claims more items than its payload could hold (a corrupt archive: its ramp is not expanded)."""
    from bbans.bitsback.bounds import plausible_item_count
    from bbans.bitsback.schedule import Ramp, run_lengths

    n = chain_items(h)[0]
    if not plausible_item_count(n, -(-h.payload_bytes // 4)):  # layout 3 stores the top word's low bytes only
        return None
    return run_lengths(Ramp(*h.ramp, particles=h.particles).batches(n - h.seed_items))


def chain_items(h) -> tuple[int, str]:
    """(the items of a bits-back archive's chain, their name): its items, or for an installed image model the
    images' tiles (bbans/container/tiles.py)."""
    from bbans.container import registry, tiles

    tile = registry.listed_tile_size(h.model_sha256) if h.model_sha256 and len(h.shape) == 4 else 0
    return (tiles.tile_count(h.shape, tile), "tile") if tile else (h.n_items, "item")


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
    return f"{', '.join(parts)} ({plural(items, 'item')} in {plural(batches, 'batch', 'batches')})"


def info_report(path, reader, container, chunk_headers=None) -> Report:
    """``bbans info`` of the archive ``reader`` (container/pipeline.py ``ArchiveReader``); ``chunk_headers``: the
    headers of a multi-chunk archive's chunks."""
    from bbans.container.archive import BITS_BACK_METHODS
    from bbans.container.registry import archive_model_name, listed_name

    h = reader.header
    r = Report()
    shape = tuple(h.shape)
    dims = int(np.prod(shape, dtype=np.int64))
    bpd = 8 * h.archive_bytes / dims if dims else None
    r.extend(**{k: v for k, v in dataclasses.asdict(h).items() if k not in ("offsets",)})
    if getattr(h, "model_sha256", None) and not getattr(h, "model_name", None):  # layout 3: the installed model's name
        r.extend(model_name=listed_name(h.model_sha256))
    r.add("archive", f"{path}: {fmt_bytes(h.archive_bytes)}" + (f", {bpd:.4f} bits/dim" if bpd else ""))
    r.extend(n_items=h.n_items, bits_per_dim=bpd, container=container.kind,
             container_description=container.describe(shape))
    r.add("format", f"bbans archive version {h.version}" + (", multi-chunk" if reader.chunked else ""))
    if reader.chunked:
        methods = Counter(c.method for c in chunk_headers)
        models = Counter(f"{archive_model_name(c.model_name, c.model_sha256)} (sha256 {c.model_sha256[:12]})"
                         for c in chunk_headers if c.method in BITS_BACK_METHODS)
        r.add("method", ", ".join(f"{m} ({plural(n, 'chunk')})" for m, n in methods.most_common()))
        r.extend(method="chunked", chunk_methods=dict(methods), models=dict(models), chunk_bytes=h.lengths)
        if models:
            r.add("model", ", ".join(models))
    else:
        coded = h.method in BITS_BACK_METHODS
        r.add("method", h.method + ("" if coded else " (classical fallback, no model)"))
        if coded:
            r.add("model", archive_model_name(h.model_name, h.model_sha256))
            r.add("model sha256", h.model_sha256)
    r.add("data", f"{fmt_shape(shape)} {h.dtype} ({plural(h.n_items, 'item')} of {fmt_shape(shape[1:])})")
    if reader.chunked:
        r.add("chunks", f"{h.n_chunks:,} of up to {plural(h.chunk_items, 'item')}, each a complete archive "
                        f"({min(h.lengths):,}..{max(h.lengths):,} bytes)")
        r.add("data crc32", f"{h.data_crc32:08x} (whole data; each chunk has its own)")
    else:
        r.add("count", f"{plural(h.n_items, 'item')}, {plural(dims, 'value')}")
        r.add("data crc32", f"{h.data_crc32:08x}")
        if h.method in BITS_BACK_METHODS:
            runs = h.schedule if h.version == 1 else batch_runs(h)
            r.extend(schedule=runs)  # layout 2: the batches its ramp gives
            r.add("batches", schedule_summary(runs, h.method == "bits-back-is") if runs is not None
                  else "not listed (the archive claims more items than its payload can hold)")
            if h.method == "bits-back-is":
                r.add("particles", f"up to {h.particles} per item (Monte-Carlo bits-back; [Np]: N particles)")
            if h.version == 1:
                settings = h.coder_settings or {}
                r.add("coder", ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "default")
                r.add("initial bits", f"{h.seed_words:,} seed words, {h.prefix_words:,} of them not stored")
            else:
                r.add("coder", coder_line(h))
                start, net, pop, size = h.ramp
                n, unit = chain_items(h)
                if unit == "tile":
                    r.add("tiles", f"{n:,}: the chain's items (the image model codes images as tiles)")
                r.add("seed", f"the first {plural(h.seed_items, unit)} coded under p(x | z = 0); batch ramp: "
                              f"{start:,} bits after the seed, +{net:,} per {unit}, {pop:,} per pop, batches of up "
                              f"to {size:,}")
        r.add("payload", f"{fmt_bytes(h.payload_bytes)}; header and checks "
                         f"{h.archive_bytes - h.payload_bytes:,} bytes")
    r.add("container", container.describe(shape))
    return r


def decompress_report(done, seconds: float, item_range: str | None, verbose: bool = False) -> Report:
    """What ``bbans decompress`` did (``done``: restore.Restored)."""
    r = Report()
    kind = done.kind if done.kind != "none" else "npy"
    part = "" if done.whole else (f" (items {item_range}: {done.chunks_read} of "
                                  f"{plural(done.chunks, 'chunk')} decoded)")
    r.add("restored", f"{done.out}: {kind} file, {fmt_bytes(done.nbytes)}, data {fmt_shape(done.shape)}{part}, in "
                      f"{fmt_seconds(seconds)}; checksum verified", done.out, "output")
    r.extend(archive=done.archive, kind=kind, bytes=done.nbytes, shape=list(done.shape), whole=done.whole,
             chunks_decoded=done.chunks_read, chunks=done.chunks, seconds=seconds, verified=True)
    if verbose:
        r.add("archive", f"{done.archive}: {fmt_bytes(done.archive_bytes)}, {done.method}"
                         + (f", model {done.model}" if done.model else ""))
        r.add("container", done.container)
    r.extend(archive_bytes=done.archive_bytes, method=done.method, model=done.model)
    if done.kind == "idx" and done.gzip:
        r.add("note", "the original was gzip-compressed; this is the uncompressed IDX file "
                      "(gzip it again if you need the .gz)")
    elif done.kind == "png":
        r.add("note", "PNG pixels and every other chunk are identical to the original; the pixel data is "
                      "compressed anew, so the file bytes may differ")
    return r


def test_report(name: str, t, seconds: float, verbose: bool = False) -> Report:
    """What ``bbans test`` found in one archive (``t``: restore.Tested)."""
    r = Report()
    r.add(name, f"ok: {t.kind} file, data {fmt_shape(t.shape)}, {fmt_bytes(t.archive_bytes)}, {t.method}"
                + (f" ({plural(t.chunks, 'chunk')})" if t.chunks > 1 else "")
                + f"; every checksum verified in {fmt_seconds(seconds)}", "ok", "status")
    r.extend(archive=name, kind=t.kind, shape=list(t.shape), archive_bytes=t.archive_bytes, method=t.method,
             model=t.model, chunks=t.chunks, seconds=seconds)
    if verbose:
        r.add("container", t.container)
    return r


def folder_report(folder, rep, out: str) -> Report:
    """What ``bbans compress DIR`` did (``rep``: the pipeline's ``CollectionReport``)."""
    r = Report()
    n = len(rep.members)
    values = rep.raw_bytes
    r.add("input", f"{folder}: a folder of {plural(n, 'file')}", str(folder))
    r.add("method", ", ".join(f"{m} ({plural(k, 'file')})" for m, k in rep.methods.most_common()),
          dict(rep.methods), "methods")
    bpd = 8 * rep.archive_bytes / values if values else None
    r.add("archive", f"{out}: {fmt_bytes(rep.archive_bytes)}" + (f", {bpd:.4f} bits per value (sub-pixel) over "
                                                                 f"{values:,} values" if bpd else ""),
          rep.archive_bytes, "archive_bytes")
    r.extend(output=out, bits_per_dim=bpd, values=values,
             files=[{"name": name, "method": m.method, "archive_bytes": m.archive_bytes} for name, m in rep.members])
    r.add("time", f"{fmt_seconds(rep.seconds)} to code {plural(n, 'file')}", rep.seconds, "seconds")
    return r


def collection_report(path, index, out: str | None = None, done=None, seconds: float | None = None) -> Report:
    """``bbans info`` of a collection (``index``: collection.CollectionIndex), or what ``bbans decompress`` restored
    from it (``done``: (name, bytes written) per member, into ``out``)."""
    r = Report()
    r.add("archive", f"{path}: {fmt_bytes(index.archive_bytes)}, a collection of {plural(index.n_members, 'file')}",
          str(path))
    r.extend(method="collection", version=index.version, archive_bytes=index.archive_bytes, names=index.names,
             member_bytes=index.lengths)
    if done is None:
        for name, length in zip(index.names, index.lengths):
            r.add("member", f"{name} ({fmt_bytes(length)})")
    else:
        r.add("restored", f"{out}: {plural(len(done), 'file')}, {fmt_bytes(sum(b for _, b in done))}, in "
                          f"{fmt_seconds(seconds)}; every checksum verified", out, "output")
    return r
