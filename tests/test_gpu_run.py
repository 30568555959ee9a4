"""The GPU run of issue 17 (scripts/gpu_run.py): archives coded with the integer networks on a CUDA device must
decode byte for byte on the CPU. The GPU half runs only where torch sees a CUDA device and skips with that reason
elsewhere; the script itself is exercised on the CPU with a tiny budget (no training: tests never train)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bbans
from bbans_models.datasets import dataset_path, load_dataset
from bbans_models.registry import provider

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_run.py"


def _mnist_test(n: int) -> np.ndarray:
    if not dataset_path("mnist-test").is_file():
        pytest.skip(f"the MNIST test set is not at {dataset_path('mnist-test')} (../shared/data)")
    return np.ascontiguousarray(load_dataset("mnist-test")[:n])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_archives_coded_on_the_gpu_decode_on_the_cpu():
    x = _mnist_test(200)
    on_gpu = bbans.compress(x, provider.load_on("mnist", "cuda"), method="bits-back")
    assert on_gpu == bbans.compress(x, provider.load("mnist"), method="bits-back")  # the same integers, the same bytes
    assert np.array_equal(bbans.decompress(on_gpu, provider.load("mnist")), x)


def test_gpu_run_script_both_halves_on_the_cpu(tmp_path):
    """`gpu_run.py run --device cpu` writes archives and their index; `gpu_run.py check` decodes them here."""
    _mnist_test(1)
    run = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(tmp_path), "--device", "cpu", "--items",
                          "30", "--photos", "0", "--train-minutes", "0"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "archives" / "mnist-test-30.bba").is_file() and (tmp_path / "archives" / "index.json").is_file()
    check = subprocess.run([sys.executable, str(SCRIPT), "check", str(tmp_path)], capture_output=True, text=True,
                           cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "identical to the input" in check.stdout and "byte-identical" in check.stdout
    assert "1 of 1 archives portable" in check.stdout
    no_gpu = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(tmp_path / "x"), "--device", "cuda"],
                            capture_output=True, text=True, cwd=ROOT)
    if not torch.cuda.is_available():
        assert no_gpu.returncode == 2 and "no CUDA device" in no_gpu.stderr
