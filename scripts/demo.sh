#!/usr/bin/env bash
# The main job on a fresh machine: install, then compress and decompress a bundled sample of 100 MNIST test
# digits with the bundled model, printing bits/dim beside the model's -ELBO, and check the round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp samples/mnist-test-100.npy "$work/digits.npy"
bbans compress "$work/digits.npy"
bbans decompress "$work/digits.npy.bba" -o "$work/restored.npy"
cmp "$work/digits.npy" "$work/restored.npy" && echo "round trip: byte-identical"
