"""The ``bbans`` command line: compress, decompress, test, info, eval, models, train.

Each command maps files to the core's sources and sinks (inputs.py, outputs.py), runs one call of the core
(``bbans.container.pipeline``) or of the models package, and prints what happened through one renderer
(report.py). Everything heavy (the coder, the model registry, torch) is imported inside the commands so that
``bbans --help`` answers at once.

compress, decompress and test take several files, as gzip does (``Batch``). Failures end in ``bbans: error: ...``
and a non-zero status (usage errors too: ``BBANSGroup.main``); a reader that closes standard output ends the
command quietly with 141; Ctrl-C and SIGTERM remove partial outputs (130, 143). ``main`` is the console entry;
``_finish`` makes sure the process then exits with that status (tests/faulting.py checks all of this under
faults, in real processes).
"""
from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path


def _ignore_ctrl_c_in_a_worker() -> None:
    """A worker process of ``-j N`` (started by multiprocessing's spawn method) imports the command's main script,
    hence this module, while it starts. Ctrl-C reaches the whole process group, and a worker hit by it while
    starting or idle prints a traceback; the command stops its workers itself (and they inherit no blocked signal
    mask, only ignored signals). So a worker being prepared ignores SIGINT from here on, as early as it can."""
    mp = sys.modules.get("multiprocessing.process")
    if mp is not None and getattr(mp.current_process(), "_inheriting", False):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_ignore_ctrl_c_in_a_worker()

import click  # noqa: E402

from bbans.container.archive import FORMAT_VERSION  # noqa: E402
from bbans.errors import ArchiveError, BBANSError, InputError, ModelError  # noqa: E402
from bbans_models.datasets import PHOTO_RECIPES, RECIPES  # noqa: E402 -- plain data: imports no torch

from . import helptext  # noqa: E402
from .outputs import OutputFile, check_output, output_path  # noqa: E402
from .ui import Progress, fmt_bytes, short_sha  # noqa: E402

from bbans.container.choice import METHODS  # noqa: E402 -- auto, bits-back, the byte and image codecs
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (temporary outputs are removed) but exiting 143 (128 + SIGTERM)."""


_STANDALONE = False  # set by main(): this process is the bbans command itself (not a test runner or a library)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, BBANSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def _quiet_stdout() -> None:
    """After the reader of standard output went away: point it at /dev/null, so that Python's last flush at exit
    does not print a second error."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


class BBANSGroup(click.Group):
    """Turns project errors into ``bbans: error: ...`` with the error's exit code (usage errors too, exit 2),
    Ctrl-C into exit 130, SIGTERM into 143, and a reader closing standard output early into a quiet exit 141
    (what gzip's death by SIGPIPE gives)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            msg = exc.format_message().rstrip()
            msg = msg[:-1] if msg.endswith(".") and not msg.endswith("..") else msg
            click.echo(f"bbans: error: {msg}{where}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"bbans: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C while click parsed the command line
            click.echo("bbans: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BBANSError as exc:
            if os.environ.get("BBANS_DEBUG"):
                raise
            click.echo(f"bbans: error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))
        except KeyboardInterrupt as exc:
            _echo_err("\nbbans: interrupted; no partial output was left")
            ctx.exit(143 if isinstance(exc, Terminated) else 130)
        except MemoryError:
            click.echo("bbans: error: out of memory; code the data in smaller files", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # the reader of our output left (e.g. '| head -c 1'): quiet, as gzip
            _quiet_stdout()
            ctx.exit(141)
        except OSError as exc:  # disk full, permission denied while writing, ...
            if os.environ.get("BBANS_DEBUG"):
                raise
            click.echo(f"bbans: error: {_error_text(exc)}", err=True)
            ctx.exit(1)


def _echo_err(text: str) -> None:
    try:
        click.echo(text, err=True)
    except OSError:
        pass


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


class Batch:
    """Runs one command over several files as gzip does: an error on one file is reported (``bbans: error: ...``)
    and the others go on; the exit code is the first failure's. Ctrl-C, SIGTERM and a closed standard output stop
    everything (they propagate). Reports are printed as each file finishes; with ``--json`` one object for one
    file, a list for several (failures as ``{"input", "error", "exit_code"}``)."""

    def __init__(self, files, as_json: bool, quiet: bool, report_to_stderr: bool):
        self.files, self.as_json, self.quiet, self.err = list(files), as_json, quiet, report_to_stderr
        self.codes: list[int] = []
        self.json: list = []
        self.shown = False

    def run(self, ctx, fn) -> None:
        for file in self.files:
            try:
                report = fn(file)
            except (KeyboardInterrupt, BrokenPipeError, MemoryError):
                raise
            except (BBANSError, OSError) as exc:
                if os.environ.get("BBANS_DEBUG"):
                    raise
                code = getattr(exc, "exit_code", 1) if isinstance(exc, BBANSError) else 1
                _echo_err(f"bbans: error: {_error_text(exc)}")
                self.codes.append(code)
                self.json.append({"input": str(file), "error": _error_text(exc), "exit_code": code})
                continue
            self.codes.append(0)
            if report is None:
                continue
            if self.as_json:
                self.json.append(report.data)
                if len(self.files) == 1:
                    click.echo(report.render(True), err=self.err)
            elif not self.quiet:
                if len(report.fields) > 1 and self.shown:  # a blank line between reports of several lines
                    click.echo("", err=self.err)
                click.echo(report.render(False), err=self.err)
                self.shown = len(report.fields) > 1
        if self.as_json and len(self.files) > 1:
            import json

            click.echo(json.dumps(self.json, indent=2), err=self.err)
        bad = [c for c in self.codes if c]
        if bad:
            ctx.exit(bad[0])


def _check_files(files, output, to_stdout, keep, remove, what: str) -> None:
    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    if to_stdout and output is not None:
        raise click.UsageError("-c/--stdout and -o/--output contradict each other: -c writes to standard output")
    names = [str(f) for f in files]
    if "-" in names and len(names) > 1:
        raise click.UsageError("'-' (standard input) must be the only FILE")
    if len(names) > 1:
        if to_stdout:
            raise click.UsageError(f"-c/--stdout takes one FILE{what}; leave out -c to write each output "
                                   "next to its FILE")
        if output is not None and not Path(output).is_dir():
            raise click.UsageError(f"-o with several FILEs must be an existing folder ({output} is not)")


def _outputs(files, output, to_stdout, keep, remove, quiet, verbose, what: str, kept: str) -> tuple[bool, bool]:
    """The option checks compress and decompress share; returns (to_stdout, remove): '-' alone implies -c unless
    -o, and --rm is ignored with a notice when the output goes to standard output (the ``kept`` file stays)."""
    _verbosity(quiet, verbose)
    _check_files(files, output, to_stdout, keep, remove, what)
    to_stdout = to_stdout or ([str(f) for f in files] == ["-"] and output is None)
    if remove and to_stdout:
        if not quiet:
            click.echo(f"bbans: note: --rm ignored: the {kept} is kept when the output goes to standard output",
                       err=True)
        remove = False
    return to_stdout, remove


def _verbosity(quiet: bool, verbose: bool):
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other")


# ----------------------------------------------------------------------------------------------- compress


@cli.command(context_settings=CONTEXT, epilog=helptext.COMPRESS)
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Archive path (default: FILE.bba); a folder puts FILE.bba there (the only form with several FILEs).")
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH",
              help="Model to code with: an installed model's name or a weights file (default: the installed model that fits the data).")
@click.option("-b", "--batch-size", type=click.IntRange(1, 1_000_000), default=100, show_default=True,
              help="Items per network call; larger is faster, the archive rate barely changes.")
@click.option("-f", "--force", is_flag=True, help="Overwrite the output if it exists (never the input itself).")
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True,
              help="auto: bits-back with the model, or a classical codec when that is smaller (small inputs, "
                   "and photos against JPEG-XL / WebP); bits-back: always; deflate/lzma/bz2/stored: a byte codec, "
                   "jpegxl/webp: a lossless image codec (images only), no model needed.")
@click.option("-p", "--particles", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Monte-Carlo bits-back with K importance-sampled particles per item: the rate drops from the "
                   "-ELBO toward the IWAE-K bound, at about K times the model work. 1: standard bits-back.")
@click.option("--no-elbo", is_flag=True,
              help="Skip the -ELBO comparison: after coding with a model, the report measures the model's -ELBO on "
                   "the same data, one more pass of the network over every item (with the shipped mnist model "
                   "about 40% of the coding time; with -p K, K passes more for the IWAE-K bound). Done only for "
                   "data a model coded.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True,
              help="Write the archive to standard output (FILE '-' reads standard input and implies -c unless -o); "
                   "the report goes to standard error.")
@click.option("-k", "--keep", is_flag=True, help="Keep the input file (the default, as with gzip -k).")
@click.option("--rm", "remove", is_flag=True,
              help="Delete the input file once its archive is complete and on disk (ignored with -c, as zstd does).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes coding chunks in parallel (inputs of several chunks); the archive is the same for any N.")
@click.option("--chunk-items", type=click.IntRange(1, None),
              help="Items per chunk; inputs with more items become a multi-chunk archive [default: 10,000 items "
                   "and at most 8 MiB per chunk; raw bytes: 8 MiB].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Code the chunks (a FOLDER's files) as tasks on a Dask cluster: tcp://HOST:PORT of a running "
                   "scheduler, or local:N for N local worker processes (pip install bbans[cluster]). Workers read "
                   "the input from its path, so it must be on a filesystem they all see; the archive is the same "
                   "bytes as with -j 1.")
@click.option("--format-version", type=click.IntRange(1, FORMAT_VERSION), default=FORMAT_VERSION, show_default=True,
              help="Archive layout to write. 1: as bbans wrote before layout 2 (bits-back with a random seed and the "
                   "model's own latent bins, the .npy header stored whole), for decoders that read only version 1; "
                   "2: bits-back seeded with the first items' own code; 3: as 2 with a header ~25 bytes shorter "
                   "(no model name: the model is found by its weights' sha256), for bbans 2026-12-06 and later.")
@click.option("-q", "--quiet", is_flag=True, help="No report, notes or progress; errors only.")
@click.option("-v", "--verbose", is_flag=True, help="A longer report: initial bits, payload, batch schedule, chunk methods.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (a list for several FILEs).")
@click.pass_context
def compress(ctx, files, output, model_ref, batch_size, force, method, particles, no_elbo, to_stdout, keep, remove,
             jobs, chunk_items, scheduler, format_version, quiet, verbose, as_json):
    """Compress each FILE into a .bba archive with bits-back coding.

    Prints the archive size and rate in bits per dimension (bits/dim: archive bits divided by the number of
    pixel values), next to the model's own -ELBO on the same data: bits-back coding should land within a
    fraction of a percent of it, plus a small fixed cost per archive. Several FILEs give one archive each;
    an error on one is reported and the others go on (exit code: the first failure's).
    """
    to_stdout, remove = _outputs(files, output, to_stdout, keep, remove, quiet, verbose,
                                 " (an archive holds one file)", "input")
    many = len(files) > 1

    def one(file: Path):
        if file.is_dir():
            return _compress_folder(file, output, model_ref, batch_size, force, method, particles, to_stdout,
                                    remove, jobs, chunk_items, scheduler, quiet, format_version)
        return _compress_one(file, output, model_ref, batch_size, force, method, particles, no_elbo, to_stdout,
                             remove, jobs, chunk_items, quiet, verbose, many, scheduler, format_version)

    Batch(files, as_json, quiet, to_stdout).run(ctx, one)


def _compress_one(file, output, model_ref, batch_size, force, method, particles, no_elbo, to_stdout, remove, jobs,
                  chunk_items, quiet, verbose, many, scheduler=None, format_version=FORMAT_VERSION):
    from bbans.container.pipeline import EncodeOptions, encode

    from .inputs import open_input
    from .outputs import check_not_input, signals_deferred, sync_folder
    from .report import compress_report

    inp = open_input(file, format_version)  # '-' = stdin; .npy, IDX and raw bytes are read one chunk at a time
    out = None if to_stdout else output_path(output, file.with_name(file.name + ".bba"))
    if out is not None:
        check_not_input(out, None if inp.from_stdin else inp.path)
        check_output(out, force)
    classical = method not in ("auto", "bits-back")
    options = EncodeOptions(method=method, model_ref=None if classical else model_ref, batch_size=batch_size,
                            particles=particles, chunk_items=chunk_items, jobs=jobs,
                            want_elbo=not (no_elbo or classical), extra=inp.info, scheduler=scheduler,
                            format_version=format_version)
    label = f"compressing {inp.name}" if many else "compressing"
    show = False if quiet else None
    with OutputFile(out, force) as sink, Progress(label, show) as progress, \
            Progress(f"-ELBO of {inp.name}" if many else "-ELBO", show, lazy=True) as elbo_progress:
        try:
            rep = encode(inp.source, sink, options, file_bytes=inp.file_bytes_fallback(), progress=progress,
                         eval_progress=elbo_progress)
        except (InputError, ModelError) as exc:
            raise _named(exc, inp.name) from None
        if not inp.from_stdin:
            inp.check_unchanged()  # what was coded is what is on disk: else no archive, and never --rm
        sink.commit()
    if remove and not inp.from_stdin:
        inp.check_unchanged(after=True)
        sync_folder(out)  # the archive's name is durable before the input goes
        with signals_deferred():
            os.unlink(inp.path)
    return compress_report(inp, rep, str(out or "stdout"), jobs, elbo_asked=not (no_elbo or classical),
                           verbose=verbose)


def _compress_folder(folder, output, model_ref, batch_size, force, method, particles, to_stdout, remove, jobs,
                     chunk_items, scheduler, quiet, format_version=FORMAT_VERSION):
    """``bbans compress DIR``: one collection archive of every file below DIR (cli/folders.py)."""
    from bbans.container.pipeline import EncodeOptions

    from .folders import compress_folder
    from .report import folder_report

    if remove:
        raise InputError(f"{folder}: --rm does not delete folders; remove it yourself once the archive is checked")
    folder = folder.resolve()
    out = None if to_stdout else output_path(output, folder.with_name(folder.name + ".bba"))
    if out is not None:
        check_output(out, force)
    classical = method not in ("auto", "bits-back")
    options = EncodeOptions(method=method, model_ref=None if classical else model_ref, batch_size=batch_size,
                            particles=particles, chunk_items=chunk_items, jobs=jobs, scheduler=scheduler,
                            format_version=format_version)
    with OutputFile(out, force) as sink, Progress(f"compressing {folder.name}", False if quiet else None,
                                                  unit="files") as progress:
        rep = compress_folder(folder, sink, options, progress)
        sink.commit()
    return folder_report(folder, rep, str(out or "stdout"))


# --------------------------------------------------------------------------------------------- decompress


@cli.command(context_settings=CONTEXT, epilog=helptext.DECOMPRESS)
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output path (default: FILE without .bba; a gzip IDX input comes back without .gz too); "
                   "a folder puts the file there (the only form with several FILEs).")
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH",
              help="Model weights file to decode with, when the archive's model is not installed "
                   "(its sha256 must match the archive's).")
@click.option("-f", "--force", is_flag=True, help="Overwrite the output if it exists (never the archive itself).")
@click.option("-c", "--stdout", "to_stdout", is_flag=True,
              help="Write to standard output (FILE '-' reads the archive from standard input and implies -c "
                   "unless -o); the report goes to standard error.")
@click.option("-k", "--keep", is_flag=True, help="Keep the archive (the default, as with gzip -k).")
@click.option("--rm", "remove", is_flag=True,
              help="Delete the archive once the output is complete and on disk (ignored with -c).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes decoding chunks in parallel (multi-chunk archives).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Decode the chunks of a multi-chunk archive as tasks on a Dask cluster: tcp://HOST:PORT of a "
                   "running scheduler, or local:N for N local worker processes (pip install bbans[cluster]). "
                   "Workers read the archive from its path, so it must be on a filesystem they all see (not "
                   "standard input); the output is written here, in order. A collection's files decode in this "
                   "process.")
@click.option("--range", "item_range", metavar="I:J",
              help="Restore only items I..J-1 (0-based); decodes only the chunks that hold them.")
@click.option("-q", "--quiet", is_flag=True, help="No report, notes or progress; errors only.")
@click.option("-v", "--verbose", is_flag=True, help="A longer report: the archive's method, model and container.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (a list for several FILEs).")
@click.pass_context
def decompress(ctx, files, output, model_ref, force, to_stdout, keep, remove, jobs, scheduler, item_range, quiet,
               verbose, as_json):
    """Restore the file compressed into each FILE (a .bba archive), exactly."""
    to_stdout, remove = _outputs(files, output, to_stdout, keep, remove, quiet, verbose, "", "archive")
    if scheduler is not None and any(str(f) == "-" for f in files):
        raise click.UsageError("--scheduler: workers read the archive from its path; standard input has none")
    model = _model_ref(model_ref) if jobs == 1 and scheduler is None and model_ref else None
    many = len(files) > 1

    def one(file: Path):
        from .outputs import signals_deferred, sync_folder
        from .report import decompress_report
        from .restore import restore

        t0 = time.perf_counter()
        if _is_collection(file):
            return _restore_folder(file, output, force, model, quiet, t0)
        label = f"decompressing {file}" if many else "decompressing"
        with Progress(label, False if quiet else None) as progress:
            try:
                done = restore(file, output, to_stdout, force, item_range, model, model_ref, jobs, progress,
                               scheduler)
            except ModelError as exc:
                hint = "" if model_ref else " (if you have the model's weights file, pass it with --model PATH)"
                raise ModelError(f"{file}: {exc}{hint}") from None
            except (ArchiveError, InputError) as exc:
                raise _named(exc, str(file)) from None
        if remove and not done.from_stdin:
            sync_folder(Path(done.out))
            with signals_deferred():
                os.unlink(file)
        return decompress_report(done, time.perf_counter() - t0, item_range, verbose)

    Batch(files, as_json, quiet, to_stdout).run(ctx, one)


def _is_collection(file: Path) -> bool:
    from bbans.container.collection import is_collection

    try:
        with open(file, "rb") as f:
            return is_collection(f.read(6))
    except OSError:
        return False


def _restore_folder(file: Path, output, force: bool, model, quiet: bool, t0: float):
    """``bbans decompress`` of a collection: its files, under the folder named like the archive without .bba."""
    from .folders import restore_folder
    from .report import collection_report

    name = file.name[:-4] if file.name.lower().endswith(".bba") and len(file.name) > 4 else file.name + ".out"
    out_dir = output if output is not None else file.with_name(name)
    try:
        with open(file, "rb") as f, Progress(f"restoring {file.name}", False if quiet else None,
                                             unit="files") as progress:
            from bbans.container.collection import read_index

            done = restore_folder(f, out_dir, force, model, progress)
            index = read_index(f)
    except (ArchiveError, InputError) as exc:
        raise _named(exc, str(file)) from None
    return collection_report(file, index, str(out_dir), done, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------------- test


@cli.command(name="test", context_settings=CONTEXT, epilog=helptext.TEST)
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_ref", metavar="NAME|PATH",
              help="Model weights file to decode with, when the archive's model is not installed.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes decoding chunks in parallel (multi-chunk archives).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for good archives; errors only.")
@click.option("-v", "--verbose", is_flag=True, help="Also describe the file each archive holds.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (a list for several FILEs).")
@click.pass_context
def test(ctx, files, model_ref, jobs, quiet, verbose, as_json):
    """Check that each FILE (a .bba archive) decodes completely, as decompress would, without writing anything.

    Every checksum is verified (each chunk's, the whole data's, the seed check of bits-back). Exit 0 when all
    are good, 3 when one is damaged, 4 when its model is missing.
    """
    from .report import test_report
    from .restore import test_archive

    _verbosity(quiet, verbose)
    if "-" in [str(f) for f in files] and len(files) > 1:
        raise click.UsageError("'-' (standard input) must be the only FILE")
    model = _model_ref(model_ref) if jobs == 1 and model_ref else None

    def one(file: Path):
        t0 = time.perf_counter()
        label = f"testing {file}"
        with Progress(label, False if quiet else None) as progress:
            try:
                t = test_archive(file, model, model_ref, jobs, progress)
            except ModelError as exc:
                hint = "" if model_ref else " (if you have the model's weights file, pass it with --model PATH)"
                raise ModelError(f"{file}: {exc}{hint}") from None
            except (ArchiveError, InputError) as exc:
                raise _named(exc, str(file)) from None
        return test_report(str(file), t, time.perf_counter() - t0, verbose)

    Batch(files, as_json, quiet, False).run(ctx, one)


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
    if _is_collection(file):
        from bbans.container.collection import read_index

        from .report import collection_report

        try:
            with open(file, "rb") as f:
                click.echo(collection_report(file, read_index(f)).render(as_json))
        except ArchiveError as exc:
            raise _named(exc, str(file)) from None
        return
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
        def items(e) -> str:
            shape = tuple(e.get("data_shape", ()))
            if e.get("tile_size"):
                return f"H x W x {shape[-1]} (as {shape[0]} x {shape[1]} tiles)"
            return fmt_shape(shape)

        click.echo(table([[e["name"], items(e), "{}..{}".format(*e["value_range"]),
                           short_sha(e.get("sha256")), e.get("description", "")] for e in entries],
                         ["name", "items", "values", "sha256", "description"]))


# -------------------------------------------------------------------------------------------------- train


@cli.command(context_settings=CONTEXT, epilog=helptext.TRAIN)
@click.argument("recipe", metavar="RECIPE", type=click.Choice(sorted([*RECIPES, *PHOTO_RECIPES])))
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
@click.option("--batch-size", type=click.IntRange(1, None), help="Items per step [default: 128; photo: 32 crops].")
@click.option("--lr", type=click.FloatRange(0, None, min_open=True),
              help="Adam learning rate [default: 1e-3; photo: 2e-3].")
@click.option("--name", help="Model name recorded in archives (default: the --out file's stem).")
@click.option("--calibration", type=click.IntRange(1, None), default=2000, show_default=True,
              help="Training items used to calibrate the integer coding model.")
@click.option("--kl-warmup", type=click.IntRange(0, None), default=None,
              help="Steps over which the KL weight rises from 0 to 1 (default: the recipe's: 200 for mnist and "
                   "mnist-small, 500 for binarized-mnist, 0 for binarized-mnist-small). Reported -ELBO is always "
                   "the true one.")
@click.option("-f", "--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--nproc", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Train data-parallel in N processes on this machine (torchrun; gloo on CPUs, nccl on GPUs); the "
                   "global --batch-size stays the same and must divide by N. Across machines use torchrun "
                   "directly: docs/cluster.md.")
def train(recipe: str, out: Path, latent_channels, top_latent_channels, ar_channels, force, resume, nproc,
          **options):
    """Train a VAE from a RECIPE and export it as a coding model.

    Training maximizes the ELBO (or the IWAE bound with --objective iwae); the export turns the float
    network into the integer-exact model that archives need (so they decode identically on any machine).
    """
    from bbans_models.training_run import float_checkpoint_path, train_recipe

    if nproc > 1 and "WORLD_SIZE" not in os.environ:  # start the processes: torchrun runs this same command in each
        import subprocess

        argv = [a for i, a in enumerate(sys.argv[1:]) if a != "--nproc" and not a.startswith("--nproc=")
                and sys.argv[i] != "--nproc"]
        raise click.exceptions.Exit(subprocess.call([sys.executable, "-m", "torch.distributed.run",
                                                     "--nproc-per-node", str(nproc), "-m", "bbans_cli", *argv]))
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
    if done is None:  # another process of a torchrun run: rank 0 exports and reports
        return
    elbo = done["test_neg_elbo_bpd"]
    click.echo(f"model {done['name']}, sha256 {short_sha(done['sha256'])}"
               + (f"; coding-model -ELBO on test[:{done['test_items']}] {elbo:.4f} bits/dim" if elbo is not None
                  else ""))
    click.echo(f"use it with: bbans compress DATA --model {out} ({fmt_bytes(out.stat().st_size)})")


def _terminate(signum, frame):
    raise Terminated  # SIGTERM cleans up like Ctrl-C: temporary outputs are removed


def main(argv=None):
    """Console-script entry point: runs the command, then ends the process (``_finish``) with its exit status."""
    global _STANDALONE
    _STANDALONE = True
    # worker processes and multiprocessing's resource tracker start with this process's -W options: after a pool
    # stopped by an error (see _finish) the tracker would warn about the pool's semaphores it then cleans up
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, prog_name="bbans")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _finish(code)
    sys.exit(code)


def _finish(code: int, grace: float = 3.0) -> None:
    """The command is over. A Ctrl-C or SIGTERM from now on interrupts nothing: the process exits with the
    command's own status instead of dying by the signal. And the interpreter's exit must neither hang nor print
    tracebacks: a process pool stopped by an error (a closed stdout, a full disk, Ctrl-C) can leave its queue
    threads blocked for ever or its pipes closed, and Python joins and wakes them at exit. So after a failure with
    such threads or processes left, leave at once; after a success, if the exit has not happened ``grace``
    seconds later (outputs and temporary files were already dealt with either way)."""
    import threading

    signal.signal(signal.SIGINT, lambda *a: _hard_exit(code))
    signal.signal(signal.SIGTERM, lambda *a: _hard_exit(code))
    if threading.active_count() > 1 or _has_children():
        if code != 0:
            _hard_exit(code)
        timer = threading.Timer(grace, _hard_exit, (code,))
        timer.daemon = True
        timer.start()


def _has_children() -> bool:
    mp = sys.modules.get("multiprocessing")
    try:
        return bool(mp and mp.active_children())
    except Exception:  # noqa: BLE001 -- only a hint
        return False


def _hard_exit(code: int) -> None:
    from .inputs import remove_spooled

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- e.g. a closed pipe: nothing more can be said there
            pass
    remove_spooled()
    os._exit(code)


if __name__ == "__main__":
    main()
