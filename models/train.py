"""ELBO or IWAE-k training of ``ConvVAE`` on cuda when available (bf16 mixed precision), else CPU.

Progress lines report the running -ELBO in bits/dim. Checkpoints (safetensors: float weights, Adam state, training
facts) are written after every epoch so a run can be stopped and resumed with ``resume=True``. Images are uint8
arrays (N, 28, 28); the command-line front end is ``bbans train``.

Other model families train the same way: a config with a ``build()`` method (e.g. ``photo_vae.PhotoVAEConfig``)
builds its model, and a ``family`` attribute of the config, recorded in the checkpoint, rebuilds it on loading.
Items may then be uint8 (N, C, H, W), or come from an epoch source (``train``'s ``train_data``).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .distributed import Group, LossModule
from .vae import ConvVAE, VAEConfig, nats_to_bits_per_dim


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


OPTIM_PREFIX = "optim."


def build_model(config) -> torch.nn.Module:
    """The model of ``config``: ``config.build()`` where the config defines it (other families), else ConvVAE."""
    build = getattr(config, "build", None)
    return build() if callable(build) else ConvVAE(config)


def _config_from_meta(meta: dict):
    """The config a checkpoint's metadata records: its ``family`` (absent for ConvVAE) picks the config class."""
    fields = json.loads(meta["config"])
    family = meta.get("family")
    if family is None:
        return VAEConfig(**fields)
    if family == "photo-vae":
        from .photo_vae import PhotoVAEConfig

        return PhotoVAEConfig(**fields)
    raise ValueError(f"unknown model family {family!r} in the checkpoint")


def save_float_checkpoint(model: ConvVAE, path: Path, extra: dict, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Float weights as safetensors; config and training facts as JSON in the file's metadata; with ``optimizer``
    (Adam) also its moment estimates (``optim.*`` tensors) and step, so a resumed run continues exactly. A config
    with a ``family`` attribute (a model other than ConvVAE) records it as metadata ``family``."""
    meta = {"config": json.dumps(model.config.to_dict()), "train": json.dumps(extra)}
    family = getattr(model.config, "family", None)
    if family is not None:
        meta["family"] = family
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if optimizer is not None:
        for i, p in enumerate(model.parameters()):
            for key, value in optimizer.state.get(p, {}).items():
                state[f"{OPTIM_PREFIX}{i}.{key}"] = torch.as_tensor(value).detach().cpu().reshape(-1).contiguous() \
                    if key == "step" else value.detach().cpu().contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def _load_checkpoint_tensors(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIM_PREFIX)}
    optim = {k[len(OPTIM_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPTIM_PREFIX)}
    return meta, weights, optim


def _load_checkpoint(path: Path) -> tuple[ConvVAE, dict, dict]:
    """(model, training facts, saved optimizer tensors keyed ``"{param index}.{name}"``) from a checkpoint."""
    meta, weights, optim = _load_checkpoint_tensors(path)
    model = build_model(_config_from_meta(meta))
    model.load_state_dict(weights)
    return model, json.loads(meta.get("train", "{}")), optim


def load_float_checkpoint(path: Path) -> tuple[ConvVAE, dict]:
    """(model, training facts) from a checkpoint written by ``save_float_checkpoint``."""
    model, facts, _ = _load_checkpoint(path)
    return model, facts


def _restore_optimizer(optimizer: torch.optim.Optimizer, model: ConvVAE, saved: dict) -> bool:
    """Put saved Adam moments back (``save_float_checkpoint``); False if the checkpoint holds none."""
    if not saved:
        return False
    for i, p in enumerate(model.parameters()):
        st = {key.split(".", 1)[1]: v for key, v in saved.items() if key.split(".", 1)[0] == str(i)}
        if st:
            st["step"] = st["step"].reshape(())
            optimizer.state[p] = {k: v.to(p.device) if k != "step" else v for k, v in st.items()}
    return True


def _as_items(data: np.ndarray) -> torch.Tensor:
    """uint8 items as the model sees them: (N, H, W) -> (N, 1, H, W); (N, C, H, W) as it is."""
    x = torch.from_numpy(np.ascontiguousarray(data))
    return x.unsqueeze(1) if x.ndim == 3 else x


@torch.no_grad()
def evaluate_neg_elbo(model: ConvVAE, data: np.ndarray, device, batch: int = 1000, seed: int = 0) -> float:
    """Mean single-sample -ELBO over ``data`` (N,28,28) or (N,C,H,W) uint8, in bits/dim."""
    model.eval()
    torch.manual_seed(seed)
    total = 0.0
    for i in range(0, len(data), batch):
        x = _as_items(data[i:i + batch]).to(device)
        total += model.neg_elbo(x).sum().item()
    return nats_to_bits_per_dim(total / len(data), data[0].size)


def _quiet(line: str) -> None:
    """The log of every process but rank 0."""


def training_loss(model: ConvVAE, x: torch.Tensor, objective: str | Callable, beta: float, iwae_k: int):
    """(loss to minimize, per-item cost for reporting, nats (B,), detached) on images x (B, 1, 28, 28).

    ``objective`` "elbo": mean of reconstruction + beta * latent cost (``ConvVAE.elbo_terms``; beta < 1 only during
    KL warm-up); reported: the single-sample -ELBO. "iwae": mean of -(logsumexp_k log w_k - log k), the IWAE-k bound
    of Burda et al., "Importance Weighted Autoencoders" (ICLR 2016), with k = ``iwae_k`` posterior samples per item;
    reported: the mean -log w of those samples (a single-sample -ELBO estimate). A callable
    ``objective(model, x, beta)`` returns that pair itself: an experiment's own loss (see ``train``)."""
    if callable(objective):
        return objective(model, x, beta)
    if objective == "iwae":
        log_w = model.iwae_log_weights(x, iwae_k)                          # (k, B)
        loss = -(torch.logsumexp(log_w, 0) - math.log(iwae_k)).mean()
        return loss, (-log_w.mean(0)).detach()
    if objective != "elbo":
        raise ValueError(f"unknown objective {objective!r}: 'elbo' or 'iwae'")
    rec, kl = model.elbo_terms(x)
    return (rec + beta * kl).mean(), (rec + kl).detach()


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
    objective: str | Callable = "elbo",
    iwae_k: int = 5,
    lr_schedule: str = "constant",
    progress_seconds: float = 30.0,
    log=print,
) -> ConvVAE:
    """Train until ``minutes`` of wall time or ``epochs`` have passed; returns the trained model.

    ``config``: a ``VAEConfig``, or any config with a ``build()`` method (``build_model``). ``train_data``: uint8
    (N, 28, 28) or (N, C, H, W), or an epoch source: an object with ``len()`` (items per epoch), ``item_shape``
    ((C, H, W)) and ``epoch(seed, epoch)`` -> uint8 (len, C, H, W), e.g. fresh random crops per epoch
    (``photo_data.RandomCrops``); it must depend only on (seed, epoch), so a resumed run continues exactly.

    ``kl_warmup_steps``: the KL weight rises linearly from 0 to 1 over these steps (against posterior collapse);
    the loss after that, and every -ELBO reported, is the true -ELBO.
    ``objective``: "elbo" or "iwae" (``iwae_k`` samples); see ``training_loss``. Or a callable
    ``(model, x, beta) -> (loss, per-item cost in nats (B,))`` for an experiment's own loss (e.g. the MSE loss of
    ``benchmarks/experiments/mse.py``): progress lines then report that cost in nats per item under the callable's
    ``label`` attribute (default: its name), no test -ELBO is measured, and the checkpoint's facts record that
    label as the objective; unless the callable's ``reports_elbo`` attribute is true (its per-item cost is the
    true single-sample -ELBO, only its loss differs): then it is reported and tested like "elbo".
    ``lr_schedule``: "constant" or "cosine" (from ``lr`` down to 0 over the whole budget, minutes or epochs, counted
    from the start of the first run, so a resumed run continues the same curve).
    A progress line with the running -ELBO (bits/dim) is logged every ``progress_seconds``, and an epoch line with
    the test -ELBO on 2,000 test items after every epoch, when the checkpoint (weights and Adam state) is saved.
    On cuda the forward pass runs under bfloat16 autocast (mixed precision); on the CPU in float32.
    """
    dev = pick_device(device)
    procs = Group.from_env(dev.type)  # several processes under torchrun: data-parallel (models/distributed.py)
    if procs.world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(dev)
    shard = procs.shard(batch_size)
    if not procs.main:
        log = _quiet
    torch.manual_seed(seed)
    start_epoch, elapsed_before, saved_optim = 0, 0.0, {}
    if resume and out_path.exists():
        model, facts, saved_optim = _load_checkpoint(out_path)
        start_epoch, elapsed_before = facts.get("epochs", 0), facts.get("minutes", 0.0) * 60
        log(f"resuming from {out_path} at epoch {start_epoch}, {elapsed_before / 60:.1f} min done")
    else:
        model = build_model(config)
    model.to(dev)
    step_loss = procs.wrap(LossModule(model, lambda m, x, beta: training_loss(m, x, objective, beta, iwae_k)))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if _restore_optimizer(opt, model, saved_optim):
        log("restored the optimizer state")
    source = train_data if callable(getattr(train_data, "epoch", None)) else None
    dims = int(np.prod(source.item_shape if source is not None else train_data.shape[1:]))
    x_all = None if source is not None else _as_items(train_data)
    amp = dev.type == "cuda"
    t0 = time.time()
    epoch = start_epoch
    steps_per_epoch = max(1, len(train_data) // batch_size)
    step = start_epoch * steps_per_epoch
    n_params = sum(p.numel() for p in model.parameters())
    # A callable whose ``reports_elbo`` is true reports the true -ELBO as its per-item cost: it is then logged and
    # tested like "elbo" (e.g. a free-bits loss, ``photo_training.FreeBits``).
    custom = callable(objective) and not getattr(objective, "reports_elbo", False)
    label = (getattr(objective, "label", getattr(objective, "__name__", "custom")) if callable(objective)
             else objective)
    log(f"training on {dev} ({torch.get_num_threads()} threads{', bf16 autocast' if amp else ''}"
        + (f", {procs.world} processes" if procs.world > 1 else "") + "): "
        f"{len(train_data)} items, batch {batch_size}, {n_params:,} parameters, objective {label}"
        + (f" (k={iwae_k})" if objective == "iwae" else ""))

    def wall() -> float:
        return time.time() - t0 + elapsed_before

    def fraction_done() -> float:
        return min(1.0, step / (epochs * steps_per_epoch)) if epochs is not None else min(1.0, wall() / (60 * minutes))

    def out_of_budget() -> bool:
        return epoch >= epochs if epochs is not None else wall() > minutes * 60

    unit = label if custom else "-ELBO"
    fmt = (lambda v: f"{v:.4f} nats/item") if custom else (lambda v: f"{nats_to_bits_per_dim(v, dims):.4f} bits/dim")
    last_log = time.time()
    while not out_of_budget():
        model.train()
        if source is not None:
            x_all = _as_items(source.epoch(seed, epoch))
        perm = np.random.default_rng([seed, epoch]).permutation(len(train_data))
        torch.manual_seed(seed * 1_000_003 + epoch + 7919 * procs.rank)  # per-epoch noise: a resumed run continues
        running, seen, recent, recent_n = 0.0, 0, 0.0, 0
        for j in range(0, len(perm) - batch_size + 1, batch_size):
            x = x_all[perm[j:j + batch_size][shard]].to(dev, non_blocking=True)  # this process's shard
            beta = min(1.0, step / kl_warmup_steps) if kl_warmup_steps else 1.0
            rate = lr * (0.5 * (1 + math.cos(math.pi * fraction_done())) if lr_schedule == "cosine" else 1.0)
            for group in opt.param_groups:
                group["lr"] = rate
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss, per_item = step_loss(x, beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            stop = epochs is None and wall() > minutes * 60  # every process stops where rank 0 says
            batch_cost, batch_n, stop = procs.sum([per_item.float().sum().item(), len(x),
                                                   float(stop and procs.main)], dev)
            running, seen = running + batch_cost, seen + int(batch_n)
            recent, recent_n = recent + batch_cost, recent_n + int(batch_n)
            if time.time() - last_log > progress_seconds:
                log(f"  epoch {epoch + 1}, step {step}: train {unit} {fmt(recent / recent_n)} (last "
                    f"{recent_n} items), KL weight {beta:.2f}, lr {rate:.2e}, {wall() / 60:.1f} min")
                last_log, recent, recent_n = time.time(), 0.0, 0
            if stop:
                break
        epoch += 1
        minutes_done = wall() / 60
        msg = f"epoch {epoch}: train {unit} {fmt(running / max(seen, 1))}, {minutes_done:.1f} min"
        facts = {"epochs": epoch, "minutes": round(minutes_done, 2), "device": str(dev), "batch_size": batch_size,
                 "lr": lr, "lr_schedule": lr_schedule, "seed": seed, "train_items": len(train_data),
                 "kl_warmup_steps": kl_warmup_steps, "torch_threads": torch.get_num_threads(),
                 "objective": label, "steps": step}
        if not custom:
            facts["reconstruction"] = "likelihood"  # -log p(x|z), as every shipped model's card records
        if objective == "iwae":
            facts["iwae_k"] = iwae_k
        if procs.world > 1:
            facts["processes"] = procs.world
        if procs.main:  # rank 0 alone measures and writes; the others wait for the checkpoint
            if test_data is not None and not custom:
                facts["test_neg_elbo_bpd"] = evaluate_neg_elbo(model, test_data[:2000], dev)
                msg += f", test[:2000] -ELBO {facts['test_neg_elbo_bpd']:.4f}"
            log(msg)
            save_float_checkpoint(model, out_path, facts, opt)
        procs.barrier()
    return model.cpu()
