"""The ``bbans`` command under faults, in real processes (tests/faulting.py): a bounded set of scenarios of every
class -- EPIPE, a file-size limit, SIGINT and SIGTERM at several moments (one chunk and several, -j 2, one case
with a shipped model), a read-only output folder, an input that grows or shrinks while it is read. For each: no
exit 0 with incomplete output, no input removed after a failed or partial write, no partial file left, no
"checksum verified" on failure, no traceback. The long version: tests/fuzz/faults.py. About a minute."""
from __future__ import annotations

import pytest

import faulting as F

S = F.Scenario

SCENARIOS = [
    # a reader that leaves after 1 byte, or after part of the output (| head -c N)
    S("pipe", "compress", "raw", "stdout-pipe", rm=True, x=0.0),
    S("pipe", "compress", "raw-chunks", "stdout-pipe", jobs=2, rm=True, x=0.6),
    S("pipe", "decompress", "raw", "stdout-pipe", rm=True, x=0.0),
    S("pipe", "decompress", "raw-chunks", "stdout-pipe", x=0.5),
    # a full disk / quota: the file-size limit is a share x of the output's size
    S("fsize", "compress", "raw", "file", rm=True, x=0.0),
    S("fsize", "compress", "raw", "stdout-file", rm=True, x=0.9),
    S("fsize", "compress", "raw-chunks", "file", jobs=2, rm=True, x=0.5),
    S("fsize", "decompress", "raw", "file", rm=True, x=0.7),
    S("fsize", "decompress", "raw-chunks", "stdout-file", rm=True, x=0.3),
    # Ctrl-C (the process group) and SIGTERM (the process, or the group) at a share x of a clean run's time
    S("sigint", "compress", "raw", "file", rm=True, x=0.4),
    S("sigint", "compress", "raw-chunks", "file", jobs=2, rm=True, x=0.5),
    S("sigint", "decompress", "raw-chunks", "file", jobs=2, rm=True, x=0.6),
    S("sigint", "compress", "model-chunks", "file", jobs=2, rm=True, x=0.45),
    S("sigterm", "compress", "raw", "stdout-file", x=0.7, group=False),
    S("sigterm", "compress", "raw-chunks", "file", jobs=2, rm=True, x=0.3),
    S("sigterm", "decompress", "raw", "file", rm=True, x=0.8, group=False),
    # a read-only output folder
    S("readonly", "compress", "raw", "file", rm=True),
    S("readonly", "decompress", "raw-chunks", "file", jobs=2, rm=True),
    # the input changes size while it is read
    S("grow", "compress", "raw-chunks", "file", rm=True, x=0.5),
    S("shrink", "compress", "raw", "file", rm=True, x=0.5),
    S("shrink", "compress", "raw-chunks", "file", jobs=2, rm=True, x=0.4),
]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return F.References(tmp_path_factory.mktemp("fault-refs"), F.payloads())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.key + f":x{s.x}" for s in SCENARIOS])
def test_no_fault_loses_data(scenario, refs, tmp_path):
    if scenario.fault == "readonly" and not F.readonly_supported():
        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    res = F.run_scenario(scenario, refs, tmp_path / "case")
    assert res.problems == [], (res.rc, res.problems, res.stderr[-2000:])
    if scenario.fault in ("pipe", "fsize", "readonly"):  # these faults always hit: a clean failure
        assert res.rc != 0 and "bbans: error:" in res.stderr or res.rc == 141, (res.rc, res.stderr)
    if scenario.fault == "pipe":
        assert res.rc == 141 and res.stderr.strip() in ("", "bbans: note: --rm ignored: the input is kept when the "
                                                        "output goes to standard output", "bbans: note: --rm "
                                                        "ignored: the archive is kept when the output goes to "
                                                        "standard output"), res.stderr
