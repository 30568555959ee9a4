"""Photos through the coder: images of any size as tiles (bbans/container/tiles.py), the masked autoregressive codec,
the integer-exact photo model (models/photo_ar_head.py, photo_export.py, photo_coding_model.py), round trips of odd
sizes through the library and the CLI, and hostile photo archives. Tiny models only (exported from a random init
in seconds); the shipped photo model's figures are in benchmarks/photos.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbans
from bbans.bitsback import chain
from bbans.container.archive import read_header
from bbans.codecs.autoregressive import RasterAutoregressive
from bbans.codecs.basic import Bernoulli
from bbans.container import tiles
from bbans.errors import ArchiveError, BBANSError, ModelError
from bbans_models.photo_coding_model import PhotoCodingModel
from bbans_models.photo_export import export_photo
from bbans_models.photo_vae import PhotoVAE, PhotoVAEConfig
from bbans_models.registry import provider
from bbans_models.train import save_float_checkpoint
from fuzzing import mutate, run_case, Sample
from test_photo_model import TINY, smooth_images

import constriction

TILE = 16


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    """A tiny photo coding model (random init, 16 x 16 tiles), exported as the shipped ones are."""
    folder = tmp_path_factory.mktemp("photo")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = PhotoVAE(PhotoVAEConfig(channels=3, **TINY)).eval()
    save_float_checkpoint(model, folder / "tiny.ckpt", {})
    path = export_photo(folder / "tiny.ckpt", folder / "tiny-photo.safetensors", smooth_images(8, size=16),
                        "tiny-photo", tile=TILE)
    torch.set_num_threads(before)
    return path


@pytest.fixture(scope="module")
def photo(photo_file):
    return PhotoCodingModel(photo_file)


def image(h: int, w: int, n: int = 1, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 (n, h, w, 3)."""
    size = max(h, w, 8)
    return np.ascontiguousarray(smooth_images(n, size=size, seed=seed).transpose(0, 2, 3, 1)[:, :h, :w])


# ------------------------------------------------------------------------------------------------ tiles


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 7, 1000, 3), (2, 37, 45, 3), (1, 16, 16, 3), (3, 17, 16, 1)])
def test_tiles_cover_the_images_and_restore_them(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, shape, np.uint8)
    t = tiles.to_tiles(x, TILE, 128)
    ext = tiles.tile_extents(shape, TILE)
    assert len(t) == len(ext) == tiles.tile_count(shape, TILE)
    assert np.array_equal(tiles.from_tiles(t, shape, TILE), x)
    mask = tiles.coded_mask(ext, TILE, shape[3])
    assert mask.sum() == x.size  # every pixel coded once, nothing outside
    assert np.all(t[~mask] == 128)
    assert ext.min() >= 1 and ext.max() <= TILE


# ------------------------------------------------------------------------------------------------ masked AR codec


def _toy_ar(shape, coded=None, fill=0):
    """An autoregressive binary codec: P(x_t = 1) is 0.8 after a 1 and 0.3 after a 0."""
    def params_all(x):
        prev = np.concatenate([np.zeros((len(x), 1), np.int64), x[:, :-1]], axis=1)
        return np.where(prev == 1, 0.8, 0.3)

    def params_at(x, t):
        return np.where(x[:, t - 1] == 1, 0.8, 0.3) if t else np.full(len(x), 0.3)

    return RasterAutoregressive(shape, (0, 1), params_all, params_at, Bernoulli, coded=coded, fill=fill)


def test_uncoded_positions_cost_nothing_and_come_back_as_the_fill():
    rng = np.random.default_rng(1)
    shape = (5, 6, 4)
    coded = rng.uniform(size=shape) < 0.6
    x = rng.integers(0, 2, shape)
    x[~coded] = 1
    codec = _toy_ar(shape, coded, fill=1)
    coder = constriction.stream.stack.AnsCoder()
    codec.push(coder, x)
    assert np.array_equal(_toy_ar(shape, coded, fill=1).pop(coder), x)
    assert coder.is_empty()
    cost = codec.cost(x)
    assert np.all(cost[~coded] == 0) and np.all(cost[coded] > 0)
    full = _toy_ar(shape).cost(x)  # unmasked, the same positions cost the same
    assert np.array_equal(full[coded], cost[coded])
    bad = x.copy()
    bad[~coded] = 0
    with pytest.raises(BBANSError, match="uncoded positions"):
        codec.push(constriction.stream.stack.AnsCoder(), bad)


# ------------------------------------------------------------------------------------------------ the model


def test_the_photo_model_is_an_image_model(photo):
    assert photo.tile_size == TILE and photo.data_shape == (TILE, TILE, 3) and photo.value_range == (0, 255)
    assert photo.coder_settings["tile"] == TILE and photo.coder_settings["tile_fill"] == 128
    assert photo.latent_size == sum(photo.layer_sizes)


def test_every_position_gets_the_same_parameters_decoding_as_encoding(photo):
    """params_all (encoding: every sub-pixel at once) and params_at (decoding: one at a time) give the same
    integers at every (pixel, channel) position; the channel heads see only earlier sub-pixels."""
    x = tiles.to_tiles(image(TILE, TILE, n=3, seed=2), TILE, 128)
    rng = np.random.default_rng(0)
    z = rng.integers(-40, 40, (len(x), photo.latent_size)).astype(np.int32)
    codec = photo.likelihood_codec(z)
    flat = x.reshape(len(x), -1).astype(np.int64)
    every = codec._all(flat)
    for t in list(range(0, flat.shape[1], 7)) + [flat.shape[1] - 1]:
        later = flat.copy()
        later[:, t:] = rng.integers(0, 256, later[:, t:].shape)  # what the decoder has not decoded yet
        assert np.array_equal(codec._at(later, t), every[:, t]), t


def test_the_compiled_channel_parameters_equal_the_numpy_ones(photo, monkeypatch):
    from bbans.codecs import kernels

    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed: only the numpy code runs")
    rng = np.random.default_rng(0)
    k = photo.components
    for c in range(3):
        raw = rng.integers(-20000, 20000, (7, 11, 3 * k + c * k))
        raw[..., k:2 * k] = rng.integers(-70000, 70000, (7, 11, k))
        earlier = rng.integers(0, 256, (7, 11, c))
        compiled = photo._channel_params(raw, c, earlier)
        monkeypatch.setattr(kernels, "AVAILABLE", False)
        assert np.array_equal(photo._channel_params(raw, c, earlier), compiled)
        monkeypatch.setattr(kernels, "AVAILABLE", True)


@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 7, 100, 3), (2, 37, 45, 3), (1, 48, 32, 3), (1, 1, 400, 3)])
def test_images_of_any_size_round_trip_through_the_library(photo, shape):
    x = image(*shape[1:3], n=shape[0], seed=shape[1])
    blob, rep = bbans.compress_with_report(x, photo, method="bits-back", want_elbo=True)
    assert rep.method == "bits-back"
    assert np.array_equal(bbans.decompress(blob, photo), x)
    if shape == (1, 1, 400, 3):  # thin tiles: the data seed spans several tiles of the one image
        assert read_header(blob).seed_items > 1
    # the rate is the model's own -ELBO (pixels outside the image cost nothing) plus the header and the seed
    if x.size >= 1000:
        assert 8 * len(blob) < 1.03 * rep.elbo_bits + 8 * 80


def test_the_rate_meets_the_elbo_on_many_tiles(photo):
    x = image(64, 80, n=2, seed=5)
    blob, rep = bbans.compress_with_report(x, photo, method="bits-back", want_elbo=True)
    assert np.array_equal(bbans.decompress(blob, photo), x)
    assert abs(8 * len(blob) / rep.elbo_bits - 1) < 0.01, (8 * len(blob), rep.elbo_bits)


def test_auto_never_exceeds_the_raw_size_plus_a_header(photo):
    for shape in [(1, 1, 1), (1, 7, 100), (1, 33, 20)]:
        x = np.random.default_rng(0).integers(0, 256, (*shape, 3), np.uint8)  # noise: no model wins
        blob = bbans.compress(x, photo)
        assert len(blob) <= x.nbytes + 64
        assert np.array_equal(bbans.decompress(blob, photo), x)


def test_grey_images_and_other_shapes_are_refused_with_a_reason(photo):
    grey = np.zeros((1, 20, 20), np.uint8)
    with pytest.raises(ModelError, match="does not fit"):
        bbans.compress(grey, photo, method="bits-back")
    with pytest.raises(ModelError, match="Monte-Carlo"):
        bbans.compress(image(16, 16), photo, method="bits-back", particles=4)
    with pytest.raises(ModelError, match="layout 1"):
        bbans.compress(image(16, 16), photo, method="bits-back", format_version=1)


def test_numpy_backend_and_no_compiled_kernels_decode_the_same(photo_file, photo, tmp_path):
    x = image(37, 45, seed=3)
    blob = bbans.compress(x, photo, method="bits-back")
    assert np.array_equal(bbans.decompress(blob, PhotoCodingModel(photo_file, backend="numpy")), x)
    (tmp_path / "a.bba").write_bytes(blob)
    np.save(tmp_path / "x.npy", x)
    code = (f"import numpy as np, bbans; from bbans_models.photo_coding_model import PhotoCodingModel as P; "
            f"m = P({str(photo_file)!r}, backend='numpy'); x = np.load({str(tmp_path / 'x.npy')!r}); "
            f"b = open({str(tmp_path / 'a.bba')!r}, 'rb').read(); assert np.array_equal(bbans.decompress(b, m), x); "
            f"assert bbans.compress(x, m, method='bits-back') == b; print('same')")
    env = {**os.environ, "BBANS_KERNELS": "numpy", "BBANS_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "same", out.stderr[-2000:]


def test_the_registry_loads_a_photo_file_by_path(photo_file):
    model = provider.load_path(photo_file)
    assert isinstance(model, PhotoCodingModel) and model.tile_size == TILE


def test_a_cli_png_round_trip_with_the_photo_model(photo_file, tmp_path):
    from PIL import Image
    from click.testing import CliRunner

    from bbans_cli.main import cli

    x = image(21, 35, seed=7)[0]
    Image.fromarray(x).save(tmp_path / "odd.png")
    r = CliRunner().invoke(cli, ["compress", "--method", "bits-back", "--model", str(photo_file),
                                 str(tmp_path / "odd.png")])
    assert r.exit_code == 0, r.output
    assert "bits-back" in r.output
    (tmp_path / "odd.png").unlink()
    r = CliRunner().invoke(cli, ["decompress", "--model", str(photo_file), str(tmp_path / "odd.png.bba")])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "odd.png")), x)


# ------------------------------------------------------------------------------------------------ hostile archives


def test_mutated_photo_archives_end_in_our_errors(photo):
    """Truncated, flipped, overwritten, spliced photo archives (checksums mostly repaired): a bbans error or the
    original data, never another exception, a hang or different data."""
    x = image(20, 36, seed=9)
    sample = Sample("photo", bbans.compress(x, photo, method="bits-back"), x, photo)
    other = bbans.compress(image(16, 16, seed=1), photo, method="bits-back")
    outcomes = {}
    for seed in range(60):
        outcome, detail = run_case(mutate(np.random.default_rng(seed), sample.blob, other), sample, seconds=30)
        assert outcome in ("clean", "same"), (seed, outcome, detail)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("clean", 0) > 30


# ------------------------------------------------------------------------------------------------ image codecs


@pytest.mark.parametrize("shape", [(1, 40, 40), (2, 33, 45, 3), (1, 64, 100, 4), (1, 1000, 7, 3), (1, 300, 37, 1)])
def test_the_image_codecs_round_trip_and_check_what_they_decode(shape):
    from bbans.container import image_codecs

    x = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    for m in image_codecs.METHODS:
        if not image_codecs.applicable(m, x):
            assert m == "webp" and (len(shape) == 3 or shape[3] == 1)
            with pytest.raises(BBANSError, match="codes RGB or RGBA"):
                bbans.compress(x, method=m)
            continue
        blob = bbans.compress(x, method=m)
        assert np.array_equal(bbans.decompress(blob), x)
        payload = image_codecs.compress(m, x)
        other = (shape[0], shape[1] + 8, *shape[2:])
        with pytest.raises(ArchiveError):  # a stream of another size than the header's
            image_codecs.decompress(m, payload, other)
        with pytest.raises(ArchiveError):
            image_codecs.decompress(m, payload[:-3], shape)
        with pytest.raises(ArchiveError):
            image_codecs.decompress(m, payload + b"x", shape)


def test_the_best_classical_method_for_a_photo_is_an_image_codec():
    from bbans.container import choice

    x = image(64, 96, seed=4)
    blob, method, _ = choice.best_classic_archive(x, b"")
    assert method in ("jpegxl", "webp")
    assert np.array_equal(bbans.decompress(blob), x)
    digits = np.zeros((3, 28, 28), np.uint8)  # items too small for per-image codec headers
    assert choice.classical_for(digits) == ["deflate", "lzma", "bz2", "stored"]
