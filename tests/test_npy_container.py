""".npy container info: the compact kind 6 (one byte of flags, the standard preamble rebuilt on restore) for files
whose preamble is exactly what np.save writes, the verbatim kind 1 for any other; both restore byte-identically."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from bbans.errors import ArchiveError
from bbans_cli import formats
from bbans_cli.main import cli
from toy_models import install_providers


@pytest.fixture(autouse=True)
def no_models(monkeypatch):
    """No model installed (classical methods only: the container info is what these tests are about)."""
    install_providers(monkeypatch)
    monkeypatch.setenv("BBANS_PROGRESS", "0")
    monkeypatch.delenv("BBANS_DEBUG", raising=False)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def preamble_of(payload: bytes) -> bytes:
    return formats.npy_preamble(payload)


def info_of(archive) -> bytes:
    from bbans.container.pipeline import ArchiveReader

    with open(archive, "rb") as f:
        return ArchiveReader(f, str(archive)).extra


def round_trip(tmp_path, payload: bytes, *extra) -> bytes:
    """Compress ``payload`` as x.npy, decompress it to y.npy, check the bytes; returns the archive's bytes."""
    src, arc, out = tmp_path / "x.npy", tmp_path / "a.bba", tmp_path / "y.npy"
    src.write_bytes(payload)
    r = run("compress", src, "-o", arc, "--method", "lzma", "-f", *extra)
    assert r.exit_code == 0, r.output
    r = run("decompress", arc, "-o", out, "-f")
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == payload
    r = run("test", arc)
    assert r.exit_code == 0, r.output
    return arc.read_bytes()


def rng_data(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(shape) < 0.3
    return rng.integers(0, 256, shape, dtype=np.uint8)


# ------------------------------------------------------------------------------------ the standard preamble


SHAPES = [(0,), (5,), (1, 1), (28, 28), (100, 28, 28), (10000, 28, 28), (60000, 28, 28), (3, 4, 5, 3),
          (2, 32, 32, 3), (123456789, 1), (1, 1, 1, 1), (10 ** 12, 0, 7), (0, 0), (7, 65535, 65536),
          (99999999999, 2, 3, 4), (2 ** 62, 1)]


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
@pytest.mark.parametrize("shape", SHAPES)
def test_standard_preamble_is_what_numpy_writes(shape, dtype):
    descr = "|b1" if dtype == np.bool_ else "|u1"
    # np.save's header for an array of this shape, without allocating it: the header writer on a header dict
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    ours = formats.standard_npy_preamble(descr, shape)
    assert ours == buf.getvalue()
    assert len(ours) % 64 == 0 and ours[6:8] == b"\x01\x00"
    assert struct.unpack("<H", ours[8:10])[0] == len(ours) - 10 and ours.endswith(b"\n")
    assert formats.npy_header_fields(ours) == {"descr": descr, "fortran_order": False, "shape": shape}


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(5,), (28, 28), (100, 28, 28), (3, 4, 5, 3), (1, 1), (0, 3, 3), (1000, 1, 1),
                                   (7, 1, 1, 1), (2, 300, 2), (60000, 28, 28), (10 ** 6, 1), (1, 1, 10 ** 6, 1),
                                   # empty arrays: huge dimensions, no memory
                                   (0, 10 ** 9, 10 ** 9), (10 ** 15, 0), (99999999999, 0, 3, 4), (2 ** 62, 0, 1),
                                   (0, 65535, 65536, 3), (2 ** 63 - 1, 0)])
def test_standard_preamble_is_what_np_save_writes(shape, dtype):
    payload = npy_bytes(np.empty(shape, dtype) if 0 in shape else np.zeros(shape, dtype))
    descr = "|b1" if dtype == np.bool_ else "|u1"
    ours = formats.standard_npy_preamble(descr, shape)
    assert payload[:len(ours)] == ours
    assert len(payload) == len(ours) + int(np.prod(shape, dtype=object))


def test_standard_preamble_rejects_what_is_not_a_shape():
    for descr, shape in (("|u1", (1.5, 2)), ("|u1", (-1, 2)), ("|u1", [2, 3]), (b"|u1", (2,)), ("|u1", (True,))):
        with pytest.raises(ValueError):
            formats.standard_npy_preamble(descr, shape)


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("what", ["uint8 3-D", "uint8 4-D", "bool 3-D", "uint8 2-D", "bool 2-D", "one item 3-D"])
def test_standard_npy_gets_kind_6_and_restores_byte_identical(tmp_path, what):
    shape, dtype = {"uint8 3-D": ((20, 28, 28), np.uint8), "uint8 4-D": ((3, 8, 8, 3), np.uint8),
                    "bool 3-D": ((30, 28, 28), np.bool_), "uint8 2-D": ((28, 28), np.uint8),
                    "bool 2-D": ((9, 11), np.bool_), "one item 3-D": ((1, 28, 28), np.uint8)}[what]
    payload = npy_bytes(rng_data(shape, dtype))
    round_trip(tmp_path, payload)
    info = info_of(tmp_path / "a.bba")
    flags = (1 if dtype == np.bool_ else 0) | (2 if len(shape) == 2 else 0)
    assert info == bytes([formats.INFO_VERSION, formats.KIND_NPY_STANDARD, flags])
    c = formats.parse_info(info)
    assert c.kind == "npy" and c.npy_standard and c.npy_flags == flags
    descr = "|b1" if dtype == np.bool_ else "|u1"
    items = (1, *shape) if len(shape) == 2 else shape
    assert c.npy_preamble_for(items) == preamble_of(payload)
    assert f"'shape': {shape}" in c.describe(items) and repr(descr) in c.describe(items)
    assert c.describe().startswith("npy (numpy format 1.0, header {") and repr(descr) in c.describe()


def test_standard_npy_sub_range_restores_as_npy(tmp_path):
    data = rng_data((20, 5, 5))
    round_trip(tmp_path, npy_bytes(data))
    out = tmp_path / "part.npy"
    r = run("decompress", tmp_path / "a.bba", "-o", out, "--range", "3:7")
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == npy_bytes(data[3:7])


def hand_written(a: np.ndarray, header: str, version=(1, 0)) -> bytes:
    """An npy file with exactly this header text (padded to 64 with spaces and a newline)."""
    h = header.encode("latin1")
    size = 10 if version == (1, 0) else 12
    n = len(h) + 1
    pad = (-(size + n)) % 64
    fmt = "<H" if version == (1, 0) else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, n + pad) + h + b" " * pad + b"\n" + a.tobytes()


NON_STANDARD = {
    "extra spaces": lambda a: hand_written(a, "{'descr':  '|u1', 'fortran_order': False, 'shape': %r}" % (a.shape,)),
    "64 more spaces": lambda a: hand_written(a, "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }"
                                                % (a.shape,) + " " * 64),
    "key order": lambda a: hand_written(a, "{'shape': %r, 'fortran_order': False, 'descr': '|u1'}" % (a.shape,)),
    "little-endian descr": lambda a: hand_written(a, "{'descr': '<u1', 'fortran_order': False, 'shape': %r, }"
                                                     % (a.shape,)),
    "version 2.0": None,
    "version 2.0 by hand": lambda a: hand_written(a, "{'descr': '|u1', 'fortran_order': False, 'shape': %r, }"
                                                     % (a.shape,), version=(2, 0)),
}


@pytest.mark.parametrize("what", sorted(NON_STANDARD))
def test_non_standard_preamble_keeps_kind_1(tmp_path, what):
    a = rng_data((6, 7, 7), seed=1)
    if what == "version 2.0":
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, version=(2, 0))
        payload = buf.getvalue()
    else:
        payload = NON_STANDARD[what](a)
    assert np.array_equal(np.load(io.BytesIO(payload)), a)  # numpy reads it
    assert preamble_of(payload) != formats.standard_npy_preamble("|u1", a.shape)
    round_trip(tmp_path, payload)
    info = info_of(tmp_path / "a.bba")
    assert info == formats.npy_info(preamble_of(payload))  # kind 1, byte for byte as before
    assert info[1] == formats.KIND_NPY
    c = formats.parse_info(info)
    assert c.kind == "npy" and not c.npy_standard and c.header == preamble_of(payload)


def test_kind_6_saves_the_preamble(tmp_path, monkeypatch):
    payload = npy_bytes(rng_data((100, 28, 28)))
    small = round_trip(tmp_path, payload)
    monkeypatch.setattr(formats, "npy_info_for", lambda preamble, descr, shape: formats.npy_info(preamble))
    big = round_trip(tmp_path, payload)  # the same data with the kind-1 container info
    assert info_of(tmp_path / "a.bba")[1] == formats.KIND_NPY
    assert len(big) - len(small) >= 100, (len(big), len(small))


def test_kind_1_info_is_unchanged():
    pre = formats.standard_npy_preamble("|u1", (100, 28, 28))
    assert formats.npy_info(pre) == b"\x01\x01" + struct.pack("<I", len(pre)) + pre
    assert formats.npy_info_for(pre, "|u1", (100, 28, 28)) == b"\x01\x06\x00"
    assert formats.npy_info_for(pre, "|u1", (100, 28, 29)) == formats.npy_info(pre)  # not its shape
    assert formats.npy_info_for(pre, "|b1", (100, 28, 28)) == formats.npy_info(pre)  # not its descr
    one_d = formats.standard_npy_preamble("|u1", (5,))
    assert formats.npy_info_for(one_d, "|u1", (5,)) == formats.npy_info(one_d)  # not a shape the CLI codes


# ------------------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("info", [b"\x01\x06", b"\x01\x06\x04", b"\x01\x06\x80", b"\x01\x06\xff", b"\x01\x06\x00\x00",
                                  b"\x01\x06\x03\x01", b"\x02\x06\x00"])
def test_malformed_kind_6_info_is_an_archive_error(info):
    with pytest.raises(ArchiveError) as e:
        formats.parse_info(info)
    assert "container info" in str(e.value)


@pytest.mark.parametrize("flags, shape", [(2, (2, 5, 5)), (2, (1, 5, 5, 3)), (2, (5, 5)), (3, (1, 5))])
def test_kind_6_shape_that_cannot_be_the_file_is_an_archive_error(flags, shape):
    c = formats.parse_info(bytes([1, 6, flags]))
    with pytest.raises(ArchiveError):
        formats.render(np.zeros(shape, np.uint8), c)
    with pytest.raises(ArchiveError):
        formats.file_prefix(c, shape)
    assert c.describe(shape).startswith("npy (numpy format 1.0, header {")  # still a line, no traceback


def test_corrupt_kind_6_archive_is_a_user_error(tmp_path):
    """An archive whose container info says a 2-D array but whose data are 2 items: a clear error, no file."""
    from bbans import api

    arc = tmp_path / "bad.bba"
    arc.write_bytes(api.compress(rng_data((2, 5, 5)), method="lzma", extra=bytes([1, 6, 2])))
    r = CliRunner().invoke(cli, ["decompress", str(arc), "-o", str(tmp_path / "out.npy")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "corrupt" in r.output, r.output
    assert not (tmp_path / "out.npy").exists()
