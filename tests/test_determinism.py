"""Archives decode identically whatever torch's thread count and the input's memory layout (docs/design.md,
"Determinism").

craystack's own MNIST example fails its round trip at 2 threads; our coding networks are integer-exact, and these
tests prove the property end to end through the bits-back chain with real torch inference.
"""
from __future__ import annotations

import numpy as np
import pytest

import bbans
from bbans_models.coding_model import VAECodingModel

from tiny_vae import make_tiny_model_file, random_images

from helpers import with_torch_threads


@pytest.fixture(scope="module", params=["logistic_mixture", "bernoulli"])
def setup(request, tmp_path_factory):
    path = make_tiny_model_file(tmp_path_factory.mktemp("det"), request.param, seed=2)
    return VAECodingModel(path), VAECodingModel(path, backend="numpy"), random_images(60, request.param, seed=9)


def test_encode_and_decode_at_1_and_2_threads(setup):
    model, _, data = setup
    blob1 = with_torch_threads(1, bbans.compress, data, model, batch_size=16, method="bits-back")
    blob2 = with_torch_threads(2, bbans.compress, data, model, batch_size=16, method="bits-back")
    assert blob1 == blob2
    assert np.array_equal(with_torch_threads(1, bbans.decompress, blob2, model), data)
    assert np.array_equal(with_torch_threads(2, bbans.decompress, blob1, model), data)


def test_contiguous_slice_and_copy_give_the_same_archive(setup):
    model, _, data = setup
    ref = bbans.compress(data, model, batch_size=16, method="bits-back")
    big = np.zeros((2 * len(data), 28, 28 * 3), np.uint8)
    big[::2, :, 1::3] = data
    sliced = big[::2, :, 1::3]
    assert not sliced.flags.c_contiguous
    assert bbans.compress(sliced, model, batch_size=16, method="bits-back") == ref
    assert bbans.compress(np.asfortranarray(data), model, batch_size=16, method="bits-back") == ref
    assert bbans.compress(data.copy(), model, batch_size=16, method="bits-back") == ref


def test_numpy_reference_and_torch_interoperate(setup):
    model_t, model_n, data = setup
    data = data[:20]
    blob_t = bbans.compress(data, model_t, batch_size=8, method="bits-back")
    blob_n = bbans.compress(data, model_n, batch_size=8, method="bits-back")
    assert blob_t == blob_n
    assert np.array_equal(bbans.decompress(blob_t, model_n), data)
    assert np.array_equal(bbans.decompress(blob_n, model_t), data)
