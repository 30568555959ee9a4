"""ELBO training of ``ConvVAE`` on cuda when available, else CPU.

Progress lines report the running -ELBO in bits/dim. Checkpoints (safetensors, float weights + optimizer-free
state) are written after every epoch so a run can be stopped and resumed with ``resume=True``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .vae import ConvVAE, VAEConfig, nats_to_bits_per_dim


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def save_float_checkpoint(model: ConvVAE, path: Path, extra: dict) -> None:
    """Float weights as safetensors; config and training facts as JSON in the file's metadata."""
    meta = {"config": json.dumps(model.config.to_dict()), "train": json.dumps(extra)}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def load_float_checkpoint(path: Path) -> tuple[ConvVAE, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    model = ConvVAE(VAEConfig(**json.loads(meta["config"])))
    model.load_state_dict(load_file(str(path)))
    return model, json.loads(meta.get("train", "{}"))


@torch.no_grad()
def evaluate_neg_elbo(model: ConvVAE, data: np.ndarray, device, batch: int = 1000, seed: int = 0) -> float:
    """Mean single-sample -ELBO over ``data`` (N,28,28) uint8, in bits/dim."""
    model.eval()
    torch.manual_seed(seed)
    total = 0.0
    for i in range(0, len(data), batch):
        x = torch.from_numpy(data[i:i + batch]).unsqueeze(1).to(device)
        total += model.neg_elbo(x).sum().item()
    return nats_to_bits_per_dim(total / len(data), data[0].size)


def train(
    config: VAEConfig,
    train_data: np.ndarray,
    out_path: Path,
    minutes: float = 10.0,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | None = None,
    resume: bool = False,
    test_data: np.ndarray | None = None,
    kl_warmup_steps: int = 0,
    reconstruction: str = "likelihood",
    log=print,
) -> ConvVAE:
    """Train until ``minutes`` of wall time or ``epochs`` have passed; returns the trained model.

    ``kl_warmup_steps``: the KL weight rises linearly from 0 to 1 over these steps (against posterior collapse);
    the loss after that, and every -ELBO reported, is the true -ELBO.
    ``reconstruction="mse"`` trains on squared error + KL instead (``ConvVAE.elbo_terms``; seed Sec. 5.1's
    counter-example): progress lines then report that loss ("MSE+KL", nats per item), not a -ELBO.
    """
    dev = pick_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    start_epoch, elapsed_before = 0, 0.0
    if resume and out_path.exists():
        model, facts = load_float_checkpoint(out_path)
        start_epoch, elapsed_before = facts.get("epochs", 0), facts.get("minutes", 0.0) * 60
        log(f"resuming from {out_path} at epoch {start_epoch}")
    else:
        model = ConvVAE(config)
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    dims = int(np.prod(train_data.shape[1:]))
    x_all = torch.from_numpy(train_data).unsqueeze(1)
    t0 = time.time()
    epoch = start_epoch
    step = start_epoch * (len(train_data) // batch_size)
    log(f"training on {dev} ({torch.get_num_threads()} threads): {len(train_data)} items, batch {batch_size}")
    while True:
        if epochs is not None and epoch >= epochs:
            break
        if epochs is None and time.time() - t0 + elapsed_before > minutes * 60:
            break
        model.train()
        perm = rng.permutation(len(train_data))
        running, seen = 0.0, 0
        for j in range(0, len(perm) - batch_size + 1, batch_size):
            x = x_all[perm[j:j + batch_size]].to(dev)
            rec, kl = model.elbo_terms(x, reconstruction)
            beta = min(1.0, step / kl_warmup_steps) if kl_warmup_steps else 1.0
            loss = (rec + beta * kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running += (rec + kl).mean().item() * len(x)
            seen += len(x)
            if epochs is None and time.time() - t0 + elapsed_before > minutes * 60:
                break
        epoch += 1
        wall = (time.time() - t0 + elapsed_before) / 60
        if reconstruction == "mse":
            msg = f"epoch {epoch}: train MSE+KL {running / max(seen, 1):.4f} nats/item, {wall:.1f} min"
        else:
            msg = f"epoch {epoch}: train -ELBO {nats_to_bits_per_dim(running / max(seen, 1), dims):.4f} bits/dim, {wall:.1f} min"
        facts = {"epochs": epoch, "minutes": round(wall, 2), "device": str(dev), "batch_size": batch_size, "lr": lr,
                 "seed": seed, "train_items": len(train_data), "kl_warmup_steps": kl_warmup_steps,
                 "torch_threads": torch.get_num_threads(), "reconstruction": reconstruction}
        if test_data is not None and reconstruction == "likelihood":
            facts["test_neg_elbo_bpd"] = evaluate_neg_elbo(model, test_data[:2000], dev)
            msg += f", test[:2000] -ELBO {facts['test_neg_elbo_bpd']:.4f}"
        log(msg)
        save_float_checkpoint(model, out_path, facts)
    return model.cpu()


if __name__ == "__main__":  # long runs: python -m bbans_models.train NAME MINUTES OUT
    import argparse

    from .datasets import RECIPES, SPLITS, load_dataset

    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=sorted(SPLITS))
    p.add_argument("minutes", type=float)
    p.add_argument("out", type=Path)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--latent-channels", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--kl-warmup", type=int, default=None,
                   help="steps over which the KL weight rises to 1 (default: the shipped recipe's)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tr, te = (load_dataset(split) for split in SPLITS[a.kind])
    warmup = RECIPES[a.kind]["kl_warmup"] if a.kl_warmup is None else a.kl_warmup
    config = VAEConfig(**RECIPES[a.kind]["config"], latent_channels=a.latent_channels)
    train(config, tr, a.out, minutes=a.minutes, lr=a.lr, resume=a.resume,
          test_data=te, kl_warmup_steps=warmup, log=lambda s: print(s, flush=True))
    print(f"final test -ELBO {evaluate_neg_elbo(load_float_checkpoint(a.out)[0], te, 'cpu'):.4f}")
