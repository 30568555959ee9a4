"""Chunks coded on a Dask cluster (bbans/container/workers.py): the archive is byte-identical to one coded in this
process, also when a worker process is killed in the middle of the run (Dask reruns its task)."""
from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed: "
                                                        "pip install -e .[cluster]")
psutil = pytest.importorskip("psutil", reason="psutil comes with dask[distributed]")

from bbans.container.pipeline import ArchiveReader, EncodeOptions, encode  # noqa: E402
from bbans.container.sinks import MemorySink  # noqa: E402
from bbans.container.sources import FileSource  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "mnist-test-100.npy"


def _source() -> FileSource:
    return FileSource(str(SAMPLE), 128, (100, 28, 28))  # the bundled sample's items, memory-mapped


def _archive(**options) -> bytes:
    sink = MemorySink()
    encode(_source(), sink, EncodeOptions(model_ref="mnist-small", chunk_items=20, want_elbo=False, **options))
    return sink.getvalue()


@pytest.fixture(scope="module")
def reference() -> bytes:
    return _archive()


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def test_local_cluster_writes_the_same_bytes_and_decodes(reference, cluster):
    blob = _archive(scheduler=cluster.scheduler_address)
    assert blob == reference
    reader = ArchiveReader(io.BytesIO(blob), str(SAMPLE))
    data = np.load(SAMPLE)
    assert np.array_equal(np.concatenate(list(reader.items(40, 70, model_ref="mnist-small"))), data[40:70])


def test_a_worker_killed_mid_run_changes_nothing(reference, cluster):
    killed = []

    def kill_one_worker(done, total):
        if not killed and done >= 20:  # after the first chunk: the other worker is busy with the next ones
            workers = [p for p in psutil.Process().children(recursive=True) if "python" in p.name().lower()]
            assert workers, "no worker process found"
            os.kill(workers[-1].pid, signal.SIGKILL)
            killed.append(workers[-1].pid)

    sink = MemorySink()
    encode(_source(), sink, EncodeOptions(model_ref="mnist-small", chunk_items=20, want_elbo=False,
                                          scheduler=cluster.scheduler_address), progress=kill_one_worker)
    assert killed and sink.getvalue() == reference


def test_local_n_scheduler_and_bad_addresses():
    from bbans.container.workers import executor
    from bbans.errors import InputError

    with pytest.raises(InputError, match="local:N"):
        with executor(1, "local:0"):
            pass
    assert _archive(scheduler="local:1") == _archive()


def test_a_folder_on_the_cluster_gives_the_same_collection(cluster, tmp_path):
    from bbans.container.pipeline import EncodeOptions as Options
    from bbans_cli.folders import compress_folder

    src = tmp_path / "mixed"
    (src / "sub").mkdir(parents=True)
    np.save(src / "sub" / "digits.npy", np.load(SAMPLE)[:30])
    (src / "notes.txt").write_bytes(b"a folder of mixed files " * 30)
    (src / "noise.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    here, there = MemorySink(), MemorySink()
    compress_folder(src, here, Options())
    compress_folder(src, there, Options(scheduler=cluster.scheduler_address))
    assert here.getvalue() == there.getvalue()


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and "glibc" in (os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (ValueError, OSError):
        return False


def test_worker_tasks_restore_malloc_thresholds_that_dasks_nanny_froze(monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in every worker, which made chunks code ~2x slower (workers.py);
    the tasks raise glibc's thresholds again when the variable is set, and leave malloc alone when it is not."""
    from bbans.container import workers

    relax = workers.relax_malloc_trim.__wrapped__   # the cached wrapper runs once per process
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert relax() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert relax() is _glibc()


@pytest.mark.skipif(not _glibc(), reason="mallopt exists only in glibc")
def test_the_cluster_workers_run_with_the_thresholds_restored(cluster):
    """In a real nanny-started worker: the variable is set there, and a task's prepare_worker undoes it."""
    from distributed import Client

    from bbans.container import workers

    def probe(_):
        workers.prepare_worker()
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), workers.relax_malloc_trim()

    with Client(cluster) as client:
        env, relaxed = client.submit(probe, 0, pure=False).result()
    assert env is not None and relaxed is True


def test_cli_decompress_on_the_cluster_restores_the_same_file(reference, cluster, tmp_path):
    from click.testing import CliRunner

    from bbans_cli.main import cli

    archive = tmp_path / "digits.bba"
    r = CliRunner().invoke(cli, ["compress", str(SAMPLE), "-o", str(archive), "--chunk-items", "20", "--no-elbo",
                                 "-m", "mnist-small", "-q"])
    assert r.exit_code == 0, r.output
    outs = []
    for how in (["-j", "1"], ["--scheduler", cluster.scheduler_address]):
        out = tmp_path / f"back{len(outs)}.npy"
        r = CliRunner().invoke(cli, ["decompress", str(archive), "-o", str(out), "-q", *how])
        assert r.exit_code == 0, r.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == SAMPLE.read_bytes()
    r = CliRunner().invoke(cli, ["decompress", "-", "--scheduler", "local:1"], input=archive.read_bytes())
    assert r.exit_code == 2 and "standard input" in r.output
