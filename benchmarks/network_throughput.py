"""How fast the shipped models' integer-exact networks run, against what this CPU's float32 kernels can do at best.

For each model: the multiply-adds per item of every coding network (``enc`` q(z1|x), ``dec`` z1 -> pixels, and for
two latent layers ``up`` / ``down``), counted from the layer shapes; the wall seconds to run each over N test items in
batches of B (as the chain calls them), and the rate in GMAC/s. Then the same CPU's rate on a large float32 matrix
product (torch.mm, 2048 x 2048), the practical ceiling of its kernels. Bits-back runs every network once per item in
each direction, so ``MACs per item x N / ceiling`` is the least time the networks can take: a speed target below it
needs a smaller model, not faster code (docs/design.md, "Speed").

    python benchmarks/network_throughput.py --models binarized-mnist-small --items 10000 --threads 1

Units: MACs (multiply-adds) per item; seconds for N items; GMAC/s = 1e9 MACs per second.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bbans.container.registry import load_model
from bbans_models.datasets import load_dataset, recipe_splits


def layer_macs(layers, shape: tuple) -> tuple[int, tuple]:
    """Multiply-adds of integer layers (models/integer_net.py ``IntLayer``) on one input of ``shape`` (C, H, W),
    and the output shape."""
    c, h, w = shape
    total = 0
    for layer in layers:
        k = layer.weight.shape[-1]
        if layer.op == "conv":
            c_out = layer.weight.shape[0]
            h = (h + 2 * layer.padding - k) // layer.stride + 1
            w = (w + 2 * layer.padding - k) // layer.stride + 1
            total += c_out * h * w * c * k * k
        else:  # transposed: every input position scatters k x k taps to each output channel
            c_out = layer.weight.shape[1]
            total += c * h * w * c_out * k * k
            h = (h - 1) * layer.stride - 2 * layer.padding + k
            w = (w - 1) * layer.stride - 2 * layer.padding + k
        c = c_out
    return int(total), (c, h, w)


def matmul_gflops(seconds: float = 2.0) -> float:
    """GFLOP/s of float32 torch.mm on 2048 x 2048 matrices with the current thread count (2 FLOPs per MAC)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    return n * 2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9


def model_rows(name: str, items: int, batch: int) -> list[tuple]:
    model = load_model(name)
    x = np.ascontiguousarray(load_dataset(recipe_splits(name)[1])[:items])
    inputs = {"enc": model._net_input(x)}
    inputs["dec"] = np.zeros((items, *model.latent_shape), np.int64)
    if "up" in model.int_layers:
        inputs["up"] = inputs["dec"]
        inputs["down"] = np.zeros((items, *model.top_latent_shape), np.int64)
    rows = []
    for part, layers in model.int_layers.items():
        inp = inputs[part]
        macs, _ = layer_macs(layers, tuple(inp.shape[1:]))
        net = model._nets[part]
        net(inp[:batch])  # warm the kernels
        t0 = time.perf_counter()
        for i in range(0, items, batch):
            net(inp[i:i + batch])
        rows.append((name, part, macs, time.perf_counter() - t0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["binarized-mnist-small", "mnist-small", "binarized-mnist", "mnist"])
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100, help="items per network call [100: the chain's batch size]")
    ap.add_argument("--threads", type=int, default=1, help="torch threads [1]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ceiling = matmul_gflops() / 2  # GMAC/s
    print(f"float32 matrix product (2048 x 2048), {args.threads} thread(s): {ceiling:.1f} GMAC/s\n")
    print(f"| model | network | MACs per item | s for {args.items:,} items | GMAC/s | s at the matmul rate |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        rows = model_rows(name, args.items, args.batch)
        for model, part, macs, s in rows:
            print(f"| {model} | {part} | {macs:,} | {s:.2f} | {macs * args.items / s / 1e9:.1f} | "
                  f"{macs * args.items / ceiling / 1e9:.2f} |", flush=True)
        macs = sum(r[2] for r in rows)
        s = sum(r[3] for r in rows)
        print(f"| {name} | **all (once per item per direction)** | {macs:,} | {s:.2f} | "
              f"{macs * args.items / s / 1e9:.1f} | {macs * args.items / ceiling / 1e9:.2f} |", flush=True)


if __name__ == "__main__":
    main()
