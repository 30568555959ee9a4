"""The ``bbans`` command line: compress, decompress, info, eval, models, train.

Everything heavy (the core's coder, the model registry, torch) is imported inside the commands so that
``bbans --help`` answers at once.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import click
import numpy as np

from bbans.errors import ArchiveError, BBANSError, InputError, ModelError
from bbans_models.datasets import RECIPES  # plain data: imports no torch

from . import formats, streams
from .ui import (OutputError, Progress, check_output, field, fmt_bytes, fmt_gap, fmt_seconds, fmt_shape, kv,
                 move_into_place, short_sha, table, temp_path_beside, write_atomic)

METHODS = ("auto", "bits-back", "deflate", "lzma", "bz2", "stored")
BITS_BACK = ("bits-back", "bits-back-is")  # archive methods coded with a model
CLASSICAL = ("deflate", "lzma", "bz2", "stored")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class BBANSGroup(click.Group):
    """Turns project errors into ``bbans: error: ...`` with the error's exit code, and Ctrl-C into exit 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BBANSError as exc:
            if os.environ.get("BBANS_DEBUG"):
                raise
            click.echo(f"bbans: error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt:
            click.echo("\nbbans: interrupted; no output file was written", err=True)
            ctx.exit(130)
        except MemoryError:
            click.echo("bbans: error: out of memory; code the data in smaller files", err=True)
            ctx.exit(1)
        except OSError as exc:  # disk full, permission denied while writing, ...
            if os.environ.get("BBANS_DEBUG"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"bbans: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)


@click.group(cls=BBANSGroup, context_settings=CONTEXT, epilog="""\b
Examples:
  bbans compress t10k-images.idx3-ubyte.gz      # -> t10k-images.idx3-ubyte.gz.bba
  bbans decompress t10k-images.idx3-ubyte.gz.bba  # -> t10k-images.idx3-ubyte (uncompressed IDX)
  bbans info digits.npy.bba
  bbans eval digits.npy --limit 1000
  bbans models

\b
Exit codes: 0 ok, 1 output or other error, 2 bad input or usage, 3 corrupt archive,
4 model missing or unfit, 130 interrupted. BBANS_DEBUG=1 shows tracebacks.
""")
@click.version_option(package_name="bbans", prog_name="bbans")
def cli():
    """Lossless compression of image data with bits-back coding (BB-ANS) over VAEs.

    A trained latent-variable model (a VAE) is turned into a lossless code: each item costs about the
    model's -ELBO in bits. Inputs are uint8 (or bool) .npy arrays, MNIST IDX files (plain or .gz) and PNG images;
    any other file is compressed as raw bytes with a classical codec.
    """


# ------------------------------------------------------------------------------------------------ helpers


def _prefixed(exc: BBANSError, name: str) -> BBANSError:
    """The same kind of error with the file name in front (keeps the exit code)."""
    msg = str(exc)
    if msg.startswith(f"{name}:"):
        return exc
    try:
        new = type(exc)(f"{name}: {msg}")
    except Exception:
        new = BBANSError(f"{name}: {msg}")
        new.exit_code = getattr(exc, "exit_code", 1)
    return new


def _describe_model(m) -> str:
    shape = field(m, "data_shape", default=())
    lo, hi = field(m, "value_range", default=("?", "?"))
    return f"{field(m, 'name', default='?')} (items {fmt_shape(shape)}, values {lo}..{hi})"


def _installed_models_text() -> str:
    from bbans.container import registry

    try:
        models = registry.list_models()
    except BBANSError:
        models = []
    if not models:
        return "no models are installed (train one with 'bbans train')"
    return "installed models:\n" + "\n".join(f"  {_describe_model(m)}" for m in models)


def _value_range(data: np.ndarray) -> str:
    return f"{int(data.min())}..{int(data.max())}" if data.size else "none"


def _pick_model(data: np.ndarray, model_ref: str | None):
    """The model named by --model, checked against the data, or the registry's default for the data."""
    from bbans.container import registry
    from bbans.bitsback.protocol import model_fits

    if model_ref:
        model = _load_model_ref(model_ref)
        if not model_fits(model, data):
            raise ModelError(f"model {_describe_model(model)} does not fit the data (items "
                             f"{fmt_shape(data.shape[1:])}, values {_value_range(data)}); "
                             + _installed_models_text())
        return model
    model = registry.default_model_for(data)
    if model is None:
        raise ModelError(f"no installed model fits this data (items {fmt_shape(data.shape[1:])}, values "
                         f"{_value_range(data)}); " + _installed_models_text()
                         + "\nchoose a model with --model NAME|PATH, train one with 'bbans train', "
                         "or compress without a model using --method lzma")
    return model


def _default_model_or_none(data: np.ndarray):
    """The installed model that fits ``data``, or None (none fits, or it failed to load)."""
    from bbans.container import registry

    try:
        return registry.default_model_for(data)
    except BBANSError:
        return None


def _load_model_ref(ref: str):
    """An installed model by name, or a weights file by path (a missing path gets a plain 'no such file')."""
    from bbans.container import registry

    p = Path(ref)
    looks_like_path = os.sep in ref or "/" in ref or p.suffix in (".safetensors", ".st", ".bin", ".pt")
    if looks_like_path and not p.exists():
        raise ModelError(f"--model {ref}: no such file")
    if looks_like_path and p.is_dir():
        raise ModelError(f"--model {ref}: is a directory, not a weights file")
    return registry.load_model(ref)


def _per_item_bits(fn, data: np.ndarray, chunk: int, progress=None) -> np.ndarray:
    out = []
    for i in range(0, len(data), chunk):
        out.append(np.asarray(fn(data[i:i + chunk]), dtype=np.float64).reshape(-1))
        if progress:
            progress(min(i + chunk, len(data)), len(data))
    return np.concatenate(out) if out else np.zeros(0)


def _neg_elbo_bpd(model, data: np.ndarray, progress=None) -> float | None:
    fn = getattr(model, "neg_elbo_bits", None)
    if fn is None or data.size == 0:
        return None
    return float(_per_item_bits(fn, data, 500, progress).sum() / data.size)


def _iwae_bpd(model, data: np.ndarray, k: int, progress=None) -> float | None:
    """The model's k-sample importance-weighted bound (IWAE-k; k = 1 is the -ELBO), bits/dim; None if unknown."""
    fn = getattr(model, "iwae_bits", None)
    if fn is None or data.size == 0:
        return None
    chunk = max(1, min(500, 20_000 // k))
    return float(_per_item_bits(lambda x: fn(x, k), data, chunk, progress).sum() / data.size)


def _load_archive(path: Path):
    """(blob, header, container) of an archive file; errors name the file."""
    from bbans.container.archive import read_header

    blob = formats.read_input_bytes(path)
    try:
        header = read_header(blob)
        container = formats.parse_info(field(header, "extra", default=b"") or b"")
    except ArchiveError as exc:
        raise _prefixed(exc, str(path)) from None
    return blob, header, container


def _ratio(before: int, after: int) -> str:
    if after <= before:
        return f"{before / max(after, 1):.2f}x smaller than the input file"
    return f"{after / max(before, 1):.2f}x LARGER than the input file"


def _output_for(output: Path | None, default_name: Path) -> Path:
    if output is None:
        return default_name
    if output.is_dir():
        return output / default_name.name
    return output


# ----------------------------------------------------------------------------------------------- compress


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  bbans compress t10k-images.idx3-ubyte.gz
  bbans compress digits.npy -o /tmp/digits.bba --batch-size 200
  bbans compress digit.png --model mnist
  bbans compress t10k-images.idx3-ubyte.gz --method lzma   # no model: classical codec
  bbans compress digits.npy --model ./my-model.safetensors -f

\b
Inputs (detected by content, not by name):
  .npy   uint8 or bool, C order, (N,H,W), (N,H,W,C) or one (H,W) image: restored
         byte for byte
  IDX    MNIST files, plain or gzip-compressed: restored byte for byte, a .gz input
         as the uncompressed IDX file (gzip output differs between gzip programs)
  PNG    one 8-bit image (modes 1, L, P, LA, RGB, RGBA): restored with identical pixels,
         mode, palette and transparency, but not identical file bytes
  other  any other file (text, random bytes, a 16-bit PNG, a float .npy, ...): its raw
         bytes, coded with the smallest classical codec and restored byte for byte

\b
No model fits (or the model would do worse): --method auto picks the smallest classical
codec and says why; the archive is never more than the input file plus a small header
(about 25 bytes, plus ~30 bytes per chunk). Inputs of more than one chunk (default
10,000 items, at most 8 MiB; --chunk-items) become a multi-chunk archive: .npy, IDX and
raw inputs are read through a memory map one chunk at a time (memory does not grow with
the input), -j N codes chunks in N processes with identical output for any N, and
'bbans decompress --range I:J' decodes only the chunks holding items I..J-1.
The archive is written to a temporary file and renamed when complete; the input is
kept unless --rm; '-' reads standard input (and writes the archive to stdout).

\b
Examples of the above:
  bbans compress notes.txt                        # raw bytes, lzma/bz2/deflate/stored
  bbans compress train-images.npy -j 2 --no-elbo  # 60,000 items: 6 chunks, 2 processes
  tar c photos | bbans compress - > photos.tar.bba
""")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Archive path (default: FILE.bba); a folder puts FILE.bba there.")
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH",
              help="Model to code with: an installed model's name or a weights file (default: the installed model that fits the data).")
@click.option("-b", "--batch-size", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              help="Items per network call; larger is faster, the archive rate barely changes.")
@click.option("-f", "--force", is_flag=True, help="Overwrite the output if it exists.")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: bits-back with the model, or a classical codec when that is smaller (small inputs); "
                   "bits-back: always; deflate/lzma/bz2/stored: a classical codec, no model needed.")
@click.option("-p", "--particles", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Monte-Carlo bits-back with K importance-sampled particles per item: the rate drops from the "
                   "-ELBO toward the IWAE-K bound, at about K times the model work. 1: standard bits-back.")
@click.option("--no-elbo", is_flag=True, help="Skip the model's -ELBO comparison (saves one pass of the model over the data).")
@click.option("-c", "--stdout", "to_stdout", is_flag=True,
              help="Write the archive to standard output (FILE '-' reads standard input and implies -c unless -o).")
@click.option("-k", "--keep", is_flag=True, help="Keep the input file (the default, as with gzip -k).")
@click.option("--rm", "remove", is_flag=True, help="Delete the input file once the archive is complete.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes coding chunks in parallel (inputs of several chunks); the archive is the same for any N.")
@click.option("--chunk-items", type=click.IntRange(1, None),
              help="Items per chunk; inputs with more items become a multi-chunk archive [default: 10,000 items "
                   "and at most 8 MiB per chunk; raw bytes: 8 MiB].")
def compress(file: Path, output: Path | None, model_ref: str | None, batch_size: int, force: bool, method: str,
             particles: int, no_elbo: bool, to_stdout: bool, keep: bool, remove: bool, jobs: int,
             chunk_items: int | None):
    """Compress FILE into a .bba archive with bits-back coding.

    Prints the archive size and rate in bits per dimension (bits/dim: archive bits divided by the number of
    pixel values), next to the model's own -ELBO on the same data: bits-back coding should land within a
    fraction of a percent of it, plus a small fixed cost per archive.
    """
    import bbans

    from bbans.container.chunked import default_chunk_items

    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    loaded = streams.open_input(file)  # '-' = stdin; .npy, IDX and raw bytes are memory-mapped, not read whole
    to_stdout = to_stdout or (loaded.from_stdin and output is None)
    out = None if to_stdout else _output_for(output, file.with_name(file.name + ".bba"))
    streams.refuse_terminal_stdout() if to_stdout else check_output(out, force)
    if loaded.n_items > (chunk_items or default_chunk_items(loaded.item_bytes)):
        from .bigfiles import compress_chunked

        compress_chunked(loaded, out, model_ref=model_ref, method=method, batch_size=batch_size, force=force,
                         jobs=jobs, chunk_items=chunk_items, want_elbo=not no_elbo, particles=particles)
        if remove:
            streams.remove_input(loaded.path, loaded.from_stdin)
        return
    data = loaded.source.read(0, loaded.n_items)
    classical = method in CLASSICAL
    if model_ref or method in BITS_BACK:
        model = _pick_model(data, model_ref)
    else:  # auto: the installed model that fits, if any; otherwise compress falls back to a classical codec
        model = None if classical else _default_model_or_none(data)

    t0 = time.perf_counter()
    with Progress("compressing") as progress:
        try:
            blob, report = bbans.compress_with_report(data, model, batch_size=batch_size, extra=loaded.info,
                                                      method=method, progress=progress, particles=particles)
        except InputError as exc:
            raise _prefixed(exc, str(file)) from None
    seconds = field(report, "seconds", default=None) or (time.perf_counter() - t0)
    if loaded.kind != "raw" and method == "auto" and len(blob) > loaded.file_bytes:  # e.g. a PNG: its own bytes
        blob, report = streams.raw_file_archive(loaded, blob, report)
    if to_stdout:
        click.get_binary_stream("stdout").write(blob)
        click.get_binary_stream("stdout").flush()
    else:
        write_atomic(out, blob, force)
    if remove:
        streams.remove_input(loaded.path, loaded.from_stdin)

    dims = data.size
    bpd = 8 * len(blob) / dims if dims else float("nan")
    in_size = loaded.file_bytes
    used = field(report, "method", default="?")
    reason = field(report, "reason", default="")
    rows = [
        ("input", f"{loaded.name}: {loaded.description}; {fmt_bytes(in_size)}"),
        ("data", f"{fmt_shape(data.shape)} uint8, values {_value_range(data)}"),
    ]
    if model is not None:
        rows.append(("model", f"{model.name} (sha256 {short_sha(model.sha256)})"
                              + ("" if used in BITS_BACK else "; not used for this archive")))
    rows += [
        ("method", f"{used}" + (f" ({reason})" if reason else "")),
        ("archive", f"{out or 'stdout'}: {fmt_bytes(len(blob))}, "
                    + (f"{bpd:.4f} bits/dim, " if dims else "") + _ratio(in_size, len(blob))),
    ]
    if model is not None and not no_elbo:
        t1 = time.perf_counter()
        with Progress("-ELBO") as progress:
            elbo = _neg_elbo_bpd(model, data, progress)
        if elbo is None:
            rows.append(("-ELBO", "n/a (the model does not report its -ELBO)"))
        else:
            rows.append(("-ELBO", f"{elbo:.4f} bits/dim (the model's own -ELBO on this data, "
                                  f"{fmt_seconds(time.perf_counter() - t1)})"))
            rows.append(("gap", f"{fmt_gap(bpd, elbo)} (archive rate relative to the -ELBO"
                                + ("; includes the archive header and initial bits)" if used in BITS_BACK
                                   else ")")))
        if used == "bits-back-is":
            t1 = time.perf_counter()
            with Progress(f"IWAE-{particles}") as progress:
                bound = _iwae_bpd(model, data, particles, progress)
            if bound is not None:
                rows.append((f"IWAE-{particles}", f"{bound:.4f} bits/dim (the model's {particles}-sample bound, "
                             f"what {particles} particles aim at, {fmt_seconds(time.perf_counter() - t1)}); "
                             f"gap {fmt_gap(bpd, bound)}"))
    rate = f", {len(data) / seconds:,.0f} items/s" if seconds else ""
    rows.append(("time", f"{fmt_seconds(seconds)} to code {len(data):,} items{rate}"))
    click.echo(kv(rows), err=to_stdout)
    for note in loaded.notes:
        click.echo(f"note: {note}", err=to_stdout)


# --------------------------------------------------------------------------------------------- decompress


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  bbans decompress digits.npy.bba                  # -> digits.npy
  bbans decompress t10k-images.idx3-ubyte.gz.bba   # -> t10k-images.idx3-ubyte
  bbans decompress a.bba -o restored.npy -f
  bbans decompress a.bba --model ./my-model.safetensors
  bbans decompress train.npy.bba --range 20000:20100 -o some.npy   # only the chunk(s) holding them
  bbans decompress big.npy.bba -j 2 --rm
  cat a.bba | bbans decompress - > a.npy

\b
The data's checksums are verified before the output appears: it is written to a
temporary file beside it and renamed only when complete. With -c, a multi-chunk
archive is written chunk by chunk as each chunk verifies; a failure then exits
non-zero after partial output. --range I:J restores items I..J-1 as a file of the
same kind (npy/IDX header rewritten for J-I items; raw files: bytes I..J-1).
""")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output path (default: FILE without .bba; a gzip IDX input comes back without .gz too).")
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH",
              help="Model weights file to decode with, when the archive's model is not installed "
                   "(its sha256 must match the archive's).")
@click.option("-f", "--force", is_flag=True, help="Overwrite the output if it exists.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True,
              help="Write to standard output (FILE '-' reads the archive from standard input and implies -c "
                   "unless -o).")
@click.option("-k", "--keep", is_flag=True, help="Keep the archive (the default, as with gzip -k).")
@click.option("--rm", "remove", is_flag=True, help="Delete the archive once the output is complete.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes decoding chunks in parallel (multi-chunk archives).")
@click.option("--range", "item_range", metavar="I:J",
              help="Restore only items I..J-1 (0-based); decodes only the chunks that hold them.")
def decompress(file: Path, output: Path | None, model_ref: str | None, force: bool, to_stdout: bool, keep: bool,
               remove: bool, jobs: int, item_range: str | None):
    """Restore the file compressed into FILE (a .bba archive), exactly."""
    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    from_stdin = str(file) == streams.STDIN
    to_stdout = to_stdout or (from_stdin and output is None)
    model = _load_model_ref(model_ref) if model_ref and jobs == 1 else None
    name = Path("stdin.bba") if from_stdin else file

    def target(container):
        return None if to_stdout else _output_for(output, formats.default_output(name, container))

    t0 = time.perf_counter()
    with Progress("decompressing") as progress:
        try:
            done = streams.decompress_file(file, model, model_ref, force, item_range, jobs, progress, target)
        except ModelError as exc:
            hint = "" if model_ref else " (if you have the model's weights file, pass it with --model PATH)"
            raise ModelError(f"{file}: {exc}{hint}") from None
        except (ArchiveError, InputError) as exc:
            raise _prefixed(exc, str(file)) from None
    seconds = time.perf_counter() - t0
    if remove and not from_stdin:
        os.unlink(file)
    part = "" if done.whole else f" (items {item_range}: {done.chunks_read} of {done.chunks} chunks decoded)"
    click.echo(f"restored {done.out}: {done.kind if done.kind != 'none' else 'npy'} file, {fmt_bytes(done.nbytes)}, "
               f"data {fmt_shape(done.shape)}{part}, in {fmt_seconds(seconds)}; checksum verified", err=to_stdout)
    if done.kind == "idx" and done.gzip:
        click.echo("note: the original was gzip-compressed; this is the uncompressed IDX file "
                   "(gzip it again if you need the .gz)", err=to_stdout)
    elif done.kind == "png":
        click.echo("note: PNG pixels are identical to the original; the file bytes may differ", err=to_stdout)


# --------------------------------------------------------------------------------------------------- info


def _schedule_summary(schedule) -> str:
    """'1, 2, 4, 8, 16, 32, 64, 100 x 97 (10,000 items in 104 batches)' from (size, repeat) pairs, or from
    (size, particles, repeat) triples: '1 [1p], 1 [2p] x 2, ..., 20 [50p] x 499 (...)'."""
    if not schedule:
        return "none"
    try:
        runs = [((int(r[0]), int(r[1])) if len(r) == 3 else (int(r[0]), None), int(r[-1])) for r in schedule]
    except (TypeError, ValueError, IndexError):
        return str(schedule)
    merged: list[list] = []
    for key, rep in runs:
        if merged and merged[-1][0] == key:
            merged[-1][1] += rep
        else:
            merged.append([key, rep])
    label = [f"{s}" if k is None else f"{s} [{k}p]" for (s, k), _ in merged]
    parts = [lab if r == 1 else f"{lab} x {r}" for lab, (_, r) in zip(label, merged)]
    if len(parts) > 9:
        parts = parts[:5] + ["..."] + parts[-3:]
    items = sum(s * r for (s, _), r in merged)
    batches = sum(r for _, r in merged)
    return f"{', '.join(parts)} ({items:,} items in {batches:,} batches)"


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  bbans info digits.npy.bba
  bbans info digits.npy.bba --json | python -m json.tool
""")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(file: Path, as_json: bool):
    """Show an archive's header without decoding it.

    Method, model identity, data shape and count, batch schedule, coder settings, the kind of file that
    decompress will restore, and the archive's size and rate.
    """
    if streams.is_chunked_file(file):
        from .bigfiles import chunked_info

        return chunked_info(file, as_json)
    blob, header, container = _load_archive(file)
    shape = tuple(header.shape)
    dims = int(np.prod(shape, dtype=np.int64))
    bpd = 8 * len(blob) / dims if dims else None
    if as_json:
        d = {k: _jsonable(v) for k, v in dataclasses.asdict(header).items()}
        d.update(n_items=header.n_items, bits_per_dim=bpd, container=container.kind,
                 container_description=container.describe())
        click.echo(json.dumps(d, indent=2))
        return
    bits_back = header.model_name is not None
    rows = [
        ("archive", f"{file}: {fmt_bytes(len(blob))}" + (f", {bpd:.4f} bits/dim" if bpd is not None else "")),
        ("format", f"bbans archive version {header.version}"),
        ("method", header.method + ("" if bits_back else " (classical fallback, no model)")),
    ]
    if bits_back:
        rows += [("model", header.model_name), ("model sha256", header.model_sha256)]
    rows += [
        ("data", f"{fmt_shape(shape)} {header.dtype} ({header.n_items:,} items of {fmt_shape(shape[1:])})"),
        ("count", f"{header.n_items:,} items, {dims:,} values"),
        ("data crc32", f"{header.data_crc32:08x}"),
    ]
    if bits_back:
        settings = header.coder_settings or {}
        rows += [
            ("batches", _schedule_summary(header.schedule)),
            *([("particles", f"up to {header.particles} per item (Monte-Carlo bits-back; [Np]: N particles)")]
              if header.method == "bits-back-is" else []),
            ("coder", ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "default"),
            ("initial bits", f"{header.seed_words:,} seed words, {header.prefix_words:,} of them not stored"),
        ]
    rows += [
        ("payload", f"{fmt_bytes(header.payload_bytes)}; header and checks {len(blob) - header.payload_bytes:,} bytes"),
        ("container", container.describe()),
    ]
    click.echo(kv(rows))


# --------------------------------------------------------------------------------------------------- eval


@cli.command(name="eval", context_settings=CONTEXT, epilog="""\b
Examples:
  bbans eval t10k-images.idx3-ubyte.gz --limit 1000
  bbans eval digits.npy --model ./my-model.safetensors --samples 200
  bbans eval digits.npy --classical
  bbans eval binarized.npy --particles 50      # Monte-Carlo bits-back vs its IWAE-50 bound
  bbans eval digits.npy -k 50 --iwae-k 5        # quicker estimates

\b
-ELBO is the rate bits-back coding aims at. The IWAE-k bound (k samples, default 10 as in
the seed's tables) lies between it and the NLL; the NLL estimate (250 samples by default,
also as in the seed) approaches the model's true negative log-likelihood, the best any coder
could do with this model. With --particles K the archive is coded with K importance-sampled
particles and aims at the IWAE-K bound instead, which is printed beside it. All figures are
bits per dimension (per pixel) over the whole data.
""")
@click.argument("data_file", metavar="DATA", type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH", help="Model (default: the installed model that fits the data).")
@click.option("-k", "--samples", type=click.IntRange(1, 100_000), default=250, show_default=True,
              help="Importance samples per item for the NLL estimate.")
@click.option("--iwae-k", type=click.IntRange(2, 100_000), default=10, show_default=True,
              help="Samples per item for the IWAE-k bound row.")
@click.option("-n", "--limit", type=click.IntRange(1, None), help="Use only the first N items.")
@click.option("-b", "--batch-size", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              help="Batch size for the archive.")
@click.option("-p", "--particles", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Particles per item for the archive (Monte-Carlo bits-back); above 1 the IWAE-K bound is shown.")
@click.option("--classical", is_flag=True, help="Also show gzip, bz2 and xz on the raw pixel bytes.")
def eval_(data_file: Path, model_ref: str | None, samples: int, iwae_k: int, limit: int | None, batch_size: int,
          particles: int, classical: bool):
    """Measure a model on DATA: -ELBO, NLL estimate and the real archive rate, in bits/dim.

    The archive (always bits-back, even where compress would pick a classical codec) is made in memory and
    decoded again to check the round trip; nothing is written.
    """
    import bbans

    loaded = formats.load(data_file)
    data = loaded.data[:limit] if limit else loaded.data
    data = np.ascontiguousarray(data)
    model = _pick_model(data, model_ref)
    dims = data.size
    click.echo(kv([
        ("data", f"{data_file}: {loaded.description}" + (f", first {len(data):,} items" if limit else "")),
        ("model", f"{model.name} (sha256 {short_sha(model.sha256)})"),
    ]))
    rows = []

    def timed(label, fn):
        t = time.perf_counter()
        with Progress(label) as progress:
            v = fn(progress)
        return v, time.perf_counter() - t

    elbo, t_elbo = timed("-ELBO", lambda p: _neg_elbo_bpd(model, data, p))
    rows.append(["-ELBO", f"{elbo:.4f}" if elbo is not None else "n/a", fmt_seconds(t_elbo),
                 "" if elbo is not None else "model has no neg_elbo_bits"])
    iwae_fn = getattr(model, "iwae_bits", None)
    nll = bound = None
    if iwae_fn is not None:
        for k in sorted({iwae_k, particles} - {1}):
            value, t_k = timed(f"IWAE-{k}", lambda p, k=k: _iwae_bpd(model, data, k, p))
            rows.append([f"IWAE-{k} bound", f"{value:.4f}", fmt_seconds(t_k),
                         "what the archive aims at" if k == particles else ""])
            bound = value if k == particles else bound
        nll, t_nll = timed(f"NLL k={samples}", lambda p: _iwae_bpd(model, data, samples, p))
        rows.append([f"NLL (IWAE, k={samples})", f"{nll:.4f}", fmt_seconds(t_nll), ""])
    else:
        rows.append([f"NLL (IWAE, k={samples})", "n/a", "", "model has no iwae_bits"])

    t = time.perf_counter()
    with Progress("compressing") as progress:
        blob, report = bbans.compress_with_report(data, model, batch_size=batch_size, method="bits-back",
                                                  progress=progress, particles=particles)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    with Progress("decompressing") as progress:
        back = bbans.decompress(blob, model, progress=progress)
    t_dec = time.perf_counter() - t
    back = np.asarray(back)
    if back.shape != data.shape or not np.array_equal(back, data):
        raise ArchiveError("round trip FAILED: the decoded data differs from the input "
                           "(this is a bug or a non-deterministic model; please report it)")
    bpd = 8 * len(blob) / dims
    method = field(report, "method", default="?")
    rows.append([f"archive ({method})", f"{bpd:.4f}", f"{fmt_seconds(t_enc)} + {fmt_seconds(t_dec)}",
                 f"{len(blob):,} bytes, encode + decode, round trip verified"])
    if classical:
        from bbans.container.classic import reference_input, reference_sizes

        raw, what = reference_input(data)
        for name, nbytes, secs in reference_sizes(raw):
            rows.append([name, f"{8 * nbytes / dims:.4f}", fmt_seconds(secs), what])
    click.echo()
    click.echo(table(rows, ["", "bits/dim", "time", ""]))
    gaps = []
    if elbo is not None:
        gaps.append(f"archive vs -ELBO {fmt_gap(bpd, elbo)}")
    if bound is not None:
        gaps.append(f"archive vs IWAE-{particles} {fmt_gap(bpd, bound)}")
    if nll is not None:
        gaps.append(f"archive vs NLL {fmt_gap(bpd, nll)}")
    if gaps:
        click.echo("\n" + ", ".join(gaps) + f" ({len(data):,} items, {dims:,} dims)")


# ------------------------------------------------------------------------------------------------- models


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  bbans models
  bbans models --json
""")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json: bool):
    """List the installed models (the ones compress can pick automatically)."""
    from bbans.container import registry

    entries = registry.list_models()
    if as_json:
        click.echo(json.dumps([_jsonable(dict(e)) for e in entries], indent=2))
        return
    if not entries:
        click.echo("no models are installed; train one with 'bbans train mnist --out model.safetensors'")
        return
    rows = []
    for e in entries:
        lo, hi = field(e, "value_range", default=("?", "?"))
        rows.append([field(e, "name", default="?"), fmt_shape(field(e, "data_shape", default=())), f"{lo}..{hi}",
                     short_sha(field(e, "sha256")), field(e, "description", default="") or ""])
    click.echo(table(rows, ["name", "items", "values", "sha256", "description"]))


# -------------------------------------------------------------------------------------------------- train




@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  bbans train mnist --out mnist.safetensors --minutes 60 --lr-schedule cosine
  bbans train binarized-mnist --out bin.safetensors --epochs 30 --device cuda
  bbans train mnist-small --out small.safetensors --minutes 20        # the faster one-layer model
  bbans train mnist --out m.safetensors --objective iwae --iwae-k 5   # train on the IWAE-5 bound
  bbans train mnist --out mnist.safetensors --minutes 90 --resume     # continue to 90 min in all
  bbans train mnist --out mnist.safetensors --resume --epochs 0       # export the checkpoint as is
  bbans compress digits.npy --model mnist.safetensors

\b
RECIPE names the architecture and data set of a shipped model:
  mnist                   8-bit MNIST: one latent layer, autoregressive 5-logistic mixture
  binarized-mnist         binarized MNIST: two latent layers, autoregressive Bernoulli
  mnist-small             8-bit MNIST: one latent layer, independent pixels (decodes faster)
  binarized-mnist-small   binarized MNIST: one latent layer, independent pixels
--latent-channels, --top-latent-channels and --ar-channels change its sizes.

\b
Training data comes from $BBANS_DATA (or a shared/data folder above the working
directory): mnist/*.idx3-ubyte.gz and binarized_mnist/*.amat. The float checkpoint
PATH.float.safetensors (weights and optimizer state) is saved after every epoch;
Ctrl-C keeps the last one, and --resume continues from it (--minutes and --epochs
then count the whole run). Progress lines show the running -ELBO in bits/dim.
""")
@click.argument("recipe", metavar="RECIPE", type=click.Choice(sorted(RECIPES)))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Coding-model weights file to write (loadable with --model PATH).")
@click.option("--minutes", type=click.FloatRange(0, None), default=10.0, show_default=True,
              help="Wall-clock training budget (ignored when --epochs is given).")
@click.option("--epochs", type=click.IntRange(0, None), help="Train for exactly this many epochs instead.")
@click.option("--latent-channels", type=click.IntRange(1, 256),
              help="Channels of the bottom latent layer (CHANNELS x 7 x 7; default: the recipe's, 8).")
@click.option("--top-latent-channels", type=click.IntRange(0, 256),
              help="Channels of the top latent layer; 0 for one layer (default: the recipe's).")
@click.option("--ar-channels", type=click.IntRange(0, 1024),
              help="Hidden units of the autoregressive pixel head; 0 for independent pixels (default: the recipe's).")
@click.option("--objective", type=click.Choice(["elbo", "iwae"]), default="elbo", show_default=True,
              help="Maximize the ELBO (what bits-back pays) or the IWAE-k bound (tighter; what --particles k pays).")
@click.option("--iwae-k", type=click.IntRange(2, 1000), default=5, show_default=True,
              help="Importance samples per item for --objective iwae.")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="Learning rate: constant, or a cosine decay to 0 over the whole budget (--minutes/--epochs).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]),
              help="Training device (default: cuda if available; it trains in bf16 mixed precision).")
@click.option("--resume", is_flag=True, help="Continue from PATH.float.safetensors (and replace PATH).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--batch-size", type=click.IntRange(1, None), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(0, None, min_open=True), default=1e-3, show_default=True)
@click.option("--name", help="Model name recorded in archives (default: the --out file's stem).")
@click.option("--calibration", type=click.IntRange(1, None), default=2000, show_default=True,
              help="Training items used to calibrate the integer coding model.")
@click.option("--kl-warmup", type=click.IntRange(0, None), default=None,
              help="Steps over which the KL weight rises from 0 to 1 (default: the recipe's: 200 for mnist and "
                   "mnist-small, 500 for binarized-mnist, 0 for binarized-mnist-small). Reported -ELBO is always "
                   "the true one.")
@click.option("-f", "--force", is_flag=True, help="Overwrite --out if it exists.")
def train(recipe: str, out: Path, minutes: float, epochs: int | None, latent_channels: int | None,
          top_latent_channels: int | None, ar_channels: int | None, objective: str, iwae_k: int, lr_schedule: str,
          device: str | None, resume: bool, seed: int, batch_size: int, lr: float, name: str | None,
          calibration: int, kl_warmup: int | None, force: bool):
    """Train a VAE from a RECIPE and export it as a coding model.

    Training maximizes the ELBO (or the IWAE bound with --objective iwae); the export turns the float
    network into the integer-exact model that archives need (so they decode identically on any machine).
    """
    replace_out = force or resume  # resuming rebuilds --out from the checkpoint it was made from
    check_output(out, replace_out)
    float_path = out.with_name(out.name + ".float.safetensors")
    if resume and not float_path.exists():
        raise InputError(f"--resume: {float_path} not found (start without --resume)")
    if not resume and float_path.exists() and not force:
        raise OutputError(f"{float_path} already exists; use --resume to continue it or -f to start over")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here; use --device cpu")

    from bbans_models.datasets import load_dataset, recipe_splits
    from bbans_models.export import export
    from bbans_models.train import train as run_training
    from bbans_models.vae import VAEConfig

    spec = RECIPES[recipe]
    sizes = {"latent_channels": latent_channels, "top_latent_channels": top_latent_channels,
             "ar_channels": ar_channels}
    fields = {**spec["config"], **{k: v for k, v in sizes.items() if v is not None}}
    config = VAEConfig(**fields)
    train_data, test_data = (load_dataset(split) for split in recipe_splits(recipe))
    click.echo(f"training a VAE ({recipe}) on {spec['dataset']}: {len(train_data):,} training items, "
               f"{len(test_data):,} test items; checkpoint {float_path}")
    budget = f"{epochs} epochs" if epochs is not None else f"{minutes:g} minutes"
    top = fields.get("top_latent_channels", 0)
    layers = f"{fields.get('latent_channels', 8)} x 7 x 7" + (f" under {top} x 7 x 7" if top else "")
    click.echo(f"budget {budget}, batch {batch_size}, lr {lr:g} ({lr_schedule}), seed {seed}, latents {layers}, "
               f"pixels {'autoregressive' if fields.get('ar_channels') else 'independent'}")
    try:
        run_training(config, train_data, float_path, minutes=minutes, epochs=epochs, batch_size=batch_size, lr=lr,
                     seed=seed, device=device, resume=resume, test_data=test_data,
                     kl_warmup_steps=spec["kl_warmup"] if kl_warmup is None else kl_warmup,
                     objective=objective, iwae_k=iwae_k, lr_schedule=lr_schedule, log=lambda s: click.echo(s))
    except KeyboardInterrupt:
        if float_path.exists():
            click.echo(f"\nbbans: interrupted; the last finished epoch is in {float_path}: continue with --resume, "
                       f"or export it as is with --resume --epochs 0", err=True)
        raise click.exceptions.Exit(130)
    if not float_path.exists():
        raise ModelError("training ran no full epoch, so there is nothing to export; give it more --minutes")

    rng = np.random.default_rng(seed)
    calib = train_data[np.sort(rng.choice(len(train_data), size=min(calibration, len(train_data)), replace=False))]
    model_name = name or out.name.split(".")[0]
    click.echo(f"exporting coding model {model_name!r} (calibrating on {len(calib):,} training items) ...")
    t = time.perf_counter()
    tmp = temp_path_beside(out)
    try:
        card = {"dataset": spec["dataset"], "recipe": recipe, "seed": seed, "calibration_items": int(len(calib))}
        written = Path(export(float_path, tmp, np.ascontiguousarray(calib), model_name, card=card,
                              bin_exponent=spec["bin_exponent"]))
        move_into_place(written, out, replace_out)
    finally:
        for p in (tmp, tmp.with_name(tmp.name + ".tmp")):
            if p.exists():
                p.unlink()
    click.echo(f"wrote {out} ({fmt_bytes(out.stat().st_size)}) in {fmt_seconds(time.perf_counter() - t)}")
    try:
        from bbans.container import registry

        model = registry.load_model(str(out))
        n = min(2000, len(test_data))
        elbo = _neg_elbo_bpd(model, test_data[:n])
        line = f"model {model.name}, sha256 {short_sha(model.sha256)}"
        if elbo is not None:
            line += f"; coding-model -ELBO on test[:{n}] {elbo:.4f} bits/dim"
        click.echo(line)
    except BBANSError as exc:
        raise ModelError(f"the exported file {out} does not load as a coding model: {exc}") from None
    click.echo(f"use it with: bbans compress DATA --model {out}")


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: temporary outputs are removed


def main(argv=None):
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    return cli.main(args=argv, prog_name="bbans")


if __name__ == "__main__":
    main()
