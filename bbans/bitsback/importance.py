# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Monte-Carlo bits-back with importance sampling (BB-IS; Ruan et al., ICML 2021), one batch at a time.

Standard bits-back (chain.py) pays -log2 of w = p(x, z) / q(z|x) for one posterior sample z: the -ELBO on
average. With K particles the code pays the K-sample importance estimate instead::

    rate(x) = -log2( (1/K) * sum_k w_k ),   w_k = p(x | z_k) p(z_k) / q(z_k | x)

whose average over q is the IWAE-K bound, below the -ELBO and approaching -log2 p(x) as K grows.

Derivation. Extend the latent space to (z_1..z_K, j). The encoder's proposal and the target are::

    Q(z_1..K, j | x) = prod_k q(z_k|x) * wbar_j,        wbar_j = w_j / sum_k w_k
    P(x, z_1..K, j)  = (1/K) * p(x, z_j) * prod_{k != j} q(z_k|x)

Bits-back under this pair costs log2 Q - log2 P per item; every q(z_k|x) with k != j cancels, so
Q/P = K wbar_j q(z_j|x) / p(x, z_j) = K wbar_j / w_j = K / sum_k w_k, i.e. the cost is -log2 of the importance
estimate. The stack operations
(encoder left to right; the decoder runs the mirror image, right to left)::

    push:  z_1..z_K = q(z|x).pop K times;  j = Categorical(wbar).pop
           q(z|x).push z_k for k != j;  p(x|z_j).push x;  p(z).push z_j;  Uniform(K).push j
    pop:   j = Uniform(K).pop;  z_j = p(z).pop;  x = p(x|z_j).pop;  z_k = q(z|x).pop for k != j
           (now every z_k and x are known: recompute wbar)  Categorical(wbar).push j;  q(z|x).push z_K..z_1

The pushes add log2 K + c_p(z_j) + c_x(z_j) + sum_{k != j} c_q(z_k) bits and the pops take sum_k c_q(z_k) -
log2 wbar_j back (c = -log2 probability), a net of -log2((1/K) sum_k w_k): exactly the importance estimate, for
every realization and not only on average. ``particle_costs`` computes the -log2 w_k that the code uses, so
tests compare the stack's growth with it.

Determinism: the decoder must rebuild *the same* categorical wbar. The weights are computed from the codecs'
integer tables with integer fixed-point logs (``Codec.cost``, ``bbans.codecs.fixedlog``), never with float
log/exp, so they are identical on every machine. With K = 1 every step above reduces to standard bits-back.
"""
from __future__ import annotations

import numpy as np

from ..codecs import fixedlog

from . import bounds
from ..codecs.basic import Categorical, Uniform
from ..errors import BBANSError


def _item_sum(cost: np.ndarray, n_items: int) -> np.ndarray:
    """Sum fixed-point costs over everything but the leading item axis: int64 (n_items,)."""
    return np.asarray(cost, np.int64).reshape(n_items, -1).sum(axis=1)


def particle_costs(model, x: np.ndarray, z: np.ndarray, q_costs: np.ndarray) -> np.ndarray:
    """-log2 w_k = c_x + c_p - c_q for K particles per item, in 2^-20 bits: int64 (n, K).

    ``x``: uint8 (n, *data_shape); ``z``: int latents (K, n, latent_size) (particle-major); ``q_costs``: int64
    (K, n), each particle's -log2 q(z_k|x) summed over its latents.
    """
    k, n = z.shape[0], len(x)
    flat = z.reshape(k * n, -1)
    x_rep = np.broadcast_to(x, (k, *x.shape)).reshape(k * n, *x.shape[1:])
    c_x = _item_sum(model.likelihood_codec(flat).cost(x_rep), k * n).reshape(k, n)
    c_p = _item_sum(model.prior_codec(k * n).cost(flat), k * n).reshape(k, n)
    return (c_x + c_p - q_costs).T


def selection_weights(costs: np.ndarray) -> np.ndarray:
    """Integer weights proportional to w_k = 2^-cost_k per item: int64 (n, K) in 0..2^22, the largest 2^22."""
    return fixedlog.exp2_neg_fixed(costs - costs.min(axis=1, keepdims=True))


def _others_mask(n: int, k: int, j: np.ndarray) -> np.ndarray:
    mask = np.ones((n, k), bool)
    mask[np.arange(n), j] = False
    return mask


def push_batch(model, coder, x: np.ndarray, k: int) -> int:
    """Push one batch ``x`` (uint8, (n, *data_shape)) with ``k`` >= 2 particles; returns the bits its pops took
    off the stack (for sizing the next batch)."""
    n = len(x)
    before = coder.num_valid_bits()
    q = model.posterior_codec(x)
    popped = [q.pop_with_cost(coder) for _ in range(k)]
    z = np.stack([np.asarray(p[0]).reshape(n, -1) for p in popped])            # (k, n, L)
    q_costs = np.stack([_item_sum(p[1], n) for p in popped])                   # (k, n)
    weights = selection_weights(particle_costs(model, x, z, q_costs))
    j = Categorical(weights.astype(np.float32)).pop(coder).astype(np.int64)    # (n,)
    got_back = before - coder.num_valid_bits()
    bounds.check_pop_left_bits(coder)
    by_item = z.transpose(1, 0, 2)                                             # (n, k, L)
    others = by_item[_others_mask(n, k, j)].reshape(n, k - 1, -1)
    latent_shape = np.shape(popped[0][0])
    for r in reversed(range(k - 1)):
        q.push(coder, others[:, r].reshape(latent_shape))
    chosen = by_item[np.arange(n), j].reshape(latent_shape)
    model.likelihood_codec(chosen).push(coder, x)
    model.prior_codec(n).push(coder, chosen)
    Uniform(k, (n,)).push(coder, j)
    return got_back


def pop_batch(model, coder, n: int, k: int) -> np.ndarray:
    """Pop one batch of ``n`` items coded with ``k`` >= 2 particles: the inverse of ``push_batch``; uint8."""
    j = Uniform(k, (n,)).pop(coder).astype(np.int64)
    chosen = model.prior_codec(n).pop(coder)
    x = bounds.check_decoded_items(coder, model.likelihood_codec(chosen).pop(coder))
    q = model.posterior_codec(x)
    others = np.stack([np.asarray(q.pop(coder)).reshape(n, -1) for _ in range(k - 1)], axis=1)  # (n, k-1, L)
    by_item = np.empty((n, k, others.shape[2]), np.int64)
    by_item[np.arange(n), j] = np.asarray(chosen).reshape(n, -1)
    by_item[_others_mask(n, k, j)] = others.reshape(-1, others.shape[2])
    latent_shape = np.shape(chosen)
    z = by_item.transpose(1, 0, 2)
    q_costs = np.stack([_item_sum(q.cost(z[i].reshape(latent_shape)), n) for i in range(k)])
    weights = selection_weights(particle_costs(model, x, z, q_costs))
    Categorical(weights.astype(np.float32)).push(coder, j)
    for i in reversed(range(k)):
        q.push(coder, z[i].reshape(latent_shape))
    return x


def check_model(model) -> None:
    """BBANSError unless ``model``'s codecs can weigh particles (integer-exact ``cost``)."""
    probe = np.zeros((1, *model.data_shape), np.uint8) + np.uint8(model.value_range[0])
    try:
        q = model.posterior_codec(probe)
        z = q.pop(_probe_coder())
        q.cost(z)
        model.prior_codec(1).cost(z)
        model.likelihood_codec(z).cost(probe)
    except BBANSError as exc:
        raise BBANSError(f"model {getattr(model, 'name', '?')!r} cannot use particles > 1: {exc}") from None


def _probe_coder():
    import constriction

    return constriction.stream.stack.AnsCoder(np.full(64, 0x9E3779B9, np.uint32))
