"""Portability (docs/design.md, "Determinism"): archives cross between the numpy reference and torch, at 1 and 2
threads, byte for byte.

Each shipped 8-bit model on MNIST test images (../shared/data; the 100 bundled samples when it is absent): 1,000
with `mnist-small`, 300 with the autoregressive `mnist` (its pixel-by-pixel decoding is the slow part).
The numpy path shares no kernel with torch (sliding windows + einsum vs oneDNN), so equal archives show that the
integer networks and integer tables define the code, not the arithmetic library.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bbans
from bbans.container.registry import load_model
from bbans_models.coding_model import VAECodingModel
from bbans_models.datasets import dataset_path, load_dataset

from helpers import with_torch_threads

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int) -> np.ndarray:
    if dataset_path("mnist-test").exists():
        return load_dataset("mnist-test")[:n]
    return np.load(ROOT / "samples" / "mnist-test-100.npy")


@pytest.mark.parametrize("name, n", [("mnist-small", 1000), ("mnist", 300)])
def test_numpy_reference_and_torch_write_and_read_each_others_archives(name, n):
    torch_model = load_model(name)
    numpy_model = VAECodingModel(torch_model.path, backend="numpy", expected_sha256=torch_model.sha256, name=name)
    numpy_model = numpy_model.with_coding_variant(torch_model.coding_variant)  # the registry's (coarser bins)
    assert torch_model.coding_variant  # so the variant path is what this compares
    x = _images(n)
    blob_numpy = bbans.compress(x, numpy_model, method="bits-back")
    blob_torch_1 = with_torch_threads(1, bbans.compress, x, torch_model, method="bits-back")
    blob_torch_2 = with_torch_threads(2, bbans.compress, x, torch_model, method="bits-back")
    assert blob_numpy == blob_torch_1 == blob_torch_2
    assert np.array_equal(with_torch_threads(1, bbans.decompress, blob_numpy, torch_model), x)
    assert np.array_equal(with_torch_threads(2, bbans.decompress, blob_numpy, torch_model), x)
    assert np.array_equal(bbans.decompress(blob_torch_2, numpy_model), x)
