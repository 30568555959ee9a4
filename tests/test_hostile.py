"""Never lose data: hostile archives (bounded fuzz), multi-chunk archives (random access, identical bytes for any
number of processes, bounded claims), any input file through the CLI (raw bytes, stdin/stdout, --rm)."""
from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import bbans
from bbans.container import archive
from bbans.container import chunked
from bbans.container import pipeline
from bbans.container.binary import varint
from bbans.container.sinks import MemorySink
from bbans.container.sources import ArraySource
from bbans.errors import ArchiveError, InputError, ModelError
from fuzzing import field_data, join_chunked, mutate, run_case, split_chunked, toy_corpus
from toy_models import FakeEntryPoint, FakeProvider, ToyBinary, install_providers

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TOY = ToyBinary((4, 4))


@pytest.fixture(scope="module")
def corpus():
    return toy_corpus()


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), pick=st.integers(0, 100))
def test_mutated_archives_end_in_our_errors(corpus, seed, pick):
    """Truncated, flipped, overwritten, spliced archives (checksums mostly repaired): a bbans error or the
    original data, within a time limit; never another exception, a hang or different data."""
    rng = np.random.default_rng(seed)
    sample, other = corpus[pick % len(corpus)], corpus[(pick * 7 + 3) % len(corpus)]
    outcome, detail = run_case(mutate(rng, sample.blob, other.blob), sample, seconds=20)
    assert outcome in ("clean", "same"), (sample.name, outcome, detail)


# ---------------------------------------------------------------------------------------------- chunked format


def test_chunked_round_trip_and_every_range():
    data = field_data(23)
    blob, rep = bbans.compress_with_report(data, TOY, chunk_items=5, method="bits-back")
    assert rep.n_chunks == 5 and rep.methods == {"bits-back": 5}
    np.testing.assert_array_equal(bbans.decompress(blob, TOY), data)
    with pytest.raises(ArchiveError, match="multi-chunk archive"):
        bbans.read_header(blob)
    f = io.BytesIO(blob)
    h = chunked.read_index(f)
    assert (h.n_chunks, h.chunk_items, h.shape) == (5, 5, (23, 4, 4))
    for i, j in [(0, 1), (4, 6), (5, 10), (22, 23), (0, 23), (3, 19)]:
        got = np.concatenate(list(pipeline.ArchiveReader(f).items(i, j, model=TOY)))
        np.testing.assert_array_equal(got, data[i:j])


def test_a_range_decodes_only_its_chunks():
    """Damage every chunk but one: that chunk's items still decode alone; decoding all fails cleanly."""
    data = field_data(20)
    blob, _ = bbans.compress_with_report(data, TOY, chunk_items=5, method="bits-back")
    pro, chunks, index = split_chunked(blob)
    broken = [c if k == 2 else c[:-1] + bytes([c[-1] ^ 1]) for k, c in enumerate(chunks)]
    bad = join_chunked(pro, broken, index)
    f = io.BytesIO(bad)
    h = chunked.read_index(f)
    got = np.concatenate(list(pipeline.ArchiveReader(f).items(11, 14, model=TOY)))
    np.testing.assert_array_equal(got, data[11:14])
    with pytest.raises(ArchiveError, match="checksum"):
        bbans.decompress(bad, TOY)


def test_whole_data_checksum_is_checked():
    data = field_data(12)
    blob, _ = bbans.compress_with_report(data, TOY, chunk_items=4, method="bits-back")
    pro, chunks, index = split_chunked(blob)
    index = index[:-4] + ((int.from_bytes(index[-4:], "little") ^ 1).to_bytes(4, "little"))
    with pytest.raises(ArchiveError, match="whole-data checksum"):
        bbans.decompress(join_chunked(pro, chunks, index, fix_lengths=False), TOY)


def test_chunks_pick_their_own_methods_and_stay_near_raw_size():
    rng = np.random.default_rng(1)
    data = np.concatenate([field_data(6), rng.integers(0, 2, size=(6, 4, 4), dtype=np.uint8)])
    blob, rep = bbans.compress_with_report(data, TOY, chunk_items=6)
    np.testing.assert_array_equal(bbans.decompress(blob, TOY), data)
    noise = rng.integers(0, 256, size=50_000, dtype=np.uint8)
    blob, rep = bbans.compress_with_report(noise, None, chunk_items=20_000)
    assert rep.methods == {"stored": 3}
    assert len(blob) <= noise.size + 3 * 32 + 32
    np.testing.assert_array_equal(bbans.decompress(blob), noise)


def test_absurd_claims_are_refused_before_allocating():
    f = io.BytesIO()
    w = chunked.ChunkedWriter(f, (3, 2), b"", 3)
    part = np.arange(6, dtype=np.uint8).reshape(3, 2)
    w.add(bbans.compress(part, method="stored"), part)
    w.finish()
    pro, chunks, index = split_chunked(f.getvalue())
    for shape, c, match in [((10 ** 11, 2), 3, "index lists"), ((2 ** 41, 2), 3, "2\\^40"),
                            ((3, 2), 2 ** 40, "more than bbans codes in one chunk")]:
        p = (pro[:8] + b"".join(varint(d) for d in shape) + varint(0) + varint(c))
        with pytest.raises(ArchiveError, match=match):
            bbans.decompress(join_chunked(p, chunks, index, fix_lengths=False))
    big = archive.ArchiveHeader(method="stored", shape=(10 ** 6, 10 ** 6), data_crc32=0)  # 10^12 < 2^40 values
    with pytest.raises(ArchiveError, match="in one piece"):
        bbans.decompress(archive.pack(big, b"x"))
    bomb = archive.ArchiveHeader(method="deflate", shape=(10 ** 8,), data_crc32=0)  # deflate expands <= 1032x
    with pytest.raises(ArchiveError, match="deflate"):
        bbans.decompress(archive.pack(bomb, zlib.compress(b"\0" * 1000)[2:-4]))


def test_a_bits_back_archive_claiming_more_items_stops_early():
    """An exhausted ANS stack pops zeros forever; the decoder must notice and stop, not decode 10^6 batches."""
    data = field_data(10)
    blob = bbans.compress(data, TOY, method="bits-back", batch_size=5)
    h, words = archive.unpack(blob)
    for n, schedule, match in [(10 + 10 ** 6, h.schedule + [(1, 1, 10 ** 6)], "claims 1000010 items"),
                               (10 + 10 ** 6, h.schedule + [(10 ** 6, 1, 1)], "claims"),
                               (60, h.schedule + [(1, 1, 50)], None)]:  # within the bound: decodes garbage, then fails
        h2 = archive.ArchiveHeader(**{**h.__dict__, "shape": (n, 4, 4), "schedule": schedule})
        with pytest.raises(ArchiveError, match=match):
            bbans.decompress(archive.pack(h2, words), TOY)


def test_parallel_needs_a_model_reference():
    with pytest.raises(InputError, match="by name or path"):
        pipeline.encode(ArraySource(field_data(4)), MemorySink(),
                        pipeline.EncodeOptions(chunk_items=2, jobs=2), model=TOY)


# ------------------------------------------------------------------------------------------------------ CLI


def run(*args, input=None):
    from bbans_cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def test_cli_parallel_chunks_give_identical_archives_and_ranges(tmp_path):
    """Shipped binarized model, 4 chunks: -j 1 and -j 2 write the same bytes; --range returns exactly the items."""
    data = np.load(SAMPLES / "binarized-mnist-test-100.npy")[:30]
    src = tmp_path / "b.npy"
    np.save(src, data)
    common = ["--chunk-items", 8, "--no-elbo", "--method", "bits-back"]
    r1 = run("compress", src, *common, "-o", tmp_path / "j1.bba")
    r2 = run("compress", src, *common, "-o", tmp_path / "j2.bba", "-j", 2)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert "4 independent chunks" in r1.output and "bits-back" in r1.output
    assert (tmp_path / "j1.bba").read_bytes() == (tmp_path / "j2.bba").read_bytes()
    r = run("decompress", tmp_path / "j1.bba", "--range", "10:19", "-o", tmp_path / "part.npy")
    assert r.exit_code == 0 and "2 of 4 chunks decoded" in r.output, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "part.npy"), data[10:19])
    r = run("decompress", tmp_path / "j2.bba", "-o", tmp_path / "all.npy", "-j", 2)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "all.npy").read_bytes() == src.read_bytes()
    r = run("info", tmp_path / "j1.bba")
    assert r.exit_code == 0 and "multi-chunk" in r.output and "binarized-mnist" in r.output, r.output


@pytest.fixture
def toy_installed(monkeypatch):
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(TOY)))


def test_cli_any_file_round_trips_near_raw_size(tmp_path, toy_installed):
    rng = np.random.default_rng(0)
    for name, payload in [("noise.bin", rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes()),
                          ("text.txt", b"".join(b"line %d: the quick brown fox\n" % i for i in range(3000))),
                          ("big-noise.bin", rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes())]:
        src = tmp_path / name
        src.write_bytes(payload)
        extra = ["--chunk-items", 30_000] if name.startswith("big") else []
        r = run("compress", src, *extra)
        assert r.exit_code == 0 and "raw bytes" in r.output, r.output
        arc = tmp_path / (name + ".bba")
        assert arc.stat().st_size <= len(payload) + 64 + (3 * 32 if extra else 0)
        src.unlink()
        assert run("decompress", arc).exit_code == 0
        assert src.read_bytes() == payload


def test_cli_stdin_stdout_keep_and_rm(tmp_path, toy_installed):
    payload = b"hello, stdin " * 100
    r = run("compress", "-", input=payload)
    assert r.exit_code == 0
    blob = r.stdout_bytes
    assert blob.startswith(archive.MAGIC) and b"hello" not in blob[:20]
    r = run("decompress", "-", input=blob)
    assert r.exit_code == 0 and r.stdout_bytes == payload
    src = tmp_path / "t.txt"
    src.write_bytes(payload)
    assert run("compress", src, "--rm").exit_code == 0
    assert not src.exists() and (tmp_path / "t.txt.bba").exists()
    assert run("decompress", tmp_path / "t.txt.bba", "-k").exit_code == 0
    assert src.read_bytes() == payload and (tmp_path / "t.txt.bba").exists()
    r = run("decompress", tmp_path / "t.txt.bba", "-c")
    assert r.exit_code == 0 and r.stdout_bytes == payload
    src.unlink()
    assert run("decompress", tmp_path / "t.txt.bba", "--rm").exit_code == 0
    assert src.read_bytes() == payload and not (tmp_path / "t.txt.bba").exists()
    r = run("compress", src, "-k", "--rm")
    assert r.exit_code == 2 and "contradict" in r.output


def test_cli_failed_decode_writes_nothing(tmp_path, toy_installed):
    data = field_data(12)
    src = tmp_path / "d.npy"
    np.save(src, data)
    assert run("compress", src, "--chunk-items", 4, "--method", "bits-back").exit_code == 0
    blob = (tmp_path / "d.npy.bba").read_bytes()
    pro, chunks, index = split_chunked(blob)
    chunks[2] = chunks[2][:-5] + bytes([chunks[2][-5] ^ 0x40]) + chunks[2][-4:]  # damage the last chunk
    (tmp_path / "bad.bba").write_bytes(join_chunked(pro, chunks, index))
    src.unlink()
    r = run("decompress", tmp_path / "bad.bba", "-o", tmp_path / "out.npy")
    assert r.exit_code == 3 and "bbans: error:" in r.output and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bba", "d.npy.bba"]
    r = run("decompress", tmp_path / "d.npy.bba", "--range", "5:99")
    assert r.exit_code == 2 and "0:12" in r.output, r.output


def test_a_model_error_in_a_chunk_is_clean(tmp_path, toy_installed):
    data = field_data(12)
    blob, _ = bbans.compress_with_report(data, TOY, chunk_items=4, method="bits-back")
    with pytest.raises(ModelError):
        bbans.decompress(blob, ToyBinary((4, 4), sharpness=2.0))


def test_cli_a_photo_no_model_fits_never_grows(tmp_path, toy_installed):
    """A PNG whose pixels code larger than the PNG itself is archived as the file's bytes (restored exactly); the
    archive never exceeds the PNG plus a header."""
    from PIL import Image

    x = np.linspace(0, 255, 64)
    grad = (np.add.outer(x, x) / 2).astype(np.uint8)  # PNG's filters code a gradient far below its pixel bytes
    src = tmp_path / "photo.png"
    Image.fromarray(np.stack([grad, grad[::-1], grad.T], -1)).save(src)
    original = src.read_bytes()
    r = run("compress", src)
    # since the image codecs: JPEG-XL codes this gradient below the PNG (232 against 336 bytes); else the file bytes
    assert r.exit_code == 0 and ("own" in r.output or "jpegxl" in r.output), r.output
    assert (tmp_path / "photo.png.bba").stat().st_size <= len(original) + 64
    src.unlink()
    assert run("decompress", tmp_path / "photo.png.bba").exit_code == 0
    assert src.read_bytes() == original
