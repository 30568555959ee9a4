"""The archive format and the public API: round trips for every method, layout independence, corruption, errors."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import bbans
from bbans.bitsback.protocol import variant_digest
from bbans.container import archive
from bbans.errors import ArchiveError, BBANSError, InputError, ModelError
from toy_models import FakeEntryPoint, FakeProvider, ToyBinary, ToyCoin, ToyGrey, install_providers

FAST = settings(max_examples=60, deadline=None)
CLASSIC = ["deflate", "lzma", "bz2", "stored"]


@pytest.fixture(autouse=True)
def no_installed_models(monkeypatch):
    """Isolate from the real model plugins: by default no model is installed."""
    install_providers(monkeypatch)


def field_data(n, shape=(4, 4), seed=0):
    """Binary items the toy model likes (mostly constant, 10% flipped pixels)."""
    rng = np.random.default_rng(seed)
    return ((rng.uniform(size=(n, 1, 1)) < 0.5) ^ (rng.uniform(size=(n, *shape)) < 0.1)).astype(np.uint8)


def refix_crc(blob: bytes) -> bytes:
    """Recompute the trailing CRC, to get a damaged archive past the first line of defence."""
    return blob[:-4] + zlib.crc32(blob[:-4]).to_bytes(4, "little")


# ---------------------------------------------------------------- header


def test_header_round_trip_bits_back():
    model = ToyBinary()
    x = field_data(30)
    blob = bbans.compress(x, model, method="bits-back", extra=b"container:idx", batch_size=8)
    h = bbans.read_header(blob)
    assert (h.method, h.shape, h.dtype, h.version) == ("bits-back", (30, 4, 4), "uint8", archive.FORMAT_VERSION)
    assert (h.model_name, h.model_sha256) == (None, model.sha256[:12])  # layout 3: a sha256 prefix, no name
    h2 = bbans.read_header(bbans.compress(x, model, method="bits-back", batch_size=8, format_version=2))
    assert (h2.version, h2.model_name, h2.model_sha256) == (2, model.name, model.sha256[:16])
    assert h.settings_digest == variant_digest(model.coder_settings, {}) & 0xFFFF  # layout 3: its low 16 bits
    assert h2.settings_digest == variant_digest(model.coder_settings, {})
    assert h.extra == b"container:idx" and h.data_crc32 == zlib.crc32(x.tobytes())
    assert 1 <= h.seed_items <= 30 and h.ramp[3] == 8  # (start bits, net bits, pop bits, batch size)
    v1 = bbans.read_header(bbans.compress(x, model, method="bits-back", batch_size=8, format_version=1))
    assert (v1.version, v1.model_sha256, v1.coder_settings) == (1, model.sha256, model.coder_settings)
    assert sum(s * r for s, _, r in v1.schedule) == 30 and v1.schedule[0][0] == 1
    assert 0 <= h.prefix_words <= h.seed_words and h.archive_bytes == len(blob) and h.n_items == 30


def test_pack_unpack_round_trip():
    h = archive.ArchiveHeader(method="bits-back", shape=(3, 2, 5), data_crc32=0xDEADBEEF, extra=b"\x00\xff",
                              model_name="m\u00e9", model_sha256="ab" * 32, coder_settings={"b": [1, 2], "a": "x"},
                              schedule=[(1, 1, 1), (2, 1, 1)], seed_words=9, prefix_words=4)
    words = np.array([1, 2**32 - 1, 7], np.uint32)
    blob = archive.pack(h, words)
    g, out = archive.unpack(blob)
    np.testing.assert_array_equal(out, words)
    assert (g.shape, g.data_crc32, g.extra, g.model_name, g.model_sha256) == (h.shape, h.data_crc32, h.extra,
                                                                              h.model_name, h.model_sha256)
    assert (g.coder_settings, g.schedule, g.seed_words, g.prefix_words, g.payload_bytes) == (
        h.coder_settings, h.schedule, 9, 4, 12)
    assert blob[:4] == archive.MAGIC and blob[-4:] == zlib.crc32(blob[:-4]).to_bytes(4, "little")
    assert blob[-16:-4] == words.astype("<u4").tobytes()  # little-endian words at the end


def test_fallback_header_is_small():
    img = np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8)
    blob = bbans.compress(img, method="stored")
    assert len(blob) - img.nbytes <= 30
    blob, rep = bbans.compress_with_report(img)
    assert rep.method in CLASSIC and len(blob) <= img.nbytes + 30 and "no installed model" in rep.reason


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("method", CLASSIC)
@pytest.mark.parametrize("shape", [(0, 28, 28), (1,), (5, 3), (2, 0, 4), (7, 4, 4, 3)])
def test_classic_round_trip(method, shape):
    x = np.random.default_rng(1).integers(0, 4, shape, dtype=np.uint8)
    blob = bbans.compress(x, method=method, extra=b"e")
    out = bbans.decompress(blob)
    assert out.dtype == np.uint8 and out.shape == x.shape and out.flags.writeable
    np.testing.assert_array_equal(out, x)


@FAST
@given(n=st.integers(0, 40), b=st.integers(1, 50), seed=st.integers(0, 2 ** 32 - 1), grey=st.booleans())
def test_bits_back_round_trip(n, b, seed, grey):
    model = ToyGrey((3,)) if grey else ToyBinary((3, 2))
    lo, hi = model.value_range
    x = np.random.default_rng(seed).integers(lo, hi + 1, (n, *model.data_shape)).astype(np.uint8)
    blob, rep = bbans.compress_with_report(x, model, method="bits-back", batch_size=b)
    assert rep.method == "bits-back" and rep.archive_bytes == len(blob) and rep.n_items == n
    np.testing.assert_array_equal(bbans.decompress(blob, model), x)


def test_auto_never_exceeds_raw_plus_header():
    model = ToyGrey((3,))
    for x in [np.zeros((200, 3), np.uint8), np.random.default_rng(2).integers(0, 256, (50, 3), dtype=np.uint8)]:
        blob, rep = bbans.compress_with_report(x, model)
        assert len(blob) <= x.nbytes + 30
        np.testing.assert_array_equal(bbans.decompress(blob, model), x)
    assert rep.method in CLASSIC + ["bits-back"]


def test_auto_picks_bits_back_when_it_wins_and_classic_when_not():
    model, rng = ToyCoin(), np.random.default_rng(6)
    bias = np.where(rng.uniform(size=(400, 1, 1)) < 0.5, 0.1, 0.9)  # entropy ~31 bits per item; classical ~48+
    x = (rng.uniform(size=(400, 8, 8)) < bias).astype(np.uint8)
    blob, rep = bbans.compress_with_report(x, model)
    assert rep.method == "bits-back" and "beat the best classical" in rep.reason
    assert rep.initial_bits == 0 and rep.seed_items > 0 and rep.payload_bits > 0 and rep.model_name == model.name
    np.testing.assert_array_equal(bbans.decompress(blob, model), x)
    same = np.full((400, 3), 50, np.uint8)  # ToyGrey codes 50 at ~28 bits per item; deflate in a few bytes
    blob, rep = bbans.compress_with_report(same, ToyGrey((3,)))
    assert rep.method in CLASSIC and "smaller than bits-back" in rep.reason
    np.testing.assert_array_equal(bbans.decompress(blob), same)
    zeros = np.zeros((400, 3), np.uint8)  # p(0 | z = 0) codes these under one bit each: no bits-back archive
    blob, rep = bbans.compress_with_report(zeros, ToyGrey((3,)))
    assert rep.method in CLASSIC and "under one bit each" in rep.reason
    np.testing.assert_array_equal(bbans.decompress(blob), zeros)  # no model needed for a classical archive


def test_memory_layout_gives_identical_archives():
    model = ToyBinary()
    big = field_data(80, shape=(8, 8), seed=3)
    views = [big[::2, 2:6, 1:5], big[::2, 2:6, 1:5].copy(), np.asfortranarray(big[::2, 2:6, 1:5]),
             big.transpose(0, 2, 1).transpose(0, 2, 1)[::2, 2:6, 1:5]]
    for method in ["bits-back", "auto", "lzma"]:
        blobs = {bbans.compress(v, model, method=method, batch_size=7) for v in views}
        assert len(blobs) == 1


def test_empty_data_round_trips_everywhere():
    model = ToyBinary()
    x = np.zeros((0, 4, 4), np.uint8)
    for method in ["auto", "bits-back", *CLASSIC]:
        blob = bbans.compress(x, model, method=method)
        out = bbans.decompress(blob, model)
        assert out.shape == (0, 4, 4) and out.dtype == np.uint8


def test_progress_is_reported():
    model, x, seen = ToyBinary(), field_data(50), []
    blob = bbans.compress(x, model, method="bits-back", batch_size=10, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (50, 50)
    seen.clear()
    bbans.decompress(blob, model, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (50, 50)


# ---------------------------------------------------------------- corruption and errors


def small_archives():
    model = ToyBinary((2, 2))
    return model, [bbans.compress(field_data(6, (2, 2)), model, method="bits-back", batch_size=3),
                   bbans.compress(np.arange(12, dtype=np.uint8).reshape(3, 4), method="deflate")]


def test_truncation_at_every_byte_is_an_archive_error():
    model, blobs = small_archives()
    for blob in blobs:
        for k in range(len(blob)):
            with pytest.raises(ArchiveError):
                bbans.decompress(blob[:k], model)
        with pytest.raises(ArchiveError):
            bbans.decompress(blob + b"\x00", model)


def test_every_single_bit_flip_is_an_archive_error():
    model, blobs = small_archives()
    for blob in blobs:
        for i in range(8 * len(blob)):
            bad = bytearray(blob)
            bad[i // 8] ^= 1 << (i % 8)
            with pytest.raises(ArchiveError):
                bbans.decompress(bytes(bad), model)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_damage_past_the_crc_still_ends_in_our_errors(data):
    """With the trailing CRC recomputed, any damage must give ArchiveError/ModelError or the original data."""
    model, blobs = small_archives()
    k = data.draw(st.integers(0, len(blobs) - 1))
    blob = bytearray(blobs[k])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(5, len(blob) - 5))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        out = bbans.decompress(refix_crc(bytes(blob)), model)
    except (ArchiveError, ModelError):
        return
    # survivable damage: the opaque extra field, or a varint spelled differently; the data checksum still held
    np.testing.assert_array_equal(out, bbans.decompress(blobs[k], model))


def test_not_an_archive_and_future_version():
    _, (blob, _) = small_archives()
    with pytest.raises(ArchiveError, match="not a bbans archive"):
        bbans.decompress(b"PK\x03\x04" + blob[4:])
    with pytest.raises(ArchiveError, match="not a bbans archive"):
        bbans.decompress(b"")
    future = refix_crc(blob[:4] + bytes([archive.FORMAT_VERSION + 1]) + blob[5:])
    with pytest.raises(ArchiveError, match="upgrade bbans"):
        bbans.read_header(future)


def test_absurd_sizes_are_rejected():
    h = archive.ArchiveHeader(method="stored", shape=(2 ** 21, 2 ** 20), data_crc32=0)
    with pytest.raises(ArchiveError, match="2\\^40"):
        bbans.decompress(archive.pack(h, b""))
    h = archive.ArchiveHeader(method="stored", shape=(4,), data_crc32=0)
    blob = bytearray(archive.pack(h, b"abcd"))
    blob[-9] = 0x7F  # payload length varint (4) -> 127, more than present
    with pytest.raises(ArchiveError, match="payload"):
        bbans.decompress(refix_crc(bytes(blob)))
    model = ToyBinary((1,))
    h = archive.ArchiveHeader(method="bits-back", shape=(1, 1), data_crc32=0, model_name=model.name,
                              model_sha256=model.sha256, coder_settings=model.coder_settings, schedule=[(1, 1, 1)],
                              seed_words=2 ** 30, prefix_words=0)
    with pytest.raises(ArchiveError, match="seed"):
        bbans.decompress(archive.pack(h, np.ones(1, np.uint32)), model)
    h.seed_words, h.schedule = 3, [(1, 1, 2)]  # schedule covers 2 items, the shape says 1
    with pytest.raises(ArchiveError, match="schedule"):
        bbans.decompress(archive.pack(h, np.ones(1, np.uint32)), model)


def test_model_mismatches_are_model_errors(monkeypatch):
    model = ToyBinary()
    blob = bbans.compress(field_data(10), model, method="bits-back")
    with pytest.raises(ModelError, match="sha256"):
        bbans.decompress(blob, ToyBinary(sharpness=2.0))
    other = ToyBinary()
    other.coder_settings = {"latent_bins": 31, "toy": 2}
    with pytest.raises(ModelError, match="settings"):
        bbans.decompress(blob, other)
    with pytest.raises(ModelError, match="not installed"):
        bbans.decompress(blob)  # nothing installed
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(ToyGrey(), model)))
    np.testing.assert_array_equal(bbans.decompress(blob), field_data(10))  # found by name + sha256


def test_auto_falls_back_when_the_installed_model_is_unusable(monkeypatch):
    broken = ToyBinary()
    broken.sha256 = "PENDING"
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(broken)))
    x = field_data(5)
    blob, rep = bbans.compress_with_report(x)
    assert rep.method in CLASSIC and "unusable" in rep.reason
    np.testing.assert_array_equal(bbans.decompress(blob), x)
    with pytest.raises(ModelError):
        bbans.compress(x, method="bits-back")

    class Missing(FakeProvider):
        def load(self, name):
            raise ModelError(f"model file {name}.safetensors not found")

    install_providers(monkeypatch, FakeEntryPoint("toys", Missing(broken)))
    blob, rep = bbans.compress_with_report(x)
    assert rep.method in CLASSIC and "failed to load" in rep.reason and "not found" in rep.reason
    with pytest.raises(ModelError, match="not found"):
        bbans.compress(x, method="bits-back")


def test_input_errors():
    with pytest.raises(InputError):
        bbans.compress(np.zeros((2, 2), np.float32))
    with pytest.raises(InputError):
        bbans.compress([[1, 2]])
    with pytest.raises(InputError):
        bbans.compress(np.zeros((2, 2), np.uint8), method="zip")
    with pytest.raises(InputError):
        bbans.compress(np.zeros((2, 2), np.uint8), batch_size=0)
    with pytest.raises(ModelError, match="shape"):
        bbans.compress(np.zeros((2, 3, 3), np.uint8), ToyBinary())
    with pytest.raises(ModelError, match="values"):
        bbans.compress(np.full((2, 4, 4), 2, np.uint8), ToyBinary())
    with pytest.raises(ModelError, match="no installed model"):
        bbans.compress(np.zeros((2, 4, 4), np.uint8), method="bits-back")
    bad = ToyBinary()
    bad.sha256 = "PENDING"
    with pytest.raises(ModelError, match="sha256"):
        bbans.compress(np.zeros((2, 4, 4), np.uint8), bad, method="bits-back")


def test_errors_are_bbans_errors_with_exit_codes():
    assert issubclass(ArchiveError, BBANSError) and ArchiveError.exit_code != ModelError.exit_code


def test_reference_input_packs_binary_data_for_classical_comparisons():
    from bbans.container.classic import reference_input, reference_sizes

    binary = np.zeros((2, 4, 4), np.uint8)
    binary[0, 0, :3] = 1
    raw, what = reference_input(binary)
    assert raw == np.packbits(binary.reshape(-1)).tobytes() and len(raw) == 4 and "packed" in what
    grey = binary * 200
    assert reference_input(grey)[0] == grey.tobytes()
    names = [name for name, _, _ in reference_sizes(raw)]
    assert names == ["gzip -9", "bz2 -9", "xz -9e"]


# ---------------------------------------------------------------- layout 3


def test_layout_3_is_layout_2_with_a_shorter_header():
    """The same chain in both layouts: equal stack words, and layout 3 saves the name, 2 sha256 bytes, 2 digest
    bytes, the payload's length varint and the top word's high zero bytes (docs/design.md, "Versioning")."""
    model, x = ToyBinary(), field_data(40)
    v3, v2 = (bbans.compress(x, model, method="bits-back", batch_size=8, format_version=v) for v in (3, 2))
    (h3, w3), (h2, w2) = archive.unpack(v3), archive.unpack(v2)
    assert (h3.version, h2.version) == (3, 2) and np.array_equal(w3, w2)
    assert (h3.ramp, h3.seed_items) == (h2.ramp, h2.seed_items) and h3.settings_digest == h2.settings_digest & 0xFFFF
    top_zero_bytes = (4 - (int(w2[-1]).bit_length() + 7) // 8)
    name = len(model.name.encode()) + 1
    assert len(v2) - len(v3) == name + 2 + 2 + len(archive.varint(w2.size)) + top_zero_bytes
    for blob in (v3, v2):
        np.testing.assert_array_equal(bbans.decompress(blob, model), x)


def test_layout_3_payload_trimming_edges():
    """A stack whose top word has 0..3 zero high bytes packs to 4..1 bytes of it and reads back whole; a payload
    ending in a zero byte (which no encoder writes) is refused, and so is a top word lost entirely."""
    model, x = ToyBinary(), field_data(20)
    h, words = archive.unpack(bbans.compress(x, model, method="bits-back", batch_size=8))
    for top in (0x12345678, 0x345678, 0x5678, 0x78):
        w = np.append(words[:-1], np.uint32(top))
        blob = archive.pack(h, w)
        assert archive.unpack(blob)[1].tolist() == w.tolist()
        assert len(blob) == len(archive.pack(h, np.append(words[:-1], np.uint32(0x12345678)))) - (
            4 - (top.bit_length() + 7) // 8)
    blob = archive.pack(h, words)
    with pytest.raises(ArchiveError, match="zero byte"):
        archive.unpack(refix_crc(blob[:-4] + b"\0" + blob[-4:]))
    with pytest.raises(ValueError):
        archive.pack(h, np.append(words, np.uint32(0)))
    with pytest.raises(ArchiveError):
        bbans.decompress(refix_crc(blob[:-5] + blob[-4:]), model)  # one payload byte short


def test_layout_3_finds_its_model_by_sha256_prefix_alone(monkeypatch):
    """No name in the archive: the installed provider's model with that weights prefix decodes it, and an
    archive whose model is not installed names the prefix."""
    model, x = ToyBinary(), field_data(30)
    blob = bbans.compress(x, model, method="bits-back", batch_size=8)
    assert model.name.encode() not in blob
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(model)))
    np.testing.assert_array_equal(bbans.decompress(blob), x)
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(ToyGrey())))
    with pytest.raises(ModelError, match=model.sha256[:12]):
        bbans.decompress(blob)
