"""The integer coding networks give identical integers on every path (docs/design.md, "Determinism")."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from bbans.codecs import tables
from bbans_models.coding_model import VAECodingModel
from bbans_models.integer_net import channel_abs_sums

from tiny_vae import make_tiny_model_file, random_images


@pytest.fixture(scope="module", params=["logistic_mixture", "bernoulli"])
def tiny(request, tmp_path_factory):
    path = make_tiny_model_file(tmp_path_factory.mktemp("tiny"), request.param)
    return request.param, VAECodingModel(path), VAECodingModel(path, backend="numpy")


def test_tables_are_pinned():
    """The tables are built with `decimal`, so these hashes hold on every machine and Python version."""
    pinned = {
        tables.sigmoid_table: "6f0d9aafa209ffa957ba5b3dff549744c24aa591051f741c484518509f9443f4",
        tables.inv_scale_table: "3d4c241b0a1414dea09e8005e38da484bc9692e2ba7e62239dcf8aa2e7edf185",
        tables.mix_weight_table: "dac5574957c2dbd6fd2d9efa6249ca52b2b14a7866f4f20e2b7560f512393437",
        tables.sigma_table: "060a2fc327477e5c04e50aba115b1ab6e14259522e8a75a4b9d4747d50ece2b4",
        tables.normal_cdf_table: "f282d058a183c0645180635bdeb2fa00de9c06d2173352ff83667c17602488a6",
        tables.inv_sigma_table: "5a552d98ba60e1e012ab4e09d8bd8f56a3f378374f2b0498464ff01b0d04b3ec",
    }
    for fn, digest in pinned.items():
        arr = fn()
        le = arr.astype(arr.dtype.newbyteorder("<"))
        assert hashlib.sha256(le.tobytes()).hexdigest() == digest, fn.__name__


def test_layers_respect_the_float32_exactness_budget(tiny):
    _, model, _ = tiny
    half = model.coder_settings["latent_bins"] // 2
    for layers, x_max in ((model.int_layers["enc"], 255), (model.int_layers["dec"], half)):
        for layer in layers:
            # every partial sum of conv + bias (which holds the rounding offset) is an integer below 2^24
            worst = x_max * channel_abs_sums(layer.weight, layer.op == "convT", layer.stride) + np.abs(layer.bias)
            assert worst.max() < 2 ** 24
            assert np.all(layer.weight == np.rint(layer.weight)) and np.all(layer.bias == np.rint(layer.bias))
            shift = layer.e_out - layer.e_in - layer.e_w
            assert shift.min() >= -23 and shift.max() <= -1
            x_max = int(layer.hi.max())


def test_torch_and_numpy_reference_agree_exactly(tiny):
    kind, model_t, model_n = tiny
    x = random_images(12, kind)
    for a, b in zip(model_t.posterior_params(x), model_n.posterior_params(x)):
        assert np.array_equal(a, b)
    half = model_t.coder_settings["latent_bins"] // 2
    z = np.random.default_rng(3).integers(-half, half, (12, model_t.latent_size))
    assert np.array_equal(model_t.likelihood_params(z), model_n.likelihood_params(z))


def test_thread_count_batch_split_and_layout_do_not_change_outputs(tiny):
    kind, model, _ = tiny
    x = random_images(40, kind, seed=5)
    half = model.coder_settings["latent_bins"] // 2
    z = np.random.default_rng(4).integers(-half, half, (40, model.latent_size))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ref_post = model.posterior_params(x)
        ref_lik = model.likelihood_params(z)
        torch.set_num_threads(2)
        post2 = model.posterior_params(x)
        lik2 = model.likelihood_params(z)
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(ref_post, post2))
    assert np.array_equal(ref_lik, lik2)
    # batch of 1 + batch of 39, a strided view, and a Fortran-ordered copy
    split = [np.concatenate(p) for p in zip(model.posterior_params(x[:1]), model.posterior_params(x[1:]))]
    assert all(np.array_equal(a, b) for a, b in zip(ref_post, split))
    wide = np.zeros((40, 28, 56), np.uint8)
    wide[:, :, ::2] = x
    assert all(np.array_equal(a, b) for a, b in zip(ref_post, model.posterior_params(wide[:, :, ::2])))
    assert np.array_equal(ref_lik, model.likelihood_params(np.asfortranarray(z)))


def test_export_is_byte_reproducible(tmp_path):
    """The same checkpoint exports to the same bytes, so a model's sha256 is reproducible from its checkpoint."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    first, second = (make_tiny_model_file(folder, seed=3) for folder in folders)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("transposed", [False, True])
def test_split_weights_stay_exact_and_agree_with_the_reference(transposed):
    """Split layers (integer_net's docstring): W = 2^s W_hi + W_lo, each half's float32 convolution under 2^24; the
    torch runner (two float32 convolutions summed in float64) equals the float64 reference, and the extra bits
    bring the layer closer to the float one than an unsplit conversion."""
    from bbans_models.integer_net import (ACT_CLIP, TorchIntNet, convert_layer, forward_numpy, layers_from_tensors,
                                          layers_to_tensors)

    torch.manual_seed(0)
    conv = (torch.nn.ConvTranspose2d(96, 64, 4, 2, 1) if transposed else torch.nn.Conv2d(96, 96, 3, 1, 1))
    x = np.random.default_rng(1).integers(0, ACT_CLIP + 1, (2, 96, 8, 8))
    e_in, e_out = 6, 8
    errors = {}
    for max_split in (0, 4):
        layer = convert_layer(conv, e_in, ACT_CLIP, e_out, -(1 << 20), 1 << 20, max_split=max_split)
        assert layer.split == max_split
        if layer.split:
            hi, lo = layer.split_weights()
            assert np.array_equal(np.ldexp(hi, layer.split) + lo, layer.weight)
            assert np.abs(lo).max() <= 2 ** (layer.split - 1)
            for half in (hi, lo):
                assert (ACT_CLIP * channel_abs_sums(half, transposed, layer.stride)).max() < 2 ** 24
        tensors, meta = layers_to_tensors("t", [layer])
        again = layers_from_tensors("t", tensors, meta)[0]
        assert again.split == layer.split
        ref = forward_numpy([again], x)
        assert np.array_equal(TorchIntNet([again])(x), ref)
        with torch.no_grad():
            want = conv(torch.from_numpy(x / 2.0 ** e_in).float()).double().numpy() * 2.0 ** e_out
        errors[max_split] = np.abs(ref - want).mean()
    assert errors[4] < errors[0] / 2
