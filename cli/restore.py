"""``bbans decompress``'s work: an archive file -> the file it was made from (or a range of its items), written
through an ``OutputFile`` so nothing appears under the output's name unless every checksum verified (standard
output gets a multi-chunk archive chunk by chunk); and ``bbans test``'s: the same decoding, written nowhere."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bbans.container.pipeline import ArchiveReader
from bbans.errors import InputError

from . import formats
from .inputs import STDIN, readable_size, spool_stdin
from .outputs import OutputFile, check_not_input, output_path


@dataclass
class Restored:
    out: str
    kind: str
    nbytes: int
    shape: tuple
    whole: bool
    chunks_read: int
    chunks: int
    gzip: bool = False  # idx: the original was gzip-compressed
    from_stdin: bool = False
    archive: str = ""
    archive_bytes: int = 0
    method: str = ""
    model: str | None = None
    container: str = ""


@dataclass
class Tested:
    kind: str
    shape: tuple
    archive_bytes: int
    method: str
    model: str | None
    chunks: int
    container: str


def _method_and_model(f, reader) -> tuple[str, str | None]:
    from collections import Counter

    from bbans.container import archive, chunked
    from bbans.container.archive import BITS_BACK_METHODS
    from bbans.container.registry import archive_model_name

    if not reader.chunked:
        h = reader.header
        return h.method, (archive_model_name(h.model_name, h.model_sha256) if h.method in BITS_BACK_METHODS
                          else None)
    heads = [archive.read_header(chunked.chunk_blob(f, reader.header, k)) for k in range(reader.n_chunks)]
    methods = Counter(c.method for c in heads)
    models = sorted({archive_model_name(c.model_name, c.model_sha256) for c in heads if c.method in BITS_BACK_METHODS})
    text = ", ".join(f"{m} ({n} chunk{'s' if n != 1 else ''})" for m, n in methods.most_common())
    return text, ", ".join(models) or None


def write_file(target: Path | None, force: bool, container, prefix: bytes | None, parts) -> int:
    """Write the file ``container`` describes from the decoded item arrays ``parts`` to ``target`` (None: stdout):
    ``prefix`` (``formats.file_prefix``) then the items' bytes, or, for a PNG (``prefix`` None), the rendered image;
    returns the bytes written. The file appears only when complete (``OutputFile``)."""
    with OutputFile(target, force) as sink:
        if prefix is None:  # a PNG: rendered whole
            sink.write(formats.render(np.concatenate(list(parts)), container))
        else:
            sink.write(prefix)
            for part in parts:
                sink.write(np.ascontiguousarray(part).tobytes())
        sink.commit()
        return sink.bytes_written


def parse_range(text: str, n: int) -> tuple[int, int]:
    """'i:j' (either side may be empty; Python slice bounds, no negatives) -> (i, j) checked against n items."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        i = int(parts[0]) if parts[0].strip() else 0
        j = int(parts[1]) if parts[1].strip() else n
    except ValueError:
        raise InputError(f"--range {text!r}: give items as I:J (e.g. 0:100 or 5000:), 0-based, J excluded") from None
    if not 0 <= i < j <= n:
        raise InputError(f"--range {text}: the archive holds items 0:{n}; give 0 <= I < J <= {n}")
    return i, j


def restore(file, output: Path | None, to_stdout: bool, force: bool, item_range: str | None, model, model_ref,
            jobs: int, progress, scheduler: str | None = None) -> Restored:
    """Decode the archive ``file`` (``-``: stdin) into ``output`` (default: the name without .bba; None with
    ``to_stdout``), all items or ``item_range`` ('I:J'); chunks on ``jobs`` processes or a Dask ``scheduler``."""
    from_stdin = str(file) == STDIN
    path = spool_stdin() if from_stdin else Path(file)
    readable_size(path)
    to_stdout = to_stdout or (from_stdin and output is None)
    with open(path, "rb") as f:
        reader = ArchiveReader(f, str(path))
        container = formats.parse_info(reader.extra)
        n = reader.n_items
        i, j = parse_range(item_range, n) if item_range else (0, n)
        default = formats.default_output(Path("stdin.bba") if from_stdin else path, container)
        target = None if to_stdout else output_path(output, default)
        check_not_input(target, None if from_stdin else path, "archive")
        shape = (j - i, *reader.shape[1:])
        prefix = formats.file_prefix(container, shape)
        if prefix is None and (i, j) != (0, n):
            raise InputError(f"--range: a {container.kind} archive holds one image; decode it whole")
        parts = reader.items(i, j, model=model, model_ref=model_ref, jobs=jobs, scheduler=scheduler,
                             progress=progress)
        written = write_file(target, force, container, prefix, parts)
        method, model_name = _method_and_model(f, reader)
    return Restored(str(target) if target is not None else "stdout", container.kind, written, shape,
                    (i, j) == (0, n), reader.chunks_for(i, j), reader.n_chunks, container.gzip, from_stdin,
                    "stdin" if from_stdin else str(path), reader.header.archive_bytes, method, model_name,
                    container.describe(reader.shape))


def test_archive(file, model, model_ref, jobs: int, progress) -> Tested:
    """Decode the archive ``file`` (``-``: stdin) completely, checking every checksum and that the file it holds
    can be written back (its stored header or PNG chunks), without writing anything."""
    from_stdin = str(file) == STDIN
    path = spool_stdin() if from_stdin else Path(file)
    readable_size(path)
    with open(path, "rb") as f:
        reader = ArchiveReader(f, str(path))
        container = formats.parse_info(reader.extra)
        prefix = formats.file_prefix(container, reader.shape)
        parts = reader.items(model=model, model_ref=model_ref, jobs=jobs, progress=progress)
        if prefix is None:
            formats.render(np.concatenate(list(parts)), container)
        else:
            for _ in parts:  # each chunk is checked as it is decoded, the whole data after the last one
                pass
        method, model_name = _method_and_model(f, reader)
    kind = container.kind if container.kind != "none" else "npy"
    return Tested(kind, reader.shape, reader.header.archive_bytes, method, model_name, reader.n_chunks,
                  container.describe(reader.shape))
