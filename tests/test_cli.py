"""The command line (bbans_cli): file formats, round trips, info, errors, models, eval, train orchestration.

Models are the toys of tests/toy_models.py served through a faked ``bbans.models`` entry point, so these tests
need no weights, no torch and no data sets, and run in a few seconds.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st
from PIL import Image
from scipy.special import ndtr

from bbans.codecs.basic import Categorical, QuantizedGaussian
from bbans.errors import ArchiveError
from bbans.idx import idx_header
from bbans_cli import formats, inputs
from bbans_cli.main import cli
from toy_models import FakeEntryPoint, FakeProvider, ToyBinary, install_providers

SHAPE = (4, 4)


class ToyLevels:
    """8-bit items of SHAPE whose pixels scatter (Cauchy-shaped, scale 2) around ONE shared grey level: the latent.

    Bits-back clearly beats the classical codecs on items drawn from it. Parameters use the exact integer pixel sum
    and elementwise IEEE operations only, so they are bit-identical whatever the batch split. Also has the optional
    reporting methods, computed exactly by enumerating the latent: -ELBO and the true NLL (what IWAE approaches).
    """

    value_range = (0, 255)
    K = 31
    SCALE = 2.0

    def __init__(self, name="toy-grey"):
        self.name, self.data_shape, self.latent_size = name, SHAPE, 1
        self.latent_bins = 2 * self.K + 1
        self.coder_settings = {"latent_bins": self.latent_bins, "toy": "levels"}
        self.sha256 = hashlib.sha256(name.encode()).hexdigest()
        self._v = np.arange(256, dtype=np.float64)

    def _post_mean(self, x):
        total = x.reshape(len(x), -1).sum(axis=1, dtype=np.int64)[:, None]
        return (total / 16.0 - 127.5) * (self.K / 127.5)

    def _probs(self, z):
        mu = 127.5 + np.asarray(z, np.float64) * (127.5 / self.K)
        d = (self._v - mu[..., None]) / self.SCALE
        return 1.0 / (1.0 + d * d)

    def posterior_codec(self, x):
        m = self._post_mean(x)
        return QuantizedGaussian(m, np.full(m.shape, 0.3), -self.K, self.K)

    def likelihood_codec(self, z):
        p = self._probs(z)  # (B, 1, 256)
        return Categorical(np.broadcast_to(p[:, :, None, :], (len(z), 1, 16, 256)).reshape(len(z), *SHAPE, 256))

    def prior_codec(self, batch):
        return QuantizedGaussian(np.zeros((batch, 1)), np.full((batch, 1), 0.5 * self.K), -self.K, self.K)

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        z = np.clip(np.round(rng.normal(0, 0.5 * self.K, (n, 1))), -self.K, self.K)
        x = 127.5 + z * (127.5 / self.K) + self.SCALE * rng.standard_cauchy((n, 16))
        return np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(n, *SHAPE)

    def _log_terms(self, x):
        """log2 q(z|x), log2 p(z), log2 p(x|z) for every latent bin z: arrays (B, 2K+1)."""
        zs = np.arange(-self.K, self.K + 1, dtype=np.float64)

        def mass(mean, std):  # unit bins on -K..K, tails folded into the end bins
            upper = np.where(zs >= self.K, 1.0, ndtr((zs + 0.5 - mean) / std))
            lower = np.where(zs <= -self.K, 0.0, ndtr((zs - 0.5 - mean) / std))
            return np.maximum(upper - lower, 2.0 ** -24)

        p = self._probs(zs)  # (Z, 256)
        logp = np.log2(p / p.sum(axis=1, keepdims=True))
        flat = x.reshape(len(x), -1).astype(np.int64)
        log_lik = logp[:, flat].sum(axis=2).T  # (B, Z)
        return np.log2(mass(self._post_mean(x), 0.3)), np.log2(mass(0.0, 0.5 * self.K))[None], log_lik

    def neg_elbo_bits(self, x):
        log_q, log_prior, log_lik = self._log_terms(x)
        return (2.0 ** log_q * (log_q - log_prior - log_lik)).sum(axis=1)

    def iwae_bits(self, x, k):
        _, log_prior, log_lik = self._log_terms(x)
        t = log_prior + log_lik
        top = t.max(axis=1, keepdims=True)
        return -(top[:, 0] + np.log2((2.0 ** (t - top)).sum(axis=1)))


GREY = ToyLevels()
BINARY = ToyBinary(SHAPE, name="toy-binary")


@pytest.fixture(autouse=True)
def toy_registry(monkeypatch):
    """Only the toy models are installed; progress lines off."""
    install_providers(monkeypatch, FakeEntryPoint("toys", FakeProvider(GREY, BINARY)))
    monkeypatch.setenv("BBANS_PROGRESS", "0")
    monkeypatch.delenv("BBANS_DEBUG", raising=False)


def grey_data(n=400, seed=0):
    """Items drawn from GREY itself, so bits-back beats the classical codecs on them."""
    return GREY.sample(n, seed)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def assert_user_error(result, code, *fragments):
    """Exit ``code``, one 'bbans: error:' message on stderr naming ``fragments``, no traceback anywhere."""
    out = result.output
    assert result.exit_code == code, out
    assert result.stderr.startswith("bbans: error:") and "bbans: error:" not in result.stdout, out
    assert "Traceback" not in out and (result.exception is None or isinstance(result.exception, SystemExit)), out
    for f in fragments:
        assert f in result.stderr, out


def npy_bytes(a, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, **kw)
    return buf.getvalue()


def files_in(folder: Path) -> set:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------------------------------ round trips


def test_npy_round_trip_is_byte_exact(tmp_path):
    src = tmp_path / "digits.npy"
    src.write_bytes(npy_bytes(grey_data()))
    r = run("compress", src)
    assert r.exit_code == 0, r.output
    for field in ("input:", "4 x 4", "toy-grey", GREY.sha256[:12], "bits/dim", "-ELBO", "gap", "%",
                  "method:", "bits-back", "time:"):
        assert field in r.output, (field, r.output)
    original = src.read_bytes()
    src.unlink()
    r = run("decompress", tmp_path / "digits.npy.bba")
    assert r.exit_code == 0, r.output
    assert "checksum verified" in r.output
    assert src.read_bytes() == original
    assert files_in(tmp_path) == {"digits.npy", "digits.npy.bba"}  # no temporary files left behind


def test_compress_reports_rate_close_to_the_elbo(tmp_path):
    src = tmp_path / "d.npy"
    data = grey_data(1500, seed=3)
    src.write_bytes(npy_bytes(data))
    r = run("compress", src)
    assert r.exit_code == 0, r.output
    line = next(l for l in r.output.splitlines() if l.startswith("gap:"))
    gap = float(line.split()[1].rstrip("%"))
    assert -1.0 < gap < 6.0, r.output  # header and initial bits on 1500 tiny items: a few percent


@pytest.mark.parametrize("kind", ["single image", "channels", "npy v2 header", "bool"])
def test_other_npy_layouts_round_trip(tmp_path, kind):
    if kind == "single image":
        payload = npy_bytes(grey_data(1)[0])
        extra = []
    elif kind == "channels":  # no toy fits (N, H, W, C): code it classically
        payload = npy_bytes(np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))
        extra = ["--method", "lzma"]
    elif kind == "bool":  # goes to the binary model, comes back as the same bool .npy
        payload = npy_bytes(grey_data(40) > 128)
        extra = ["--method", "bits-back"]
    else:
        buf = io.BytesIO()
        a = grey_data(5)
        np.lib.format.write_array(buf, a, version=(2, 0))
        payload = buf.getvalue()
        extra = []
    src = tmp_path / "a.npy"
    src.write_bytes(payload)
    assert run("compress", src, "-o", tmp_path / "x.bba", *extra).exit_code == 0
    r = run("decompress", tmp_path / "x.bba", "-o", tmp_path / "back.npy")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "back.npy").read_bytes() == payload


def test_idx_round_trip_is_byte_exact(tmp_path):
    data = grey_data(50)
    raw = idx_header(data.shape) + data.tobytes()
    src = tmp_path / "t10k-images.idx3-ubyte"
    src.write_bytes(raw)
    r = run("compress", src)
    assert r.exit_code == 0 and "IDX" in r.output, r.output
    src.unlink()
    assert run("decompress", tmp_path / "t10k-images.idx3-ubyte.bba").exit_code == 0
    assert src.read_bytes() == raw


def test_gzip_idx_comes_back_as_raw_idx(tmp_path):
    data = grey_data(50)
    raw = idx_header(data.shape) + data.tobytes()
    src = tmp_path / "t10k-images.idx3-ubyte.gz"
    src.write_bytes(gzip.compress(raw))
    r = run("compress", src)
    assert r.exit_code == 0, r.output
    assert "gzip" in r.output and "uncompressed" in r.output  # the user is told at compress time
    r = run("decompress", tmp_path / "t10k-images.idx3-ubyte.gz.bba")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t10k-images.idx3-ubyte").read_bytes() == raw
    assert "uncompressed" in r.output


def test_png_grey_pixels_identical(tmp_path):
    img = grey_data(1)[0]
    src = tmp_path / "digit.png"
    Image.fromarray(img).save(src)
    assert run("compress", src).exit_code == 0
    src.rename(tmp_path / "orig.png")
    r = run("decompress", tmp_path / "digit.png.bba")
    assert r.exit_code == 0, r.output
    back = Image.open(src)
    assert back.mode == "L" and np.array_equal(np.array(back), img)


def test_png_one_bit_goes_to_the_binary_model(tmp_path):
    bits = (grey_data(1)[0] > 128)
    src = tmp_path / "bw.png"
    Image.fromarray(bits).save(src)
    assert Image.open(src).mode == "1"
    loaded = inputs.open_input(src)
    assert loaded.shape == (1, 4, 4) and loaded.source.read(0, 1).max() <= 1
    r = run("compress", src, "--method", "bits-back")
    assert r.exit_code == 0 and "toy-binary" in r.output, r.output
    src.unlink()
    assert run("decompress", tmp_path / "bw.png.bba").exit_code == 0
    back = Image.open(src)
    assert back.mode == "1" and np.array_equal(np.array(back), bits)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_png_colour_modes_keep_their_pixels(tmp_path, mode):
    rng = np.random.default_rng(1)
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)).quantize(16)
        im.info["transparency"] = 3
    else:
        im = Image.fromarray(rng.integers(0, 256, (5, 7, len(mode)), dtype=np.uint8), mode)
    src = tmp_path / "c.png"
    im.save(src, **({"transparency": 3} if mode == "P" else {}))
    original = Image.open(src)
    assert run("compress", src, "--method", "deflate").exit_code == 0
    r = run("decompress", tmp_path / "c.png.bba", "-o", tmp_path / "back.png")
    assert r.exit_code == 0, r.output
    back = Image.open(tmp_path / "back.png")
    assert back.mode == original.mode
    assert np.array_equal(np.array(back), np.array(original))
    if mode == "P":
        assert back.getpalette() == original.getpalette()
        assert back.info.get("transparency") == original.info.get("transparency")
        assert np.array_equal(np.array(back.convert("RGBA")), np.array(original.convert("RGBA")))


# ---------------------------------------------------------------------------------------------------- info


def test_info_shows_the_header(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(300)))
    assert run("compress", src, "--batch-size", "50").exit_code == 0
    r = run("info", tmp_path / "d.npy.bba")
    assert r.exit_code == 0, r.output
    for field in ("method:", "bits-back", "model:", "toy-grey", GREY.sha256[:12], "300 x 4 x 4 uint8", "300 items",
                  "batches:", "50 x", "coder:", "latent_bins=63", "toy=levels", "digest", "seed:", "container:", "npy",
                  "bits/dim", "crc32"):
        assert field in r.output, (field, r.output)
    j = run("info", tmp_path / "d.npy.bba", "--json")
    assert j.exit_code == 0 and '"model_name": "toy-grey"' in j.output and '"container": "npy"' in j.output


def test_info_on_a_classical_archive(tmp_path):
    src = tmp_path / "d.idx"
    data = np.zeros((3, 5, 5), np.uint8)
    src.write_bytes(idx_header(data.shape) + data.tobytes())
    assert run("compress", src, "--method", "lzma").exit_code == 0
    r = run("info", tmp_path / "d.idx.bba")
    assert r.exit_code == 0 and "lzma" in r.output and "idx" in r.output, r.output


# ------------------------------------------------------------------------------------------- overwriting


def test_refuses_to_overwrite_without_force(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(20)))
    archive = tmp_path / "d.npy.bba"
    archive.write_bytes(b"precious")
    assert_user_error(run("compress", src), 1, "already exists", "--force")
    assert archive.read_bytes() == b"precious"
    assert run("compress", src, "-f").exit_code == 0
    assert archive.read_bytes() != b"precious"
    original = src.read_bytes()
    src.write_bytes(b"also precious")
    assert_user_error(run("decompress", archive), 1, "already exists")
    assert src.read_bytes() == b"also precious"
    assert run("decompress", archive, "--force").exit_code == 0
    assert src.read_bytes() == original
    assert files_in(tmp_path) == {"d.npy", "d.npy.bba"}


def test_output_into_a_folder(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(20)))
    out = tmp_path / "out"
    out.mkdir()
    assert run("compress", src, "-o", out).exit_code == 0
    assert (out / "d.npy.bba").exists()


def test_interrupt_leaves_no_partial_output(tmp_path, monkeypatch):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(20)))
    assert run("compress", src).exit_code == 0
    src.unlink()
    from bbans.container import pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "decode_chunk", interrupted)
    r = run("decompress", tmp_path / "d.npy.bba")
    assert r.exit_code == 130 and "interrupted" in r.output and "Traceback" not in r.output
    assert files_in(tmp_path) == {"d.npy.bba"}


def test_interrupt_while_writing_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(20)))
    import bbans_cli.ui as ui

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(ui.os, "fsync", interrupted)
    r = run("compress", src)
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert files_in(tmp_path) == {"d.npy"}


# ------------------------------------------------------------------------------------------------ errors


def test_missing_file_and_directory(tmp_path):
    assert_user_error(run("compress", tmp_path / "nope.npy"), 2, "no such file")
    assert_user_error(run("decompress", tmp_path / "nope.bba"), 2, "no such file")
    assert_user_error(run("info", tmp_path), 2, "is a directory")
    assert_user_error(run("compress", tmp_path), 2, "holds no files")  # a folder: a collection of its files


def test_garbage_and_truncated_archives(tmp_path):
    bad = tmp_path / "bad.bba"
    bad.write_bytes(b"this is not an archive at all")
    assert_user_error(run("decompress", bad), 3, "not a bbans archive")
    assert_user_error(run("info", bad), 3)
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(50)))
    assert run("compress", src).exit_code == 0
    blob = (tmp_path / "d.npy.bba").read_bytes()
    src.unlink()
    for cut in (3, 10, len(blob) // 2, len(blob) - 1):
        (tmp_path / "t.bba").write_bytes(blob[:cut])
        assert_user_error(run("decompress", tmp_path / "t.bba", "-o", tmp_path / "t.npy"), 3)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    (tmp_path / "f.bba").write_bytes(bytes(flipped))
    assert_user_error(run("decompress", tmp_path / "f.bba", "-o", tmp_path / "t.npy"), 3)
    assert not (tmp_path / "t.npy").exists()


def test_archive_whose_model_is_missing(tmp_path, monkeypatch):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(50)))
    assert run("compress", src, "-o", tmp_path / "d.bba").exit_code == 0

    class OnlyBinaryInstalled(FakeProvider):  # toy-grey is not installed but its weights file can be loaded
        def load_path(self, path):
            return GREY if Path(path).name == "toy-grey.safetensors" else None

    install_providers(monkeypatch, FakeEntryPoint("toys", OnlyBinaryInstalled(BINARY)))
    # layout 3 stores no model name: the message names the weights by their sha256 prefix
    assert_user_error(run("decompress", tmp_path / "d.bba"), 4, GREY.sha256[:12], "--model")
    assert not (tmp_path / "d").exists()
    weights = tmp_path / "toy-grey.safetensors"
    weights.write_bytes(b"weights")
    r = run("decompress", tmp_path / "d.bba", "--model", weights)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d").read_bytes() == src.read_bytes()


def test_data_no_model_fits_lists_the_models(tmp_path):
    src = tmp_path / "big.npy"
    src.write_bytes(npy_bytes(np.zeros((2, 5, 5), np.uint8)))
    r = run("compress", src, "--method", "bits-back")
    assert_user_error(r, 4, "no installed model fits", "toy-grey", "4 x 4", "0..255", "toy-binary", "0..1")
    assert not (tmp_path / "big.npy.bba").exists()
    r = run("compress", src)  # auto: a classical codec, saying why
    assert r.exit_code == 0 and "no installed model fits items of shape (5, 5)" in r.output, r.output
    (tmp_path / "big.npy.bba").unlink()
    assert_user_error(run("compress", src, "--model", "toy-grey"), 4, "does not fit")
    assert_user_error(run("compress", src, "--model", "nonexistent"), 4, "nonexistent")
    assert_user_error(run("compress", src, "--model", tmp_path / "w.safetensors"), 4, "no such file")
    assert run("compress", src, "--method", "lzma").exit_code == 0  # the way out the message suggests


@pytest.mark.parametrize("payload, fragment", [
    (b"", "empty"),
    (b"hello world", "not a uint8 .npy array"),
    (npy_bytes(np.zeros((2, 4, 4), np.float32)), "dtype"),
    (npy_bytes(np.asfortranarray(np.zeros((2, 4, 4), np.uint8))), "Fortran"),
    (npy_bytes(np.zeros((2, 4, 4), np.uint8))[:-5], "truncated"),
    (npy_bytes(np.zeros(5, np.uint8)), "shape"),
    (b"\x93NUMPY\x01\x00\x20\x00{'descr': 'zzz'}" + b" " * 14 + b"\n", "npy"),
    (idx_header((3, 4, 4)) + bytes(10), "IDX"),
    (idx_header((30,)) + bytes(30), "label"),
    (b"\x00\x00\x0d\x03" + bytes(12), "not uint8"),
    (gzip.compress(b"plain text"), "gzip"),
    (b"\x1f\x8b\x08\x00garbage", "gzip"),
    (b"\x89PNG\r\n\x1a\n" + bytes(20), "PNG"),
])
def test_unreadable_inputs_compress_as_raw_bytes(tmp_path, payload, fragment):
    """Files that do not read as npy/IDX/PNG are coded as their bytes, with a note saying why, byte-exact back."""
    src = tmp_path / "in.dat"
    src.write_bytes(payload)
    r = run("compress", src)
    assert r.exit_code == 0 and fragment in r.output and "raw bytes" in r.output, r.output
    archive = tmp_path / "in.dat.bba"
    assert archive.stat().st_size <= len(payload) + 64
    src.unlink()
    assert run("decompress", archive).exit_code == 0
    assert src.read_bytes() == payload


def test_sixteen_bit_png_is_coded_as_its_bytes(tmp_path):
    src = tmp_path / "deep.png"
    Image.fromarray(np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000).save(src)
    original = src.read_bytes()
    r = run("compress", src)
    assert r.exit_code == 0 and "mode" in r.output and "raw bytes" in r.output, r.output
    src.unlink()
    assert run("decompress", tmp_path / "deep.png.bba").exit_code == 0
    assert src.read_bytes() == original


def test_compressing_an_archive_is_refused(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(10)))
    assert run("compress", src).exit_code == 0
    assert_user_error(run("compress", tmp_path / "d.npy.bba"), 2, "decompress")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_container_info_parser_rejects_garbage_cleanly(blob):
    try:
        formats.parse_info(blob)
    except ArchiveError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_container_info_survives_truncation(data):
    valid = [formats.npy_info(npy_bytes(grey_data(2))[:128]),
             formats.idx_info(idx_header((1, 2, 2)), was_gzip=True)]
    info = data.draw(st.sampled_from(valid))
    cut = data.draw(st.integers(1, len(info) - 1))  # 0 bytes is valid: "no container"
    with pytest.raises(ArchiveError):
        formats.parse_info(info[:cut])


# ------------------------------------------------------------------------------------------ models, eval


def test_models_table():
    r = run("models")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:4] == ["name", "items", "values", "sha256"]
    assert any("toy-grey" in l and "4 x 4" in l and "0..255" in l and GREY.sha256[:12] in l for l in lines)
    assert any("toy-binary" in l and "0..1" in l for l in lines)
    assert '"name": "toy-binary"' in run("models", "--json").output


def test_models_when_none_installed(monkeypatch):
    install_providers(monkeypatch)
    r = run("models")
    assert r.exit_code == 0 and "no models" in r.output


def test_eval_shows_bounds_and_archive_rate(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(300)))
    r = run("eval", src, "--samples", "5", "--iwae-k", "3", "--limit", "200", "--classical")
    assert r.exit_code == 0, r.output
    for field in ("-ELBO", "IWAE-3 bound", "NLL (IWAE, k=5)", "archive (bits-back)", "round trip verified", "first 200 items",
                  "xz -9e", "archive vs -ELBO"):
        assert field in r.output, (field, r.output)
    rates = {l.split("  ")[0]: l for l in r.output.splitlines()}
    elbo = float(rates["-ELBO"].split()[1])
    nll = float(next(v for k, v in rates.items() if k.startswith("NLL")).split()[4])
    assert nll <= elbo + 1e-9
    assert not list(tmp_path.glob("*.bba"))


def test_eval_without_optional_methods(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes((grey_data(30) > 100).astype(np.uint8)))
    r = run("eval", src)
    assert r.exit_code == 0 and "n/a" in r.output and "toy-binary" in r.output, r.output


# ----------------------------------------------------------------------------------------------- train


def test_train_orchestrates_training_and_export(tmp_path, monkeypatch):
    """Fake the torch-side modules: checks arguments, file placement and the final load, not learning."""
    import bbans_models.datasets as real_datasets  # plain data, no torch

    calls = {}

    def fake_train(config, train_data, out_path, **kw):
        calls["train"] = (config, train_data.shape, Path(out_path), kw)
        kw["log"]("epoch 1: train -ELBO 1.2345 bits/dim")
        Path(out_path).write_bytes(b"float weights")

    def fake_export(float_checkpoint, out_path, calibration, name, card=None, bin_exponent=None):
        calls["export"] = (Path(float_checkpoint), calibration.shape, name, card, bin_exponent)
        Path(out_path).write_bytes(b"coding weights")
        return Path(out_path)

    class Config:
        def __init__(self, **kw):
            self.kw = kw

    fakes = {
        "bbans_models.train": types.SimpleNamespace(train=fake_train),
        "bbans_models.export": types.SimpleNamespace(export=fake_export),
        "bbans_models.vae": types.SimpleNamespace(VAEConfig=Config),
        "bbans_models.datasets": types.SimpleNamespace(
            SPLITS=real_datasets.SPLITS, RECIPES=real_datasets.RECIPES, PHOTO_RECIPES=real_datasets.PHOTO_RECIPES,
            recipe_splits=real_datasets.recipe_splits,
            load_dataset=lambda name: np.zeros((300 if "train" in name else 50, 4, 4), np.uint8)),
    }
    for k, v in fakes.items():
        monkeypatch.setitem(sys.modules, k, v)
    out = tmp_path / "toy-grey.safetensors"  # FakeProvider.load_path serves the model named by the file stem
    r = run("train", "mnist", "--out", out, "--epochs", "1", "--latent-channels", "4", "--calibration", "100",
            "--objective", "iwae", "--iwae-k", "3", "--lr-schedule", "cosine")
    assert r.exit_code == 0, r.output
    config, shape, float_path, kw = calls["train"]
    assert config.kw["likelihood"] == "logistic_mixture" and config.kw["latent_channels"] == 4
    assert config.kw["ar_channels"] == 32 and config.kw["ar_centered"] is True  # the mnist recipe's
    assert float_path == tmp_path / "toy-grey.safetensors.float.safetensors" and kw["epochs"] == 1
    assert (kw["objective"], kw["iwae_k"], kw["lr_schedule"], kw["kl_warmup_steps"]) == ("iwae", 3, "cosine", 200)
    assert calls["export"][:3] == (float_path, (100, 4, 4), "toy-grey") and calls["export"][4] == 5
    assert "latents 4 x 7 x 7," in r.output and "autoregressive" in r.output
    assert out.read_bytes() == b"coding weights"
    assert "epoch 1" in r.output and "bbans compress" in r.output and "-ELBO" in r.output
    assert files_in(tmp_path) == {out.name, float_path.name}
    assert_user_error(run("train", "mnist", "--out", out), 1, "already exists")
    r = run("train", "mnist", "--out", out, "--resume", "--epochs", "0")  # export the checkpoint again
    assert r.exit_code == 0 and calls["train"][3]["resume"] is True, r.output
    assert_user_error(run("train", "binarized-mnist", "--out", tmp_path / "new.st", "--resume"), 2, "--resume")
    r = run("train", "binarized-mnist", "--out", tmp_path / "toy-binary.st", "--epochs", "1", "--calibration", "100",
            "--top-latent-channels", "2", "--ar-channels", "0")
    assert r.exit_code == 0, r.output
    config, _, _, kw = calls["train"]
    assert (config.kw["likelihood"], config.kw["top_latent_channels"], config.kw["ar_channels"]) == ("bernoulli", 2, 0)
    assert kw["kl_warmup_steps"] == 500 and calls["export"][4] == 5
    assert "8 x 7 x 7 under 2 x 7 x 7" in r.output and "independent" in r.output


# -------------------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", ["compress", "decompress", "test", "info", "eval", "models", "train"])
def test_every_command_teaches(command):
    r = run(command, "--help")
    assert r.exit_code == 0 and "Examples:" in r.output and f"bbans {command}" in r.output


def test_python_dash_m_and_fast_help():
    code = ("import sys, runpy; sys.argv = ['bbans', '--help']\n"
            "try:\n    runpy.run_module('bbans_cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'bbans --help imported torch'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Usage: bbans" in r.stdout and "decompress" in r.stdout


# ------------------------------------------------------------------------ never losing data (in process)


class FailingStream:
    """A binary stream that takes ``room`` bytes, then fails as ``how``: 'short' (write returns fewer bytes, then
    0), 'epipe', 'enospc' or 'efbig'."""

    def __init__(self, room: int, how: str):
        self.room, self.how, self.got = room, how, bytearray()

    def write(self, b):
        b = bytes(b)
        if self.room <= 0:
            if self.how == "short":
                return 0
            import errno

            code = {"epipe": errno.EPIPE, "enospc": errno.ENOSPC, "efbig": errno.EFBIG}[self.how]
            raise (BrokenPipeError(code, "Broken pipe") if self.how == "epipe" else OSError(code, os.strerror(code)))
        n = min(len(b), self.room, 7 if self.how == "short" else len(b))  # short: never more than 7 at once
        self.got += b[:n]
        self.room -= n
        return n

    def flush(self):
        pass

    def isatty(self):
        return False


@pytest.mark.parametrize("how", ["short", "epipe", "enospc", "efbig"])
@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_a_failing_stdout_never_reports_success_nor_removes(tmp_path, monkeypatch, how, command):
    from bbans_cli import outputs

    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(60)))
    assert run("compress", src, "--chunk-items", 20).exit_code == 0
    target = src if command == "compress" else tmp_path / "d.npy.bba"
    if command == "decompress":
        src.unlink()
    stream = FailingStream(50, how)
    monkeypatch.setattr(outputs, "stdout_binary", lambda: stream)
    r = run(command, target, "-c", "--rm")
    assert r.exit_code != 0, r.output
    assert "verified" not in r.output and "bits/dim" not in r.output and "Traceback" not in r.output, r.output
    assert target.exists()
    assert "--rm ignored" in r.stderr
    if how == "epipe":  # a reader that left: quiet, as gzip
        assert r.exit_code == 141 and "bbans: error" not in r.stderr, r.output
    else:
        assert r.exit_code == 1 and "bbans: error: standard output:" in r.stderr, r.output


def test_short_writes_that_progress_are_completed():
    from bbans.container.sinks import StreamSink

    stream = FailingStream(10_000, "short")
    sink = StreamSink(stream)
    sink.write(b"x" * 5000)
    assert bytes(stream.got) == b"x" * 5000 and sink.bytes_written == 5000
    with pytest.raises(OSError):
        sink.write(b"y" * 6000)


def test_a_full_disk_leaves_no_file_and_keeps_the_input(tmp_path, monkeypatch):
    from bbans.container import sinks

    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(60)))
    real_write = sinks.StreamSink.write

    def full(self, b):
        if self.bytes_written + len(memoryview(b).cast("B")) > 100:
            import errno

            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, b)

    monkeypatch.setattr(sinks.StreamSink, "write", full)
    r = run("compress", src, "--rm", "--chunk-items", 20)
    assert_user_error(r, 1, "No space left on device", "d.npy.bba")
    assert files_in(tmp_path) == {"d.npy"}


def test_rm_with_stdout_is_ignored_with_a_notice(tmp_path):
    src = tmp_path / "t.txt"
    src.write_bytes(b"some text " * 50)
    r = run("compress", src, "-c", "--rm")
    assert r.exit_code == 0 and src.exists() and "--rm ignored" in r.stderr, r.output
    blob = r.stdout_bytes
    (tmp_path / "t.bba").write_bytes(blob)
    r = run("decompress", tmp_path / "t.bba", "-c", "--rm")
    assert r.exit_code == 0 and r.stdout_bytes == src.read_bytes() and (tmp_path / "t.bba").exists()
    r = run("compress", src, "-c", "--rm", "-q")
    assert r.exit_code == 0 and r.stderr == "" and src.exists()


def test_output_equal_to_the_input_and_stdout_with_output_are_refused(tmp_path):
    src = tmp_path / "d.npy"
    payload = npy_bytes(grey_data(20))
    src.write_bytes(payload)
    assert_user_error(run("compress", src, "-o", src, "-f"), 1, "the input file itself")
    (tmp_path / "link.npy").symlink_to(src)
    assert_user_error(run("compress", src, "-o", tmp_path / "link.npy", "-f"), 1, "the input file itself")
    assert src.read_bytes() == payload
    assert_user_error(run("compress", src, "-c", "-o", tmp_path / "x.bba"), 2, "-c/--stdout", "-o/--output")
    assert run("compress", src).exit_code == 0
    arc = tmp_path / "d.npy.bba"
    blob = arc.read_bytes()
    assert_user_error(run("decompress", arc, "-o", arc, "-f"), 1, "the archive file itself")
    assert arc.read_bytes() == blob
    assert_user_error(run("decompress", arc, "-c", "-o", tmp_path / "y"), 2, "contradict")


def test_usage_errors_speak_like_every_other_error():
    for args, fragment in [(["frob"], "No such command"), (["compress"], "Missing argument"),
                           (["compress", "--bogus", "x"], "No such option"),
                           (["compress", "x", "--jobs", "zero"], "not a valid integer"),
                           (["compress", "x", "-q", "-v"], "contradict")]:
        r = run(*args)
        assert_user_error(r, 2, fragment, "--help")
        assert "Usage:" not in r.output and not r.stderr.startswith("Error")


def test_an_input_that_changes_while_read_is_not_archived_nor_removed(tmp_path, monkeypatch):
    from bbans.container import pipeline

    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(60)))
    real = pipeline.encode

    def encode_then_append(*a, **k):
        rep = real(*a, **k)
        with open(src, "ab") as f:
            f.write(b"more")
        return rep

    monkeypatch.setattr(pipeline, "encode", encode_then_append)
    assert_user_error(run("compress", src, "--rm"), 2, "changed size", "not kept")
    assert files_in(tmp_path) == {"d.npy"}


def test_a_file_truncated_under_the_reader_is_an_error_not_a_crash(tmp_path):
    src = tmp_path / "d.bin"
    src.write_bytes(bytes(range(256)) * 100)
    inp = inputs.open_input(src)
    src.write_bytes(b"short")
    with pytest.raises(inputs.InputChanged, match="shorter"):
        inp.source.read(0, inp.n_items)


# ------------------------------------------------------------------------------------------- gzip habits


def test_several_files_in_one_command(tmp_path):
    a, b, c = tmp_path / "a.npy", tmp_path / "b.png", tmp_path / "c.txt"
    a.write_bytes(npy_bytes(grey_data(50)))
    Image.fromarray(grey_data(1)[0]).save(b)
    c.write_bytes(b"plain text\n" * 40)
    originals = {p.name: p.read_bytes() for p in (a, b, c)}
    pixels = np.array(Image.open(b))
    r = run("compress", a, b, c, "--rm")
    assert r.exit_code == 0, r.output
    assert files_in(tmp_path) == {"a.npy.bba", "b.png.bba", "c.txt.bba"}
    assert r.output.count("input:") == 3
    r = run("test", *sorted(tmp_path.glob("*.bba")))
    assert r.exit_code == 0 and r.output.count("ok:") == 3 and "every checksum verified" in r.output, r.output
    r = run("decompress", *sorted(tmp_path.glob("*.bba")), "--json")
    assert r.exit_code == 0, r.output
    import json

    reports = json.loads(r.output)
    assert [x["verified"] for x in reports] == [True] * 3
    assert a.read_bytes() == originals["a.npy"] and c.read_bytes() == originals["c.txt"]
    assert np.array_equal(np.array(Image.open(b)), pixels)
    out = tmp_path / "out"
    out.mkdir()
    assert run("compress", a, c, "-o", out, "-q").output == ""
    assert files_in(out) == {"a.npy.bba", "c.txt.bba"}
    assert_user_error(run("compress", a, c, "-o", tmp_path / "one.bba"), 2, "folder")
    assert_user_error(run("compress", a, c, "-c"), 2, "one FILE")
    assert_user_error(run("compress", a, "-"), 2, "standard input")


def test_an_error_on_one_file_does_not_stop_the_others(tmp_path):
    a, c = tmp_path / "a.npy", tmp_path / "c.txt"
    a.write_bytes(npy_bytes(grey_data(30)))
    c.write_bytes(b"text " * 30)
    (tmp_path / "c.txt.bba").write_bytes(b"precious")
    r = run("compress", a, tmp_path / "missing.npy", c)
    assert r.exit_code == 2, r.output  # the first failure's code: no such file
    assert "missing.npy: no such file" in r.stderr and "c.txt.bba already exists" in r.stderr
    assert (tmp_path / "a.npy.bba").exists() and (tmp_path / "c.txt.bba").read_bytes() == b"precious"
    import json

    r = run("compress", c, a, "--json", "-f")
    assert r.exit_code == 0
    assert [x["input"].endswith(n) for x, n in zip(json.loads(r.output), ("c.txt", "a.npy"))] == [True, True]


def test_test_finds_damage_and_writes_nothing(tmp_path):
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(60)))
    assert run("compress", src, "--chunk-items", 20).exit_code == 0
    arc = tmp_path / "d.npy.bba"
    r = run("test", arc)
    assert r.exit_code == 0 and "ok:" in r.output and "3 chunks" in r.output, r.output
    assert run("test", arc, "-q").output == ""
    blob = bytearray(arc.read_bytes())
    blob[len(blob) // 2] ^= 0x20
    bad = tmp_path / "bad.bba"
    bad.write_bytes(bytes(blob))
    r = run("test", arc, bad)
    assert r.exit_code == 3 and "ok:" in r.stdout and "bad.bba" in r.stderr, r.output
    assert files_in(tmp_path) == {"d.npy", "d.npy.bba", "bad.bba"}


def test_quiet_verbose_and_json(tmp_path):
    import json

    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(200)))
    r = run("compress", src, "-q")
    assert r.exit_code == 0 and r.output == ""
    r = run("compress", src, "-f", "-v")
    assert r.exit_code == 0 and "seed:" in r.output and "batches:" in r.output, r.output
    r = run("compress", src, "-f", "--json")
    d = json.loads(r.output)
    assert d["method"] == "bits-back" and d["archive_bytes"] > 0 and d["neg_elbo_bits_per_dim"] > 0
    src.unlink()
    r = run("decompress", tmp_path / "d.npy.bba", "--json")
    d = json.loads(r.output)
    assert d["verified"] is True and d["kind"] == "npy" and d["output"].endswith("d.npy")
    r = run("decompress", tmp_path / "d.npy.bba", "-f", "-v")
    assert "toy-grey" in r.output and "container:" in r.output, r.output


# ------------------------------------------------------------------------------------------ PNG metadata


def png_chunk_list(data: bytes) -> list:
    return [(t, d) for t, d in formats.png_chunks(data)]


def ancillary(data: bytes) -> list:
    return [(t, d) for t, d in formats.png_chunks(data) if t not in (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")]


def splice(png: bytes, after_ihdr: list, before_iend: list) -> bytes:
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    head = 8 + 25  # signature + IHDR
    return (png[:head] + b"".join(chunk(t, d) for t, d in after_ihdr) + png[head:-12]
            + b"".join(chunk(t, d) for t, d in before_iend) + png[-12:])


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGB", "RGBA"])
def test_png_metadata_comes_back_verbatim_and_rm_is_safe(tmp_path, mode):
    from PIL import PngImagePlugin

    rng = np.random.default_rng(2)
    if mode == "1":
        im = Image.fromarray(rng.integers(0, 2, (6, 5)).astype(bool))
    elif mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).quantize(8)
    else:
        shape = (6, 5) if mode == "L" else (6, 5, len(mode))
        im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a test image")
    info.add_text("Comment", "compressed text " * 5, zip=True)
    info.add_itxt("Author", "Zoë", lang="fr", tkey="Auteur", zip=False)
    buf = io.BytesIO()
    extra = {"transparency": 2} if mode in ("P", "L") else {}
    im.save(buf, "PNG", pnginfo=info, icc_profile=b"not really an ICC profile" * 4, dpi=(300, 300), **extra)
    original = splice(buf.getvalue(), [(b"gAMA", (45455).to_bytes(4, "big")), (b"cHRM", bytes(range(32)))],
                      [(b"tIME", bytes([7, 234, 12, 4, 17, 30, 0]))])
    src = tmp_path / "photo.png"
    src.write_bytes(original)
    before = ancillary(original)
    assert [t for t, _ in before] == [b"gAMA", b"cHRM", b"iCCP", b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"tIME"]
    pixels = np.array(Image.open(src))
    r = run("compress", src, "--rm", "--method", "deflate")
    assert r.exit_code == 0 and not src.exists(), r.output
    assert formats.parse_info(inputs_info(tmp_path / "photo.png.bba")).chunks is not None
    r = run("decompress", tmp_path / "photo.png.bba")
    assert r.exit_code == 0, r.output
    back = src.read_bytes()
    assert ancillary(back) == before
    # same places: the whole chunk sequence is the same (runs of IDAT counted once)
    def order(data):
        types_ = [t for t, _ in formats.png_chunks(data)]
        return [t for k, t in enumerate(types_) if not (t == b"IDAT" and k and types_[k - 1] == b"IDAT")]

    assert order(back) == order(original)
    assert Image.open(src).mode == im.mode and np.array_equal(np.array(Image.open(src)), pixels)


def inputs_info(archive_path) -> bytes:
    from bbans.container.pipeline import ArchiveReader

    with open(archive_path, "rb") as f:
        return ArchiveReader(f).extra


def test_png_without_other_chunks_keeps_the_old_container_bytes(tmp_path):
    src = tmp_path / "plain.png"
    Image.fromarray(grey_data(1)[0]).save(src)
    assert [t for t, _ in formats.png_chunks(src.read_bytes())] == [b"IHDR", b"IDAT", b"IEND"]
    inp = inputs.open_input(src)
    assert inp.kind == "png" and inp.info[1] == formats.KIND_PNG  # kind 3: what every earlier bbans wrote


def test_png_that_cannot_come_back_as_it_was_is_coded_as_its_bytes(tmp_path):
    src = tmp_path / "trailing.png"
    buf = io.BytesIO()
    Image.fromarray(grey_data(1)[0]).save(buf, "PNG")
    src.write_bytes(buf.getvalue() + b"bytes after IEND")
    inp = inputs.open_input(src)
    assert inp.kind == "raw" and "after its IEND" in inp.notes[0]
    r = run("compress", src, "--rm")
    assert r.exit_code == 0 and not src.exists()
    assert run("decompress", tmp_path / "trailing.png.bba").exit_code == 0
    assert src.read_bytes() == buf.getvalue() + b"bytes after IEND"


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_png_chunk_container_info_rejects_damage_cleanly(data):
    from PIL import PngImagePlugin

    info_ = PngImagePlugin.PngInfo()
    info_.add_text("k", "v")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(buf, "PNG", pnginfo=info_)
    im = Image.open(io.BytesIO(buf.getvalue()))
    _, info = formats.png_pixels_and_info(im, buf.getvalue())
    assert info[1] == formats.KIND_PNG_CHUNKS and formats.parse_info(info).chunks
    cut = data.draw(st.integers(0, len(info) - 1))
    flip = data.draw(st.integers(0, len(info) - 1))
    damaged = bytearray(info[:cut] if data.draw(st.booleans()) else info)
    if damaged and flip < len(damaged):
        damaged[flip] ^= data.draw(st.integers(1, 255))
    try:
        c = formats.parse_info(bytes(damaged))
        formats.render(np.zeros((1, 2, 2), np.uint8), c)
    except ArchiveError:
        pass


# ------------------------------------------------------------------------------------------ report wording


def test_report_wording_singular_empty_and_classical(tmp_path):
    one = tmp_path / "one.npy"
    one.write_bytes(npy_bytes(grey_data(1)))
    r = run("compress", one)
    assert r.exit_code == 0 and "1 item" in r.output and "1 items" not in r.output, r.output
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    r = run("compress", empty)
    assert r.exit_code == 0 and "x smaller" not in r.output and "LARGER" not in r.output, r.output
    assert "the input is empty" in r.output and "does not report" not in r.output
    src = tmp_path / "d.npy"
    src.write_bytes(npy_bytes(grey_data(100)))
    r = run("compress", src, "--method", "lzma")
    assert r.exit_code == 0 and "gap" not in r.output and "-ELBO" not in r.output, r.output
    r = run("compress", src, "-f", "--no-elbo", "-v")
    assert "-ELBO:" in r.output and "--no-elbo" in r.output, r.output


def test_report_renderer_wording_directly():
    from collections import Counter

    from bbans_cli.report import compress_report

    inp = types.SimpleNamespace(name="x.npy", description="d", file_bytes=100, shape=(1, 4, 4), source=None,
                                notes=[])
    rep = types.SimpleNamespace(raw_bytes=16, archive_bytes=10, n_chunks=1, value_range=(0, 9), method="lzma",
                                methods=Counter({"lzma": 1}), model_name=None, fitting_model="toy-grey",
                                reason="lzma is smaller", chunk_items=1, elbo_bits=40.0, iwae_bits=None, model_sha256="ab" * 32,
                                particles=1, initial_bits=0, seed_items=0, payload_bits=0, schedule=[], seconds=0.5,
                                n_items=1)
    text = compress_report(inp, rep, "x.bba", 1).render()
    assert "-ELBO:" in text and "gap" not in text and "1 item" in text and "items/s" not in text, text
    rep.methods, rep.method, rep.model_name, rep.elbo_bits = Counter({"bits-back": 1}), "bits-back", "m", None
    text = compress_report(inp, rep, "x.bba", 1).render()
    assert "does not report its -ELBO" in text, text


# ---------------------------------------------------------------------------------------------- progress


def test_progress_eta_ignores_startup_and_lines_in_logs(monkeypatch):
    from bbans_cli import ui

    monkeypatch.delenv("BBANS_PROGRESS")
    clock = [100.0]
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = ui.Progress("compressing", interval=10, stream=out)
    assert p.mode == "log"  # not a terminal: periodic lines
    clock[0] += 30.0  # 30 s of start-up (model loading) before the first report
    for done in range(0, 1001, 10):  # then a steady 100 items/s
        p(done, 1000)
        if done < 1000:
            clock[0] += 0.1
    lines = out.getvalue().splitlines()
    assert all(l.startswith("bbans: compressing: ") for l in lines)
    assert len(lines) == 2 and lines[-1] == "bbans: compressing: 100% (1,000/1,000 items) in 40 s", lines
    q = ui.Progress("x", interval=10, stream=io.StringIO())
    clock[0] = 0.0
    q.t0 = 0.0
    clock[0] = 30.0
    q(1, 1000)
    clock[0] = 40.0
    q(101, 1000)  # 10% after 10 s of real work
    assert abs(q.eta(101, 1000, 40.0) - 89.9) < 1.0  # not (30 + 10) s / 10% = 360 s


def test_no_click_deprecation_warnings(tmp_path):
    import warnings

    src = tmp_path / "t.txt"
    src.write_bytes(b"text " * 20)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for args in (["compress", src, "-c"], ["compress", src], ["decompress", tmp_path / "t.txt.bba", "-c"],
                     ["test", tmp_path / "t.txt.bba"], ["info", tmp_path / "t.txt.bba"], ["--help"]):
            run(*args)
    assert not [w for w in seen if issubclass(w.category, DeprecationWarning)], [str(w.message) for w in seen]
