"""The ``bbans`` command line: compress, decompress, info, eval, models, train.

Each command maps files to the core's sources and sinks (inputs.py, outputs.py), runs one call of the core
(``bbans.container.pipeline``) or of the models package, and prints what happened through one renderer
(report.py). Everything heavy (the coder, the model registry, torch) is imported inside the commands so that
``bbans --help`` answers at once.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from bbans.errors import ArchiveError, BBANSError, InputError, ModelError
from bbans_models.datasets import RECIPES  # plain data: imports no torch

from . import helptext
from .outputs import OutputFile, check_output, output_path
from .ui import Progress, fmt_bytes, short_sha

METHODS = ("auto", "bits-back", "deflate", "lzma", "bz2", "stored")
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


@click.group(cls=BBANSGroup, context_settings=CONTEXT, epilog=helptext.MAIN)
@click.version_option(package_name="bbans", prog_name="bbans")
def cli():
    """Lossless compression of image data with bits-back coding (BB-ANS) over VAEs.

    A trained latent-variable model (a VAE) is turned into a lossless code: each item costs about the
    model's -ELBO in bits. Inputs are uint8 (or bool) .npy arrays, MNIST IDX files (plain or .gz) and PNG images;
    any other file is compressed as raw bytes with a classical codec.
    """


def _named(exc: BBANSError, name: str) -> BBANSError:
    """The same kind of error with the file name in front (keeps the exit code)."""
    msg = str(exc)
    if msg.startswith(f"{name}:"):
        return exc
    new = BBANSError(f"{name}: {msg}")
    new.exit_code = getattr(exc, "exit_code", 1)
    return new


def _model_ref(ref: str | None):
    from bbans.container import registry

    return None if ref is None else registry.load_model(ref)


# ----------------------------------------------------------------------------------------------- compress


@cli.command(context_settings=CONTEXT, epilog=helptext.COMPRESS)
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def compress(file: Path, output, model_ref, batch_size, force, method, particles, no_elbo, to_stdout, keep, remove,
             jobs, chunk_items, as_json):
    """Compress FILE into a .bba archive with bits-back coding.

    Prints the archive size and rate in bits per dimension (bits/dim: archive bits divided by the number of
    pixel values), next to the model's own -ELBO on the same data: bits-back coding should land within a
    fraction of a percent of it, plus a small fixed cost per archive.
    """
    from bbans.container.pipeline import EncodeOptions, FileBytes, encode

    from .inputs import open_input
    from .report import compress_report

    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    inp = open_input(file)  # '-' = stdin; .npy, IDX and raw bytes are memory-mapped, not read whole
    to_stdout = to_stdout or (inp.from_stdin and output is None)
    out = None if to_stdout else output_path(output, file.with_name(file.name + ".bba"))
    if out is not None:
        check_output(out, force)
    classical = method not in ("auto", "bits-back")
    options = EncodeOptions(method=method, model_ref=None if classical else model_ref, batch_size=batch_size,
                            particles=particles, chunk_items=chunk_items, jobs=jobs,
                            want_elbo=not (no_elbo or classical), extra=inp.info)
    fallback = None if inp.kind == "raw" else FileBytes(inp.raw_source, _raw_info(), inp.kind)
    with OutputFile(out, force) as sink, Progress("compressing") as progress, Progress("-ELBO") as elbo_progress:
        try:
            rep = encode(inp.source, sink, options, file_bytes=fallback, progress=progress,
                         eval_progress=elbo_progress)
        except (InputError, ModelError) as exc:
            raise _named(exc, inp.name) from None
        sink.commit()
    if remove and not inp.from_stdin:
        os.unlink(inp.path)
    click.echo(compress_report(inp, rep, str(out or "stdout"), jobs).render(as_json), err=to_stdout)


def _raw_info() -> bytes:
    from .formats import raw_info

    return raw_info()


# --------------------------------------------------------------------------------------------- decompress


@cli.command(context_settings=CONTEXT, epilog=helptext.DECOMPRESS)
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
def decompress(file: Path, output, model_ref, force, to_stdout, keep, remove, jobs, item_range):
    """Restore the file compressed into FILE (a .bba archive), exactly."""
    from .restore import restore
    from .report import decompress_line

    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    t0 = time.perf_counter()
    with Progress("decompressing") as progress:
        try:
            done = restore(file, output, to_stdout, force, item_range, _model_ref(model_ref) if jobs == 1 else None,
                           model_ref, jobs, progress)
        except ModelError as exc:
            hint = "" if model_ref else " (if you have the model's weights file, pass it with --model PATH)"
            raise ModelError(f"{file}: {exc}{hint}") from None
        except (ArchiveError, InputError) as exc:
            raise _named(exc, str(file)) from None
    if remove and not done.from_stdin:
        os.unlink(file)
    part = "" if done.whole else f" (items {item_range}: {done.chunks_read} of {done.chunks} chunks decoded)"
    echo = lambda s: click.echo(s, err=done.out == "stdout")  # noqa: E731
    echo(decompress_line(done.out, done.kind, done.nbytes, done.shape, part, time.perf_counter() - t0))
    if done.kind == "idx" and done.gzip:
        echo("note: the original was gzip-compressed; this is the uncompressed IDX file "
             "(gzip it again if you need the .gz)")
    elif done.kind == "png":
        echo("note: PNG pixels are identical to the original; the file bytes may differ")


# --------------------------------------------------------------------------------------------------- info


@cli.command(context_settings=CONTEXT, epilog=helptext.INFO)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(file: Path, as_json: bool):
    """Show an archive's header without decoding it.

    Method, model identity, data shape and count, batch schedule, coder settings, the kind of file that
    decompress will restore, and the archive's size and rate.
    """
    from bbans.container import archive, chunked
    from bbans.container.pipeline import ArchiveReader

    from .formats import parse_info
    from .inputs import readable_size
    from .report import info_report

    readable_size(file)
    try:
        with open(file, "rb") as f:
            reader = ArchiveReader(f, str(file))
            heads = None
            if reader.chunked:
                heads = [archive.read_header(chunked.chunk_blob(f, reader.header, k)) for k in range(reader.n_chunks)]
            container = parse_info(reader.extra)
    except ArchiveError as exc:
        raise _named(exc, str(file)) from None
    click.echo(info_report(file, reader, container, heads).render(as_json))


# --------------------------------------------------------------------------------------------------- eval


@cli.command(name="eval", context_settings=CONTEXT, epilog=helptext.EVAL)
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
def eval_(data_file: Path, model_ref, samples, iwae_k, limit, batch_size, particles, classical):
    """Measure a model on DATA: -ELBO, NLL estimate and the real archive rate, in bits/dim.

    The archive (always bits-back, even where compress would pick a classical codec) is made in memory and
    decoded again to check the round trip; nothing is written.
    """
    from bbans.container.choice import resolve_model

    from .evaluation import evaluate
    from .inputs import open_input
    from .ui import kv

    inp = open_input(data_file)
    data = inp.source.read(0, min(limit or inp.n_items, inp.n_items))
    model, _ = resolve_model(data, _model_ref(model_ref), "bits-back")
    click.echo(kv([("data", f"{data_file}: {inp.description}" + (f", first {len(data):,} items" if limit else "")),
                   ("model", f"{model.name} (sha256 {short_sha(model.sha256)})")]))
    click.echo()
    click.echo(evaluate(data, model, samples=samples, iwae_k=iwae_k, batch_size=batch_size, particles=particles,
                        classical=classical, progress=Progress))


# ------------------------------------------------------------------------------------------------- models


@cli.command(context_settings=CONTEXT, epilog=helptext.MODELS)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json: bool):
    """List the installed models (the ones compress can pick automatically)."""
    import json

    from bbans.container import registry

    from .report import jsonable
    from .ui import fmt_shape, table

    entries = registry.list_models()
    if as_json:
        click.echo(json.dumps([jsonable(dict(e)) for e in entries], indent=2))
    elif not entries:
        click.echo("no models are installed; train one with 'bbans train mnist --out model.safetensors'")
    else:
        click.echo(table([[e["name"], fmt_shape(e.get("data_shape", ())), "{}..{}".format(*e["value_range"]),
                           short_sha(e.get("sha256")), e.get("description", "")] for e in entries],
                         ["name", "items", "values", "sha256", "description"]))


# -------------------------------------------------------------------------------------------------- train


@cli.command(context_settings=CONTEXT, epilog=helptext.TRAIN)
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
def train(recipe: str, out: Path, latent_channels, top_latent_channels, ar_channels, force, resume, **options):
    """Train a VAE from a RECIPE and export it as a coding model.

    Training maximizes the ELBO (or the IWAE bound with --objective iwae); the export turns the float
    network into the integer-exact model that archives need (so they decode identically on any machine).
    """
    from bbans_models.training_run import float_checkpoint_path, train_recipe

    check_output(out, force or resume)  # resuming rebuilds --out from the checkpoint it was made from
    sizes = {"latent_channels": latent_channels, "top_latent_channels": top_latent_channels,
             "ar_channels": ar_channels}
    try:
        done = train_recipe(recipe, out, sizes=sizes, resume=resume, force=force, log=click.echo, **options)
    except KeyboardInterrupt:
        if float_checkpoint_path(out).exists():
            click.echo(f"\nbbans: interrupted; the last finished epoch is in {float_checkpoint_path(out)}: continue "
                       "with --resume, or export it as is with --resume --epochs 0", err=True)
        raise click.exceptions.Exit(130)
    elbo = done["test_neg_elbo_bpd"]
    click.echo(f"model {done['name']}, sha256 {short_sha(done['sha256'])}"
               + (f"; coding-model -ELBO on test[:{done['test_items']}] {elbo:.4f} bits/dim" if elbo is not None
                  else ""))
    click.echo(f"use it with: bbans compress DATA --model {out} ({fmt_bytes(out.stat().st_size)})")


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: temporary outputs are removed


def main(argv=None):
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    return cli.main(args=argv, prog_name="bbans")


if __name__ == "__main__":
    main()
