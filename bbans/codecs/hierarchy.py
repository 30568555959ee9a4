# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""A codec over several latent layers coded one after another, each under a distribution that depends on the
layers coded before it: the building block of hierarchical bits-back (one codec for the whole posterior
q(z_1..L | x), one for the whole prior p(z_1..L)).

Latents of all layers travel as one int array (B, sum of layer sizes), layer ``i`` in columns
``offsets[i]:offsets[i+1]``, so the chain (bbans/bitsback/chain.py) and Monte-Carlo bits-back
(bbans/bitsback/importance.py) code a hierarchical model exactly like a one-layer one. What differs between
posterior and prior is only the *order* in which the layers are popped and what each layer's distribution is
conditioned on:

- a bottom-up posterior pops z_1 ~ q(z_1 | x), then z_2 ~ q(z_2 | z_1), ...: ``order = [0, 1, ..., L-1]``;
- a top-down prior pops z_L ~ p(z_L), then z_(L-1) ~ p(z_(L-1) | z_L), ...: ``order = [L-1, ..., 0]``.

``pop`` runs the layers in ``order``; ``push`` runs the mirror image (the last-popped layer is pushed first), so a
push followed by a pop, or a pop followed by a push, restores the stack. So the bits-back chain's three steps
(pop the posterior, push the likelihood, push the prior) pop every layer's posterior and push every layer's
conditional prior, as hierarchical bits-back requires, for any number of layers.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .basic import Codec
from ..errors import BBANSError


class LayeredLatents(Codec):
    """Codec over int latents (B, sum(sizes)) made of layers coded in ``order``.

    ``layer_codec(i, known)`` returns the codec of layer ``i`` (over (B, sizes[i]) ints) given ``known``, a dict
    {layer index: int array (B, sizes[j])} holding exactly the layers that precede ``i`` in ``order``. It must
    return the same distribution whether called while pushing or popping (bits-back needs bit-identical codecs).
    """

    def __init__(self, batch: int, sizes: list[int], order: list[int], layer_codec: Callable[[int, dict], Codec]):
        if sorted(order) != list(range(len(sizes))):
            raise BBANSError(f"layer order {order} is not a permutation of the {len(sizes)} layers")
        self.sizes, self.order, self._layer_codec = [int(s) for s in sizes], list(order), layer_codec
        self.offsets = np.cumsum([0, *self.sizes])
        self.shape = (int(batch), int(self.offsets[-1]))

    def _split(self, symbols) -> dict:
        z = np.asarray(symbols)
        if z.shape != self.shape:
            raise BBANSError(f"codec expected latents of shape {self.shape}, got {z.shape}")
        return {i: z[:, self.offsets[i]:self.offsets[i + 1]] for i in range(len(self.sizes))}

    def _codecs_in_order(self, layers: dict):
        """(layer index, its codec) in pop order, for latents that are all known."""
        return [(i, self._layer_codec(i, {j: layers[j] for j in self.order[:pos]}))
                for pos, i in enumerate(self.order)]

    def push(self, coder, symbols) -> None:
        layers = self._split(symbols)
        for i, codec in reversed(self._codecs_in_order(layers)):
            codec.push(coder, layers[i])

    def _pop(self, coder, weigh: bool):
        known, costs = {}, {}
        for i in self.order:
            codec = self._layer_codec(i, dict(known))
            if weigh:
                z, cost = codec.pop_with_cost(coder)
                costs[i] = np.asarray(cost, np.int64).reshape(self.shape[0], self.sizes[i])
            else:
                z = codec.pop(coder)
            known[i] = np.asarray(z, np.int32).reshape(self.shape[0], self.sizes[i])
        z = np.concatenate([known[i] for i in range(len(self.sizes))], axis=1)
        if not weigh:
            return z
        return z, np.concatenate([costs[i] for i in range(len(self.sizes))], axis=1)

    def pop(self, coder) -> np.ndarray:
        return self._pop(coder, weigh=False)

    def pop_with_cost(self, coder):
        """Pop latents and their ``cost``: (int32, int64), each (B, sum(sizes))."""
        return self._pop(coder, weigh=True)

    def cost(self, symbols) -> np.ndarray:
        layers = self._split(symbols)
        cost = {i: np.asarray(codec.cost(layers[i]), np.int64).reshape(self.shape[0], self.sizes[i])
                for i, codec in self._codecs_in_order(layers)}
        return np.concatenate([cost[i] for i in range(len(self.sizes))], axis=1)
