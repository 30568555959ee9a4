"""Folders as data sets: ``bbans compress DIR`` writes one collection archive of every file below DIR (each member
keeps its relative name and is coded as ``bbans compress`` codes that file alone: its format, shape and metadata
kept), and ``bbans decompress`` of a collection restores the folder — same names, same pixels, other files byte for
byte. Members are coded one per task: in this process, in ``-j`` processes, or on a Dask cluster (``--scheduler``;
the workers read the files from the same paths, so the folder must be on a filesystem they all see).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from bbans.container.pipeline import CollectionReader, EncodeOptions, encode, encode_collection
from bbans.container.sinks import MemorySink
from bbans.errors import InputError

from . import formats
from .inputs import open_input
from .restore import write_file


@dataclass(frozen=True)
class FileMember:
    """One file of a folder: its member name (relative, '/'-separated) and its absolute path."""

    name: str
    path: str


def folder_members(root: Path) -> list[FileMember]:
    """Every regular file below ``root`` (symbolic links are skipped: a collection stores files), sorted by name."""
    root = Path(root)
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out.append(FileMember(p.relative_to(root).as_posix(), str(p.resolve())))
    if not out:
        raise InputError(f"{root}: the folder holds no files to compress")
    return out


def encode_file_member(spec: FileMember, options: EncodeOptions):
    """(archive bytes, Report) of one file, coded as ``bbans compress FILE`` codes it (a module-level function:
    worker processes and Dask workers import it)."""
    inp = open_input(spec.path)
    sink = MemorySink()
    report = encode(inp.source, sink, replace(options, extra=inp.info), file_bytes=inp.file_bytes_fallback())
    return sink.getvalue(), report


def compress_folder(root: Path, sink, options: EncodeOptions, progress=None):
    """Write the collection of ``root``'s files to ``sink``; returns the pipeline's ``CollectionReport``."""
    return encode_collection(folder_members(root), sink, encode_file_member, options, progress)


def restore_folder(f, out_dir: Path, force: bool, model=None, progress=None) -> list[tuple[str, int]]:
    """Restore every member of the collection in the binary file ``f`` under ``out_dir``; returns (name, bytes
    written) per member. Each file appears only once its checksums verified (``OutputFile``)."""
    reader = CollectionReader(f)
    out_dir = Path(out_dir)
    done = []
    for k, name in enumerate(reader.names):
        member = reader.member(k)
        container = formats.parse_info(member.extra)
        target = out_dir.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = formats.file_prefix(container, member.shape)
        done.append((name, write_file(target, force, container, prefix, member.items(model=model))))
        if progress is not None:
            progress(k + 1, len(reader.names))
    return done
