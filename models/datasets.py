"""The real training/test sets as uint8 arrays of shape (N, 28, 28), read from ``$BBANS_DATA`` or, in a source
checkout, from ``shared/data`` beside the repository (see that folder's README); plus the shipped models' recipes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bbans.errors import InputError
from bbans.idx import maybe_gunzip, parse_idx

DATASETS = {
    # name: (relative path, kind)
    "mnist-train": ("mnist/train-images.idx3-ubyte.gz", "idx"),
    "mnist-test": ("mnist/t10k-images.idx3-ubyte.gz", "idx"),
    "binarized-mnist-train": ("binarized_mnist/binarized_mnist_train.amat", "amat"),
    "binarized-mnist-valid": ("binarized_mnist/binarized_mnist_valid.amat", "amat"),
    "binarized-mnist-test": ("binarized_mnist/binarized_mnist_test.amat", "amat"),
}


# The shipped models' recipes, as plain data (no torch import): the data set each trains on (a key of SPLITS), the
# VAEConfig fields that differ from its defaults, the KL warm-up steps (the 8-bit mixture model collapses without
# a short warm-up) and the latent bin exponent its export uses (bins of width 2^-b; see export.coder_settings).
# The names are the registry's model names.
SPLITS = {
    "mnist": ("mnist-train", "mnist-test"),
    "binarized-mnist": ("binarized-mnist-train", "binarized-mnist-test"),
}
# Measured on the 8-bit set (test -ELBO after one epoch, 2,000 test images): one latent layer with the AR head seeing
# centred pixels 1.543 and 1.548 (two seeds); with a top latent layer or uncentred pixels 1.836-1.851, the posterior
# of z1 collapsing to a narrow x-independent code. The binary model trains well with both (0.1553 after 5 epochs).
RECIPES = {
    "mnist": {"dataset": "mnist", "kl_warmup": 200, "bin_exponent": 5,
              "config": {"likelihood": "logistic_mixture", "components": 5, "ar_channels": 32, "ar_kernel": 5,
                         "ar_centered": True}},
    "binarized-mnist": {"dataset": "binarized-mnist", "kl_warmup": 500, "bin_exponent": 5,
                        "config": {"likelihood": "bernoulli", "top_latent_channels": 4, "ar_channels": 32,
                                   "ar_kernel": 7}},
    "mnist-small": {"dataset": "mnist", "kl_warmup": 200, "bin_exponent": 5,
                    "config": {"likelihood": "logistic_mixture", "components": 5}},
    "binarized-mnist-small": {"dataset": "binarized-mnist", "kl_warmup": 0, "bin_exponent": 4,
                              "config": {"likelihood": "bernoulli"}},
    # binarized-mnist-small at half the width (~4x fewer multiply-adds): for speed (benchmarks/network_throughput.py)
    "binarized-mnist-fast": {"dataset": "binarized-mnist", "kl_warmup": 0, "bin_exponent": 4,
                             "config": {"likelihood": "bernoulli", "hidden": [16, 32, 32]}},
}


# Photos (RGB PNG folders under the data root, see shared/data/README.md): the training and test folders of the
# photo model family (``photo_vae``). Kodak is test data only: never train on it.
PHOTO_FOLDERS = {
    "urban100": "photos/train/urban100",
    "bsd68": "photos/train/bsd68",
    "kodak": "photos/test/kodak",
}
# The photo recipes, same shape as RECIPES plus the model family and the crop/tile sizes. Kept apart from RECIPES
# because ``training_run.train_recipe`` (behind ``bbans train RECIPE``) builds a ``VAEConfig`` and exports it, which
# the photo family does not support yet; ``photo_training.train_photo`` trains them. ``test_tiles``: the fixed
# subset of 32x32 Kodak tiles on which the -ELBO is reported while training (``photo_data.kodak_tiles``).
PHOTO_RECIPES = {
    "photo": {"family": "photo-vae", "train": ["urban100", "bsd68"], "test": "kodak", "crop": 32,
              "crops_per_epoch": 2048, "test_tiles": 512, "tile": 32, "kl_warmup": 500, "bin_exponent": 5,
              "coding_tile": 64, "batch_size": 32, "lr": 2e-3,
              "config": {"channels": 3, "components": 5, "hidden": [32, 64, 96], "depth": 1,
                         "latent_channels": 8, "top_latent_channels": 8, "top_hidden": 64,
                         "ar_channels": 32, "ar_kernel": 5}},
}


def photo_folder(name: str) -> Path:
    """The folder of PNGs of photo set ``name`` (a key of PHOTO_FOLDERS); InputError naming where it looked when
    it is missing."""
    if name not in PHOTO_FOLDERS:
        raise InputError(f"unknown photo set {name!r}; known: {', '.join(PHOTO_FOLDERS)}")
    path = data_root() / PHOTO_FOLDERS[name]
    if not path.is_dir():
        env = os.environ.get("BBANS_DATA")
        raise InputError(f"photo set {name!r} not found at {path}. Data sets are read from $BBANS_DATA "
                         f"({'set to ' + env if env else 'not set'}), else from {CHECKOUT_DATA}; set BBANS_DATA to "
                         "the folder holding photos/")
    return path


def recipe_splits(name: str) -> tuple[str, str]:
    """(training set, test set) names of recipe ``name``."""
    return SPLITS[RECIPES[name]["dataset"]]


# The data folder of a source checkout: ``shared/data`` beside the repository root (the folder above ``models/``).
CHECKOUT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_root() -> Path:
    """``$BBANS_DATA`` if set, else CHECKOUT_DATA. Nothing else is searched; the folder may not exist (see
    ``load_dataset``)."""
    env = os.environ.get("BBANS_DATA")
    return Path(env) if env else CHECKOUT_DATA


def dataset_path(name: str) -> Path:
    """Where the named set's file is expected (it may not exist)."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return data_root() / DATASETS[name][0]


def load_dataset(name: str) -> np.ndarray:
    """Load a named set as uint8 (N, 28, 28); raises InputError naming where it looked when the file is missing."""
    path = dataset_path(name)
    if not path.exists():
        env = os.environ.get("BBANS_DATA")
        raise InputError(f"data set {name!r} not found at {path}. Data sets are read from $BBANS_DATA "
                         f"({'set to ' + env if env else 'not set'}), else from {CHECKOUT_DATA} (shared/data beside "
                         "the source checkout); set BBANS_DATA to the folder holding mnist/ and binarized_mnist/")
    if DATASETS[name][1] == "idx":
        raw, _ = maybe_gunzip(path.read_bytes())
        return np.array(parse_idx(raw)[1])
    import scipy.io

    x = scipy.io.loadmat(str(path))["X"]
    return np.ascontiguousarray(x.reshape(-1, 28, 28).astype(np.uint8))
