"""Sec. 6 of R. Yu, "A Tutorial on VAEs: From Bayes' Rule to Lossless Compression" (arXiv:2006.10273, 2020)
reproduced: VAEs and IWAEs with 2 latent dims on three 2-D distributions.

    python benchmarks/toy2d.py                 # train the 6 models (the paper's iteration counts), table + figures
    python benchmarks/toy2d.py --reuse         # evaluate / plot checkpoints already in runs/toy2d
    python benchmarks/toy2d.py --fraction 0.05 # a quick run with 5% of the iterations (not the reported figures)

Per data set: the exact entropy H of the true distribution (``experiments.toy2d_data.entropy_bits``), and for a
VAE (ELBO, 60,000 iterations) and an IWAE (k = 10, 30,000 iterations), both at batch 200 with fresh exact samples:
the -ELBO (one latent sample, analytic KL), the IWAE-10 loss and the NLL estimated with 250 importance samples
(Burda et al., "Importance Weighted Autoencoders", ICLR 2016), all in bits per data point on fresh test points,
beside the paper's Table 1a / Table 2 figures. Writes docs/toy2d.md and two figures in docs/figures/: true vs
estimated density (the paper's Fig. 1a/3a) and the latent-space colour correspondence (Fig. 1b/3b). Checkpoints
(safetensors) go to runs/toy2d/ (git-ignored). 1 torch thread.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from experiments.toy2d_data import DISTRIBUTIONS, entropy_bits, make
from experiments.toy2d_vae import MLPVAE, evaluate, train

ROOT = Path(__file__).resolve().parents[1]
# The paper's figures (Yu 2020, Table 1a and Table 2): H, VAE -ELBO, VAE NLL, IWAE loss, IWAE NLL, per data point
# (in bits: see experiments/toy2d_data.py).
PAPER_FIGURES = {
    "8gaussians": (-1.92, -1.81, -1.86, -1.85, -1.91),
    "checkerboard": (-1.0, -0.73, -0.81, -0.84, -0.88),
    "2spirals": (-2.34, -1.98, -2.15, -2.25, -2.30),
}
COLUMNS = ("H", "VAE -ELBO", "VAE NLL", "IWAE loss", "IWAE NLL")
RUNS = {"vae": dict(k=1, iterations=60_000), "iwae": dict(k=10, iterations=30_000)}
KEYS = list(DISTRIBUTIONS)  # ensemble member order
WARMUP = 0.1  # fraction of the iterations over which the KL weight rises from 0 to 1
HIDDEN, LAYERS, BATCH, LR = 128, 2, 200, 1e-3
LIMIT = 0.75  # plots cover [-LIMIT, LIMIT]^2


def log(msg: str) -> None:
    print(msg, flush=True)


def checkpoint(runs: Path, kind: str) -> Path:
    return runs / f"toy2d-{kind}.safetensors"


def get_model(runs: Path, kind: str, reuse: bool, fraction: float, seed: int) -> tuple[MLPVAE, dict]:
    """The ``kind`` ('vae' or 'iwae') ensemble, one member per data set in KEYS order: loaded or trained."""
    path = checkpoint(runs, kind)
    model = MLPVAE(members=len(KEYS), hidden=HIDDEN, layers=LAYERS)
    if reuse and path.exists():
        model.load_state_dict(load_file(str(path)))
        with safe_open(str(path), framework="pt") as f:
            facts = json.loads((f.metadata() or {}).get("train", "{}"))
        log(f"{kind}: loaded {path}")
        return model.eval(), {**facts, "reused": True}
    spec = RUNS[kind]
    iters = max(1, round(spec["iterations"] * fraction))
    warmup = round(WARMUP * iters)
    log(f"{kind}: training {iters:,} iterations, batch {BATCH}, k={spec['k']}, KL warm-up {warmup:,} iterations, "
        f"members {', '.join(KEYS)}")
    t0 = time.time()
    hist = train(model, [make(key).sample for key in KEYS], iters, batch=BATCH, k=spec["k"], lr=LR, warmup=warmup,
                 seed=seed, log=log, log_every=max(1, iters // 12))
    facts = {"iterations": iters, "k": spec["k"], "warmup": warmup, "seconds": round(time.time() - t0, 1),
             "final_train_loss": [round(v, 4) for v in hist[-1][1]], "seed": seed}
    runs.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"train": json.dumps(facts)})
    return model.eval(), facts


def grid(n: int = 120):
    g = np.linspace(-LIMIT, LIMIT, n)
    xx, yy = np.meshgrid(g, g)
    return np.stack([xx.ravel(), yy.ravel()], 1), (n, n)


@torch.no_grad()
def model_density(model: MLPVAE, pts: np.ndarray, k: int = 250) -> np.ndarray:
    """exp(-NLL estimate) with k importance samples on ``pts`` (N, 2) for every member: density estimates (E, N)."""
    torch.manual_seed(0)
    x = torch.from_numpy(np.broadcast_to(pts, (model.members, *pts.shape)).astype(np.float32))
    out = [torch.exp(-model.iwae_loss_nats(x[:, i:i + 200], k)).numpy() for i in range(0, len(pts), 200)]
    return np.concatenate(out, axis=1)


def position_colours(x: np.ndarray) -> np.ndarray:
    """RGB per point from its position: hue from the angle around the origin, lightness from the radius."""
    import matplotlib.colors as mcolors

    hue = (np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi)) % 1.0
    r = np.clip(np.hypot(x[:, 0], x[:, 1]) / 0.55, 0, 1)
    return mcolors.hsv_to_rgb(np.stack([hue, 0.35 + 0.65 * r, 0.95 - 0.35 * r], 1))


def figures(models: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    pts, shape = grid()
    keys = KEYS
    estimates = {kind: model_density(models[kind], pts) for kind in ("vae", "iwae")}
    fig, axes = plt.subplots(len(keys), 3, figsize=(7.5, 2.5 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        dist = make(key)
        panels = [("true density", np.exp(dist.log_density(pts)))]
        panels += [(f"{kind.upper()} estimate (exp -NLL, k=250)", estimates[kind][row]) for kind in ("vae", "iwae")]
        vmax = panels[0][1].max()
        for col, (title, dens) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(dens.reshape(shape), origin="lower", extent=(-LIMIT, LIMIT, -LIMIT, LIMIT), cmap="magma",
                      vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{dist.name}: {title}" if col == 0 else title, fontsize=7)
    fig.tight_layout()
    dens_path = out_dir / "toy2d_density.png"
    fig.savefig(dens_path, dpi=90)
    plt.close(fig)

    xs = np.stack([make(key).sample(3000, np.random.default_rng(7)) for key in keys])
    with torch.no_grad():
        means = {kind: models[kind].posterior(torch.from_numpy(xs.astype(np.float32)))[0].numpy()
                 for kind in ("vae", "iwae")}
    fig, axes = plt.subplots(len(keys), 3, figsize=(7.5, 2.5 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        dist = make(key)
        x = xs[row]
        colours = position_colours(x)
        axes[row, 0].scatter(x[:, 0], x[:, 1], c=colours, s=1.5, linewidths=0, rasterized=True)
        axes[row, 0].set_title(f"{dist.name}: data, coloured by position", fontsize=7)
        axes[row, 0].set_xlim(-LIMIT, LIMIT)
        axes[row, 0].set_ylim(-LIMIT, LIMIT)
        for col, kind in enumerate(("vae", "iwae"), start=1):
            mu = means[kind][row]
            ax = axes[row, col]
            ax.scatter(mu[:, 0], mu[:, 1], c=colours, s=1.5, linewidths=0, rasterized=True)
            ax.set_xlim(-4, 4)
            ax.set_ylim(-4, 4)
            ax.set_title(f"{kind.upper()}: posterior means in z-space", fontsize=7)
        for ax in axes[row]:
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    lat_path = out_dir / "toy2d_latents.png"
    fig.savefig(lat_path, dpi=90)
    plt.close(fig)
    return [dens_path, lat_path]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", nargs="*", default=list(RUNS), choices=list(RUNS),
                   help="train only these (e.g. vae and iwae in two processes), then stop; default: all + report")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the paper's iteration counts")
    p.add_argument("--reuse", action="store_true", help="load checkpoints from --runs instead of training")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "toy2d")
    p.add_argument("--test-points", type=int, default=10_000)
    p.add_argument("--entropy-samples", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only; do not write docs/toy2d.md or figures")
    a = p.parse_args()
    torch.set_num_threads(1)
    t_start = time.time()
    header = (f"# measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
              f"({platform.processor() or 'cpu'}), torch {torch.__version__}, 1 torch thread; MLP {LAYERS}x{HIDDEN} "
              f"ReLU, Adam lr {LR} cosine-decayed to lr/100, batch {BATCH}, "
              + ("checkpoints reused" if a.reuse else f"fraction {a.fraction} of the paper's iterations")
              + f", {a.test_points:,} fresh test points, seed {a.seed}")
    log(header)
    if a.kinds != list(RUNS):
        for kind in a.kinds:
            get_model(a.runs, kind, a.reuse, a.fraction, a.seed)
        return
    models, facts = {}, {}
    for kind in RUNS:
        models[kind], facts[kind] = get_model(a.runs, kind, a.reuse, a.fraction, a.seed)
        log(f"{kind}: {facts[kind]}")
    test = np.stack([make(key).sample(a.test_points, np.random.default_rng(a.seed + 1000)) for key in KEYS])
    ev = {kind: evaluate(models[kind], test, nll_samples=250, iwae_k=10, seed=a.seed) for kind in RUNS}
    rows, notes = {}, []
    for e, key in enumerate(KEYS):
        dist = make(key)
        h, h_se, how = entropy_bits(dist, n=a.entropy_samples, seed=a.seed + 1)
        notes.append(f"{dist.name}: H = {h:.4f} ± {h_se:.4f} bits ({how})")
        log(notes[-1])
        v, w = ev["vae"], ev["iwae"]
        rows[key] = ((h, h_se), (v["neg_elbo"][e], v["neg_elbo_se"][e]), (v["nll"][e], v["nll_se"][e]),
                     (w["iwae_loss"][e], w["iwae_loss_se"][e]), (w["nll"][e], w["nll_se"][e]))
        for kind in RUNS:
            r = ev[kind]
            log(f"{key} {kind}: -ELBO {r['neg_elbo'][e]:+.3f}, IWAE-10 loss {r['iwae_loss'][e]:+.3f}, NLL(250) "
                f"{r['nll'][e]:+.3f} bits/point")

    lines = ["| data | " + " | ".join(f"{c} ours (Yu)" for c in COLUMNS) + " | max abs diff |",
             "|---|" + "---|" * (len(COLUMNS) + 1)]
    checks = []
    for key, vals in rows.items():
        paper_vals = PAPER_FIGURES[key]
        diffs = [abs(v[0] - s) for v, s in zip(vals, paper_vals)]
        lines.append(f"| {make(key).name} | " + " | ".join(f"{v[0]:+.3f} ({s:+.2f})" for v, s in zip(vals, paper_vals))
                     + f" | {max(diffs):.3f} |")
        h, neg_elbo, vae_nll, iwae_loss, iwae_nll = (v[0] for v in vals)
        checks.append(f"{make(key).name}: VAE NLL < VAE -ELBO: {vae_nll < neg_elbo}; IWAE NLL <= IWAE loss: "
                      f"{iwae_nll <= iwae_loss}; IWAE NLL closer to H than VAE NLL: {abs(iwae_nll - h) < abs(vae_nll - h)} "
                      f"({iwae_nll - h:+.3f} vs {vae_nll - h:+.3f} bits); paper's figures within 0.15: "
                      f"{all(d <= 0.15 for d in diffs)}")
    table = "\n".join(lines)
    se_line = "Standard errors over the test points (bits): " + "; ".join(
        f"{make(k).name} " + ", ".join(f"{v[1]:.3f}" for v in vals) for k, vals in rows.items())
    log("\n" + table + "\n\n" + se_line + "\n\n" + "\n".join(checks))
    log(f"total {(time.time() - t_start) / 60:.1f} min")
    if a.no_write:
        return
    paths = figures(models, ROOT / "docs" / "figures")
    doc = ROOT / "docs" / "toy2d.md"
    cmd = "python benchmarks/toy2d.py" + (f" --fraction {a.fraction}" if a.fraction != 1 else "") + (
        " --reuse" if a.reuse else "")
    trained = "; ".join(f"{kind.upper()}: {f.get('iterations')} iterations (KL warm-up {f.get('warmup')}), "
                        f"{f.get('seconds')} s of training wall time" for kind, f in facts.items())
    doc.write_text("\n".join([
        "# Yu (2020), Sec. 6 reproduced: VAE and IWAE with 2 latent dims on 2-D toy data",
        "",
        "R. Yu, \"A Tutorial on VAEs: From Bayes' Rule to Lossless Compression\" (arXiv:2006.10273, 2020).",
        "",
        f"Generated by `{cmd}` ({(time.time() - t_start) / 60:.1f} min).",
        "",
        header.lstrip("# "),
        "",
        f"Training (the three data sets train as one 3-member ensemble per model kind): {trained}.",
        "",
        "All figures in **bits per data point** (2-D continuous data; the entropy column pins the paper's units: the "
        "checkerboard's exact -1 bit is log2 of a support of area 1/2 in the unit box). Ours first, the paper's in "
        "parentheses. VAE: ELBO objective; IWAE: k = 10; -ELBO with one latent sample and the analytic KL; NLL "
        "with 250 importance samples (Burda et al., \"Importance Weighted Autoencoders\", ICLR 2016). Likelihood: "
        "a Gaussian with learned (decoder-output) variance. "
        "The paper trained 60,000 (VAE) and 30,000 (IWAE) iterations; this run's counts are on the Training line "
        "above, and where they are smaller the comparison with the paper is not at equal budget.",
        "",
        table,
        "",
        se_line,
        "",
        "Entropies and scaling (see `benchmarks/experiments/toy2d_data.py`): " + "; ".join(notes) + ".",
        "",
        "Checks: " + "; ".join(checks) + ".",
        "",
        f"![true vs estimated density](figures/{paths[0].name})",
        "",
        "True density and each model's density estimate exp(-NLL, 250 importance samples) on a 120x120 grid, one "
        "colour scale per row (the paper's Fig. 1a/3a).",
        "",
        f"![latent correspondence](figures/{paths[1].name})",
        "",
        "Data points coloured by their position (hue: angle, saturation/lightness: radius), and where their "
        "posterior means land in z-space, for the VAE and the IWAE (the paper's Fig. 1b/3b).",
        "",
    ]))
    log(f"wrote {doc.relative_to(ROOT)}, " + ", ".join(str(q.relative_to(ROOT)) for q in paths))


if __name__ == "__main__":
    main()
