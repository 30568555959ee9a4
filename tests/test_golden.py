"""Golden archives (tests/archives/golden.json, written by tests/archives/make_golden.py with the code as it stood
before bbans/ was restructured into layers): today's code must decode each one to its input and re-encode that
input, with the same ``bbans compress`` arguments, to the identical bytes. A failure here means archives already
in users' hands would no longer decode, or the coder's output changed without a new version of its settings."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bbans_cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "archives"
CASES = json.loads((GOLDEN / "golden.json").read_text())


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_archive_decodes_to_its_input(name, tmp_path):
    case = CASES[name]
    src = ROOT / case["input"]
    assert _sha(src.read_bytes()) == case["input_sha256"], f"the input of {name} changed"
    archive = GOLDEN / f"{name}.bba"
    assert _sha(archive.read_bytes()) == case["sha256"]
    out = tmp_path / "restored"
    r = CliRunner().invoke(cli, ["decompress", str(archive), "-o", str(out)])
    assert r.exit_code == 0, r.output
    if src.suffix == ".png":
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(src)))
    elif src.suffix == ".gz":
        assert out.read_bytes() == gzip.decompress(src.read_bytes())
    else:
        assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_input_reencodes_to_identical_bytes(name, tmp_path):
    case = CASES[name]
    src = ROOT / case["input"]
    local = tmp_path / src.name
    shutil.copyfile(src, local)
    out = tmp_path / "again.bba"
    version = case.get("format_version", 1)  # the cases recorded before layout 2 re-encode with --format-version 1
    # a case whose model was replaced names the retired weights file (models/weights/NAME-vK.safetensors)
    args = [str(ROOT / a) if a.startswith("models/weights/") else a for a in case["args"]]
    r = CliRunner().invoke(cli, ["compress", str(local), "-o", str(out), "--no-elbo", "--format-version",
                                 str(version), *args])
    assert r.exit_code == 0, r.output
    blob = out.read_bytes()
    assert (len(blob), _sha(blob)) == (case["bytes"], case["sha256"])
