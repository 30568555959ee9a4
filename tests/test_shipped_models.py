"""The committed models: real-data rate within 1% of their own -ELBO, CLI round trips on the bundled samples, and
the registry that pins them (models/weights/manifest.json, read without torch or training code).

The rate test uses 300 images of ../shared/data when present (CI has it), else the 100 bundled sample images.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bbans
from bbans.bitsback import chain
from bbans.container.registry import load_model
from bbans_cli.main import cli
from bbans_models.datasets import RECIPES, dataset_path, load_dataset, recipe_splits

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {"mnist": ROOT / "samples" / "mnist-test-100.npy",
           "binarized-mnist": ROOT / "samples" / "binarized-mnist-test-100.npy"}


def _real_images(name: str, n: int = 300) -> np.ndarray:
    test_set = recipe_splits(name)[1]
    if dataset_path(test_set).exists():
        data = load_dataset(test_set)
        return data[np.sort(np.random.default_rng(7).choice(len(data), n, replace=False))]
    return np.load(SAMPLES[RECIPES[name]["dataset"]])


@pytest.mark.parametrize("name", ["mnist", "binarized-mnist", "mnist-small", "binarized-mnist-small",
                                  "binarized-mnist-fast"])
def test_archive_rate_within_one_percent_of_neg_elbo(name):
    model = load_model(name)
    data = _real_images(name)
    dims = data.size
    blob, report = bbans.compress_with_report(data, model, method="bits-back")
    assert np.array_equal(bbans.decompress(blob, model), data)
    s = report.seed_items
    if report.initial_bits:  # layout 1 chosen (a random seed coded smaller: binarized-mnist-fast on these 300)
        assert not s and report.initial_bits <= 8 * 1024
        steady = report.payload_bits - report.initial_bits  # the seed words the pops consumed are stored
        neg_elbo = float(model.neg_elbo_bits(data).sum())
        assert 0.98 * neg_elbo < steady < 1.01 * neg_elbo, (steady, neg_elbo)
        return
    assert 1 <= s <= 10  # the data seed: a few items, no random bits
    neg_elbo = float(model.neg_elbo_bits(data[s:]).sum())
    seed_bits = float(chain.seed_codec(model, s).cost(data[:s]).sum()) / 2 ** 20  # -log2 p(x | z = 0)
    header_bits = 8 * len(blob) - report.payload_bits
    # The bits-back items cost their -ELBO within 1%, on top of the seed items' own code ...
    steady = report.payload_bits - seed_bits
    # (the float model's -ELBO estimate, against which the integer model with its coarser latent bins may also
    # come out a little below: measured 1.2% below for binarized-mnist-small)
    assert 0.98 * neg_elbo < steady < 1.01 * neg_elbo, (steady, neg_elbo)
    # ... and the whole archive no more than that plus its header, a one-off cost that shrinks as 1/N.
    assert 8 * len(blob) <= 1.01 * neg_elbo + seed_bits + header_bits
    assert header_bits <= 8 * 80


def test_archives_of_renamed_models_still_decode():
    """Archives record (name, sha256). 'mnist-small' was shipped as 'mnist': an archive naming 'mnist' with its
    weights' sha256 must find them under the new name."""
    from bbans.container.registry import find_model

    small = load_model("mnist-small")
    assert small.name == "mnist-small"
    assert find_model("mnist", small.sha256).sha256 == small.sha256
    assert find_model("binarized-mnist", load_model("binarized-mnist-small").sha256).name == "binarized-mnist-small"


def test_archives_of_replaced_weights_still_decode(tmp_path):
    """tests/archives/binarized-mnist-v1-test-100.bba was written by `bbans compress` with the weights shipped as
    'binarized-mnist' before they were replaced (now the unlisted 'binarized-mnist-v1'): it must still restore the
    sample byte for byte, while that retired model stays out of the listing (never picked for new archives)."""
    from bbans.container.registry import list_models

    out = tmp_path / "restored.npy"
    r = CliRunner().invoke(cli, ["decompress", str(ROOT / "tests" / "archives" / "binarized-mnist-v1-test-100.bba"),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == SAMPLES["binarized-mnist"].read_bytes()
    assert "binarized-mnist-v1" not in {info["name"] for info in list_models()}


def test_layout_3_archive_of_retired_weights_decodes_by_sha256_alone(tmp_path):
    """Layout 3 stores no model name: an archive coded with a retired weights file (given by path) decodes
    with no --model, the registry finding the unlisted entry by its sha256 prefix; `bbans info` names it."""
    x = np.load(SAMPLES["binarized-mnist"])[:12]
    src, arc, out = tmp_path / "x.npy", tmp_path / "x.bba", tmp_path / "back.npy"
    np.save(src, x)
    weights = ROOT / "models" / "weights" / "binarized-mnist-v1.safetensors"
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(arc), "--model", str(weights), "--method",
                                 "bits-back", "--no-elbo"])
    assert r.exit_code == 0, r.output
    assert bbans.read_header(arc.read_bytes()).version == 3 and b"binarized-mnist" not in arc.read_bytes()
    r = CliRunner().invoke(cli, ["decompress", str(arc), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.load(out), x)
    r = CliRunner().invoke(cli, ["info", str(arc)])
    assert r.exit_code == 0 and "binarized-mnist-v1" in r.output and "40a1c4dec728" in r.output, r.output


@pytest.mark.parametrize("name", ["mnist", "binarized-mnist"])
def test_cli_round_trip_on_bundled_sample(name, tmp_path):
    src = tmp_path / "digits.npy"
    src.write_bytes(SAMPLES[name].read_bytes())
    runner = CliRunner()
    res = runner.invoke(cli, ["compress", str(src)])
    assert res.exit_code == 0, res.output
    assert name in res.output and "bits/dim" in res.output and "ELBO" in res.output
    out = tmp_path / "restored.npy"
    res = runner.invoke(cli, ["decompress", str(src) + ".bba", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == src.read_bytes()


def test_single_digit_png_archive_is_smaller_than_the_png(tmp_path):
    src = tmp_path / "digit.png"
    src.write_bytes((ROOT / "samples" / "digit-7.png").read_bytes())
    res = CliRunner().invoke(cli, ["compress", str(src)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "digit.png.bba").stat().st_size < src.stat().st_size


def test_neg_elbo_estimate_is_reproducible_across_calls():
    """The seeded -ELBO estimate must not depend on whether the float model was already built (building it draws
    random initial weights: it once shifted the first call's figure by 0.2%)."""
    model = load_model("mnist")
    data = np.load(SAMPLES["mnist"])[:30]
    fresh = type(model)(model.path)
    first = fresh.neg_elbo_bits(data)
    assert np.array_equal(first, fresh.neg_elbo_bits(data))
    assert np.array_equal(first, model.neg_elbo_bits(data))


def test_listing_reads_each_models_data_from_its_weights_file():
    """The manifest's listed models, in its order, with item shape and value range from each file's metadata."""
    from bbans_models.registry import MANIFEST, WEIGHTS_DIR, provider, read_manifest
    from bbans_models.weights_file import file_sha256, read_metadata

    entries = read_manifest(MANIFEST)
    listed = provider.list()
    assert [m["name"] for m in listed] == [e["name"] for e in entries if e["status"] == "listed"] == [
        "mnist", "binarized-mnist", "mnist-small", "binarized-mnist-small", "photo", "binarized-mnist-fast"]
    assert {m["name"]: m["value_range"] for m in listed} == {
        "mnist": (0, 255), "binarized-mnist": (0, 1), "mnist-small": (0, 255), "binarized-mnist-small": (0, 1),
        "photo": (0, 255), "binarized-mnist-fast": (0, 1)}
    assert all(m["data_shape"] == (28, 28) for m in listed if m["name"] != "photo")
    assert [m["tile_size"] for m in listed if m["name"] == "photo"] == [64]
    for e in entries:  # every pinned sha256 is its file's, retired files included
        assert file_sha256(WEIGHTS_DIR / e["file"]) == e["sha256"], e["name"]
        assert read_metadata(WEIGHTS_DIR / e["file"])["format"] == (
            "bbans-photo-1" if e["name"].startswith("photo") else "bbans-vae-2")


def test_loading_a_model_for_coding_imports_no_training_code():
    code = ("import sys, bbans_models.coding_model, bbans_models.registry as r; r.provider.list(); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bbans_models'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "bbans_models.coding_model" in loaded
    assert "bbans_models.train" not in loaded and "bbans_models.export" not in loaded, loaded


def test_a_file_that_is_not_a_weights_file_is_refused_cheaply(tmp_path):
    from bbans.errors import ModelError
    from bbans_models.registry import provider
    from bbans_models.weights_file import read_metadata

    for i, content in enumerate([b"", b"\xff" * 8 + b"{}", (2).to_bytes(8, "little") + b"{}",
                                 (40).to_bytes(8, "little") + b'{"__metadata__": {"bbans": "{}"}}      ']):
        path = tmp_path / f"w{i}.safetensors"
        path.write_bytes(content)
        with pytest.raises(ModelError, match="cannot read model file|is not a bbans model file"):
            read_metadata(path)
        assert provider.load_path(path) is None


def _ship_script():
    spec = importlib.util.spec_from_file_location("bbans_ship_model", ROOT / "scripts" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipping_new_weights_retires_the_old_ones_under_a_new_name():
    from bbans_models.registry import MANIFEST, read_manifest

    ship, entries = _ship_script(), read_manifest(MANIFEST)
    old = next(e for e in entries if e["name"] == "binarized-mnist")
    out, retired = ship.replace_in_manifest(entries, "binarized-mnist", "ab" * 32, None, "2030-01-01 00:00 UTC")
    assert retired["name"] == "binarized-mnist-v2" and retired["status"] == "retired"  # v1 is taken
    assert retired["sha256"] == old["sha256"] and retired["file"] == "binarized-mnist-v2.safetensors"
    assert [e["name"] for e in out] == [e["name"] for e in entries] + ["binarized-mnist-v2"]
    new = next(e for e in out if e["name"] == "binarized-mnist")
    assert new == {**{k: v for k, v in old.items() if k != "coding_variants"}, "sha256": "ab" * 32}
    assert retired["coding_variants"] == old["coding_variants"]  # its archives keep decoding
    assert ship.replace_in_manifest(entries, "mnist", entries[0]["sha256"], None, "now") == (entries, None)
    with pytest.raises(SystemExit, match="description"):
        ship.replace_in_manifest(entries, "cifar", "cd" * 32, None, "now")
    with pytest.raises(SystemExit, match="retired"):
        ship.replace_in_manifest(entries, "binarized-mnist-v1", "cd" * 32, None, "now")
    card = ship.retired_card((ROOT / "models" / "weights" / "binarized-mnist.md").read_text(), "binarized-mnist",
                             "binarized-mnist-v2", "2030-01-01 00:00 UTC")
    assert card.startswith("# Model card: `binarized-mnist-v2` (retired)\n\nShipped as `binarized-mnist` until")
    assert "`binarized-mnist-v2.safetensors`, sha256 `" + old["sha256"] in card
