"""One process of a data-parallel test run (started by tests/test_distributed.py through torchrun): trains a tiny
one-layer VAE on fixed random binary digits for a few epochs and saves this process's final weights and rank 0's
log in OUT (argv[1])."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from bbans_models.train import train
from bbans_models.vae import VAEConfig

out = Path(sys.argv[1])
torch.set_num_threads(1)
rng = np.random.default_rng(0)
proto = rng.uniform(size=(4, 28, 28)) < 0.3
data = (proto[rng.integers(0, 4, 256)] ^ (rng.uniform(size=(256, 28, 28)) < 0.05)).astype(np.uint8)
lines = []
config = VAEConfig(likelihood="bernoulli", latent_channels=2, hidden=[8, 8, 8])
model = train(config, data, out / "ckpt.float.safetensors", epochs=3, batch_size=32, lr=3e-3, seed=1,
              device="cpu", log=lines.append)
rank = int(os.environ.get("RANK", "0"))
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
if rank == 0:
    (out / "log.txt").write_text("\n".join(lines) + "\n")
