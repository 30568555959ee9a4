"""Collection archives (bbans/container/collection.py): many named members in one archive, each coded on its own;
identical bytes for any number of workers; hostile names and damaged indexes refused cleanly."""
from __future__ import annotations

import io
import zlib

import numpy as np
import pytest

import bbans
from bbans.container import collection
from bbans.container.pipeline import ArchiveReader, CollectionReader
from bbans.errors import ArchiveError, InputError
from toy_models import install_providers


@pytest.fixture(autouse=True)
def no_installed_models(monkeypatch):
    install_providers(monkeypatch)


def members() -> dict:
    rng = np.random.default_rng(3)
    return {"photos/a.npy": rng.integers(0, 4, (3, 5, 7, 3), dtype=np.uint8),
            "photos/deeper/b": rng.integers(0, 256, (2, 9, 4), dtype=np.uint8),
            "notes.txt": np.frombuffer(b"bits back " * 40, np.uint8).copy(),
            "empty.bin": np.zeros(0, np.uint8)}


def test_round_trip_and_reader():
    m = members()
    blob = bbans.compress_collection(m)
    back = bbans.decompress_collection(blob)
    assert list(back) == list(m) and all(np.array_equal(back[k], m[k]) for k in m)
    reader = CollectionReader(io.BytesIO(blob))
    assert reader.names == list(m)
    assert reader.member(1).shape == (2, 9, 4)
    with pytest.raises(ArchiveError, match="collection"):
        ArchiveReader(io.BytesIO(blob))


def test_worker_processes_write_the_same_bytes():
    m = members()
    assert bbans.compress_collection(m, jobs=2) == bbans.compress_collection(m)


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\x00b", "x/.."])
def test_unsafe_names_are_refused(name):
    with pytest.raises(InputError):
        bbans.compress_collection({name: np.zeros(3, np.uint8)})


def _with_name(blob: bytes, old: bytes, new: bytes) -> bytes:
    """The collection with a member name replaced in its index (same length), index CRC repaired."""
    n_index = int.from_bytes(blob[-12:-8], "little")
    start = len(blob) - 12 - n_index
    index = blob[start:-12].replace(old, new)
    return blob[:start] + index + blob[-12:-8] + zlib.crc32(index).to_bytes(4, "little") + blob[-4:]


def test_a_hostile_index_is_refused():
    blob = bbans.compress_collection({"aa/b": np.zeros(3, np.uint8), "c": np.ones(2, np.uint8)})
    for bad in (b"../b", b"/a/b"):
        with pytest.raises(ArchiveError, match="unsafe"):
            bbans.decompress_collection(_with_name(blob, b"aa/b", bad))
    with pytest.raises(ArchiveError, match="two members"):
        bbans.decompress_collection(_duplicate_names())
    for cut in (1, 5, 13, len(blob) // 2):
        with pytest.raises(ArchiveError):
            bbans.decompress_collection(blob[:-cut])


def _duplicate_names() -> bytes:
    """A collection of two members both named 'c' (the writer refuses that, so the index is edited)."""
    sink = io.BytesIO()
    w = collection.CollectionWriter(sink, 2)
    one = bbans.compress(np.ones(2, np.uint8))
    w.add("c", one)
    w.add("d", one)
    w.finish()
    return _with_name(sink.getvalue(), b"\x01d", b"\x01c")


def test_cli_folder_round_trip(tmp_path):
    """``bbans compress DIR`` writes one collection; ``bbans decompress`` restores the folder: names, bytes (pixels
    for PNG) identical; ``bbans info`` lists the members by name."""
    from click.testing import CliRunner
    from PIL import Image

    from bbans_cli.main import cli

    src = tmp_path / "data"
    (src / "deep" / "er").mkdir(parents=True)
    np.save(src / "deep" / "a.npy", np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(src / "deep" / "er" / "b.png")
    (src / "c.txt").write_bytes(b"no model fits this " * 20)
    run = CliRunner().invoke
    r = run(cli, ["compress", str(src), "--json"])
    assert r.exit_code == 0, r.output
    r = run(cli, ["info", str(tmp_path / "data.bba")])
    assert r.exit_code == 0 and "c.txt" in r.output and "deep/er/b.png" in r.output, r.output
    r = run(cli, ["decompress", str(tmp_path / "data.bba"), "-o", str(tmp_path / "back")])
    assert r.exit_code == 0, r.output
    back = tmp_path / "back"
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file()) == \
        ["c.txt", "deep/a.npy", "deep/er/b.png"]
    assert (back / "c.txt").read_bytes() == (src / "c.txt").read_bytes()
    assert (back / "deep" / "a.npy").read_bytes() == (src / "deep" / "a.npy").read_bytes()
    assert np.array_equal(np.asarray(Image.open(back / "deep" / "er" / "b.png")),
                          np.asarray(Image.open(src / "deep" / "er" / "b.png")))
