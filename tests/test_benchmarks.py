"""The side-by-side benchmark (benchmarks/run.py, benchmarks/jobs.py) on tiny inputs: every codec it times
round-trips, the child-process runner returns sizes and peak memory, and the tables report what was measured.
Timing is never asserted."""
from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bbans.container.classic import reference_input

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bbans_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jobs = _load("jobs")
run = _load("run")
GREY = np.load(ROOT / "samples" / "mnist-test-100.npy")[:4]
BINARY = np.load(ROOT / "samples" / "binarized-mnist-test-100.npy")[:4]


def test_missing_optional_codec_names_the_bench_extra(monkeypatch):
    from bbans.container.classic import optional_reference_codecs

    monkeypatch.setitem(sys.modules, "brotli", None)  # makes `import brotli` fail
    with pytest.raises(ImportError, match=r"brotli.*pip install -e \.\[bench\]"):
        optional_reference_codecs()


@pytest.mark.parametrize("data", [GREY, BINARY], ids=["grey", "binary"])
@pytest.mark.parametrize("codec", ["gzip -9", "bz2 -9", "xz -9e"])
def test_generic_job_codes_the_reference_input(data, codec):
    r = jobs.job_generic(data, codec)
    assert r["exact"] is True and 0 < r["bytes"]
    if codec == "gzip -9":
        assert r["bytes"] == len(gzip.compress(reference_input(data)[0], 9, mtime=0))


@pytest.mark.parametrize("codec", ["zstd -19", "brotli -11"])
def test_optional_generic_codecs_round_trip(codec):
    pytest.importorskip("zstandard", reason="zstd needs the bench extra: pip install -e .[bench]")
    pytest.importorskip("brotli", reason="brotli needs the bench extra: pip install -e .[bench]")
    r = jobs.job_generic(BINARY, codec)
    assert r["exact"] is True and 0 < r["bytes"] < 4 * 98 + 64


@pytest.mark.parametrize("data", [GREY, BINARY], ids=["grey", "binary"])
@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_image_job_is_lossless_per_image(data, fmt):
    r = jobs.job_image(data, fmt)
    assert r["exact"] is True
    assert r["bytes"] == sum(len(jobs.image_encode(im, fmt, data is BINARY)) for im in data)


def test_png_of_binary_images_is_one_bit():
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(jobs.image_encode(BINARY[0], "png", True))).mode == "1"


@pytest.mark.parametrize("particles, method", [(1, "bits-back"), (2, "bits-back-is")])
def test_bbans_job_round_trips_with_the_shipped_model(particles, method):
    before = torch.get_num_threads()
    try:
        r = jobs.job_bbans(BINARY, "binarized-mnist", threads=1, particles=particles)
    finally:
        torch.set_num_threads(before)
    assert r["exact"] is True and r["method"] == method and r["bytes"] > 0


def test_run_job_uses_a_fresh_process_and_reports_peak_memory(tmp_path):
    path = tmp_path / "grey.npy"
    np.save(path, GREY)
    r = run.run_job({"job": "generic", "codec": "gzip -9", "data": str(path)})
    assert r["bytes"] == len(gzip.compress(GREY.tobytes(), 9, mtime=0)) and r["exact"] is True
    assert 0 < r["start_mib"] <= r["peak_mib"]


def test_network_throughput_counts_multiply_adds():
    """benchmarks/network_throughput.py counts a conv's and a transposed conv's multiply-adds from the layer shapes
    (and follows the shapes through), checked against hand counts."""
    from types import SimpleNamespace as L

    nt = _load("network_throughput")
    conv = L(op="conv", stride=1, padding=1, weight=np.zeros((16, 1, 3, 3)))       # 1 -> 16 at 28 x 28
    down = L(op="conv", stride=2, padding=1, weight=np.zeros((32, 16, 4, 4)))      # 16 -> 32, 28 -> 14
    up = L(op="convT", stride=2, padding=1, weight=np.zeros((32, 8, 4, 4)))        # 32 -> 8, 14 -> 28
    macs, shape = nt.layer_macs([conv, down, up], (1, 28, 28))
    assert shape == (8, 28, 28)
    assert macs == 28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 16 + 14 * 14 * 32 * 8 * 16


def test_subsets_and_model_choice():
    assert list(run.evenly_spaced(10, 3)) == [0, 3, 6] and list(run.evenly_spaced(4, None)) == [0, 1, 2, 3]
    assert run.models_for(GREY) == ["mnist", "mnist-small"]
    assert run.models_for(BINARY) == ["binarized-mnist", "binarized-mnist-small", "binarized-mnist-fast"]
    idx = jobs.nll_subset(100, 10)
    assert len(set(idx)) == 10 and list(idx) == sorted(idx) and list(idx) == list(jobs.nll_subset(100, 10))


def test_set_table_reports_the_measured_figures():
    arch = {"bytes": 1000, "encode_s": 1.0, "decode_s": 2.0, "peak_mib": 300.0, "start_mib": 200.0}
    ev = {"neg_elbo": 1.25, "nll": 1.2, "neg_elbo_subset": 1.26, "nll_items": 2, "nll_samples": 250}
    gz = {"bytes": 2000, "encode_s": 0.1, "decode_s": 0.0, "peak_mib": 50.0, "start_mib": 40.0}
    text = "\n".join(run.set_table("t", GREY, {"codecs": [("gzip -9", gz)], "models": [("mnist", arch, ev)]},
                                   False, 4))
    dims = GREY.size
    assert f"**{8 * 1000 / dims:.4f}** | 1.2500 | 1.2000 | 1.0 | 2.0 | 300 (200) |" in text
    assert f"| gzip -9 | {8 * 2000 / dims:.4f} |" in text and "4 images, all" in text


def test_readme_block_replaces_only_the_marked_region(tmp_path):
    section = ["## 8-bit set (4 images, all)", "", "| codec | bits/dim |", "|---|---|", "| x | 1.0 |", "", "- note"]
    block = run.readme_block([section], "stamp")
    assert block == ["stamp", "", "**8-bit set (4 images, all)**", "", "| codec | bits/dim |", "|---|---|",
                     "| x | 1.0 |"]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run.README_START}\nold table\n{run.README_END}\nafter\n")
    run.update_readme(readme, block)
    assert readme.read_text() == f"intro\n{run.README_START}\n" + "\n".join(block) + f"\n{run.README_END}\nafter\n"


def test_readme_results_are_the_committed_benchmark_tables():
    readme = (ROOT / "README.md").read_text()
    bench = (ROOT / "BENCHMARKS.md").read_text()
    block = readme.split(run.README_START, 1)[1].split(run.README_END, 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    assert len(rows) >= 2 * 9 and all(line in bench for line in rows)


profile = _load("profile")


def test_profile_stage_rules_and_builtins_split_by_caller():
    # waits for the bbans-blocks threads belong to whoever started the blocks: no stage of their own
    assert profile.direct_stage("~", "<method 'acquire' of '_thread.lock' objects>") is None
    assert profile.direct_stage("~", "<method 'decode' of 'builtins.AnsCoder' objects>") == "coder"
    assert profile.direct_stage("~", "<built-in method torch.conv2d>") == "networks"
    assert profile.direct_stage("/x/bbans/bitsback/chain.py", "encode") == "chain"
    assert profile.direct_stage("~", "<method 'reduce' of 'numpy.ufunc' objects>") is None
    net, tab, red = ("/x/models/integer_net.py", 1, "f"), ("/x/bbans/codecs/tables.py", 1, "g"), ("~", 0, "sum")
    stats = {net: (1, 1, 1.0, 2.0, {}), tab: (1, 1, 1.0, 3.0, {}),
             red: (3, 3, 3.0, 3.0, {net: (1, 1, 1.0, 1.0), tab: (2, 2, 2.0, 2.0)})}
    assert profile.split(stats, 1) == {"stages": {**dict.fromkeys(profile.STAGES, 0.0), "networks": 2.0, "tables": 3.0},
                                       "top": [["sum", "tables", 3.0, 3]]}


def test_profile_measures_a_shipped_model_and_its_stages_add_up(monkeypatch):
    import bbans_models.datasets

    monkeypatch.setattr(bbans_models.datasets, "load_dataset",
                        lambda name: np.load(ROOT / "samples" / f"{name}-100.npy"))  # no data set needed
    before = torch.get_num_threads()
    try:
        r = profile.measure("binarized-mnist-small", 24, 8, 1, 3)
    finally:
        torch.set_num_threads(before)
    assert r["items"] == 24 and 0 < r["bits_per_dim"] < 1 and len(r["split"]["decode"]["top"]) == 3
    for phase in ("encode", "decode"):
        stages = r["split"][phase]["stages"]
        assert stages["networks"] > 0 and stages["coder"] > 0 and sum(stages.values()) <= r["profiled_s"][phase]
    text = "\n".join(profile.report(r))
    assert "| networks " in text and "| total " in text and "bits/dim" in text


def test_speed_benchmark_times_a_model_in_a_fresh_process_and_reports_its_archive():
    import json
    import subprocess

    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--models", "binarized-mnist-small",
                          "--threads", "1", "--items", "150", "--json", "/dev/stdout"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    table, rows = run.stdout.split("\nbbans imported from", 1)
    assert "| binarized-mnist-small | 1 | 150 |" in table
    r = json.loads(rows.split("\n", 1)[1])[0]
    assert r["items"] == 150 and r["encode_s"] > 0 and r["decode_s"] > 0 and len(r["sha256"]) == 64
    assert 0 < r["bits_per_dim"] < 1


def test_run_keeps_the_sections_other_benchmarks_measured(tmp_path):
    path = tmp_path / "B.md"
    assert run.kept_sections(path) == ""                     # no file yet
    path.write_text("# Benchmarks\n\n| old table |\n")
    assert run.kept_sections(path) == ""                     # nothing marked to keep
    path.write_text(f"# Benchmarks\n\n| old table |\n\n{run.KEEP_MARKER}\n\n## Speed\n\n| kept |\n")
    assert run.kept_sections(path) == f"\n{run.KEEP_MARKER}\n\n## Speed\n\n| kept |\n"
    assert run.KEEP_MARKER in (ROOT / "BENCHMARKS.md").read_text()
