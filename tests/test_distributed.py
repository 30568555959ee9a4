"""Data-parallel training with torchrun (models/distributed.py): two gloo processes on the CPU end with identical
weights, the loss falls, and rank 0 alone logs and checkpoints."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).resolve().parent / "ddp" / "train_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_identically_and_the_loss_falls(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), str(WORKER), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "log.txt").read_text()
    assert "2 processes" in log
    train = [float(v) for v in re.findall(r"epoch \d+: train -ELBO ([0-9.]+) bits/dim", log)]
    assert len(train) == 3 and train[-1] < train[0], log
    assert (tmp_path / "ckpt.float.safetensors").exists()
