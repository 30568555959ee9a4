"""``bbans compress`` for inputs of more than one chunk: a chunked archive (bbans/chunked.py) streamed into a
temporary file beside the output (or to standard output), coded by ``-j`` processes, with its report."""
from __future__ import annotations

import click

from bbans.errors import BBANSError

from .streams import Input, Sink
from .ui import Progress, fmt_bytes, fmt_gap, fmt_seconds, fmt_shape, kv

CLASSICAL = ("deflate", "lzma", "bz2", "stored")


def compress_chunked(inp: Input, out, *, model_ref, method: str, batch_size: int, force: bool, jobs: int,
                     chunk_items, want_elbo: bool, particles: int = 1) -> None:
    """Write the chunked archive of ``inp`` to ``out`` (None: stdout) and print what was done (to stderr with
    stdout output). Each chunk picks its own method as ``bbans.compress`` would (``method`` "auto")."""
    from concurrent.futures.process import BrokenProcessPool

    from bbans.container.pipeline import compress_to

    opts = {"particles": particles} if particles != 1 else {}
    with Sink(out, force) as sink, Progress("compressing") as progress:
        try:
            rep = compress_to(sink, inp.source, model_ref=model_ref if method not in CLASSICAL else None,
                              method=method, chunk_items=chunk_items, batch_size=batch_size, extra=inp.info,
                              jobs=jobs, want_elbo=want_elbo and method not in CLASSICAL, progress=progress,
                              coder_options=opts)
        except BrokenProcessPool:
            raise BBANSError("a worker process died (out of memory?); try fewer --jobs or smaller --chunk-items") \
                from None
        except BBANSError as exc:
            raise type(exc)(f"{inp.name}: {exc}") from None
        sink.commit()
    dims = rep.raw_bytes
    bpd = 8 * rep.archive_bytes / dims
    size = inp.file_bytes
    ratio = (f"{size / max(rep.archive_bytes, 1):.2f}x smaller than the input file" if rep.archive_bytes <= size
             else f"{rep.archive_bytes / max(size, 1):.2f}x LARGER than the input file")
    rows = [
        ("input", f"{inp.name}: {inp.description}; {fmt_bytes(size)}"
                  + (" (memory-mapped, read one chunk at a time)" if hasattr(inp.source, "path") else "")),
        ("data", f"{fmt_shape(inp.shape)} uint8"),
        ("method", f"{rep.method}" + (f" ({rep.reason})" if rep.reason else "")),
        ("chunks", f"{rep.n_chunks:,} independent chunks of up to {rep.chunk_items:,} items "
                   f"(decode part with --range I:J)"),
        ("archive", f"{out or 'stdout'}: {fmt_bytes(rep.archive_bytes)}, {bpd:.4f} bits/dim, {ratio}"),
    ]
    if rep.elbo_bits is not None:
        elbo = rep.elbo_bits / dims
        rows.append(("-ELBO", f"{elbo:.4f} bits/dim (the model's own -ELBO on this data)"))
        rows.append(("gap", f"{fmt_gap(bpd, elbo)} (archive rate relative to the -ELBO; includes headers and "
                            "each chunk's initial bits)"))
    rate = f", {inp.n_items / rep.seconds:,.0f} items/s" if rep.seconds else ""
    rows.append(("time", f"{fmt_seconds(rep.seconds)} to code {inp.n_items:,} items with {jobs} "
                         f"process{'es' if jobs > 1 else ''}{rate}"))
    click.echo(kv(rows), err=out is None)
    for note in inp.notes:
        click.echo(f"note: {note}", err=out is None)


def chunked_info(path, as_json: bool) -> None:
    """``bbans info`` of a multi-chunk archive: its index and each chunk's header (read one chunk at a time)."""
    import json
    from collections import Counter

    from bbans.container import chunked
    from bbans.container.archive import read_header
    from bbans.errors import ArchiveError

    from . import formats

    try:
        with open(path, "rb") as f:
            h = chunked.read_index(f)
            container = formats.parse_info(h.extra)
            methods, models = Counter(), Counter()
            for k in range(h.n_chunks):
                ch = read_header(chunked.read_at(f, h.offsets[k], h.lengths[k]))
                chunked.check_chunk_header(ch, h, k)
                methods[ch.method] += 1
                if ch.model_name is not None:
                    models[f"{ch.model_name} (sha256 {ch.model_sha256[:12]})"] += 1
    except ArchiveError as exc:
        raise ArchiveError(f"{path}: {exc}") from None
    dims = 1
    for d in h.shape:
        dims *= int(d)
    bpd = 8 * h.archive_bytes / dims if dims else None
    if as_json:
        click.echo(json.dumps({"method": "chunked", "version": h.version, "shape": list(h.shape), "dtype": h.dtype,
                               "n_items": h.n_items, "chunk_items": h.chunk_items, "n_chunks": h.n_chunks,
                               "chunk_bytes": h.lengths, "chunk_methods": dict(methods), "models": dict(models),
                               "data_crc32": h.data_crc32, "archive_bytes": h.archive_bytes, "bits_per_dim": bpd,
                               "container": container.kind, "container_description": container.describe()},
                              indent=2))
        return
    rows = [
        ("archive", f"{path}: {fmt_bytes(h.archive_bytes)}" + (f", {bpd:.4f} bits/dim" if bpd is not None else "")),
        ("format", f"bbans archive version {h.version}, multi-chunk"),
        ("method", ", ".join(f"{m} ({n} chunk{'s' if n > 1 else ''})" for m, n in methods.most_common())),
    ]
    if models:
        rows.append(("model", ", ".join(models)))
    rows += [
        ("data", f"{fmt_shape(h.shape)} {h.dtype} ({h.n_items:,} items of {fmt_shape(h.shape[1:])})"),
        ("chunks", f"{h.n_chunks:,} of up to {h.chunk_items:,} items, each a complete archive "
                   f"({min(h.lengths):,}..{max(h.lengths):,} bytes)"),
        ("data crc32", f"{h.data_crc32:08x} (whole data; each chunk has its own)"),
        ("container", container.describe()),
    ]
    click.echo(kv(rows))
