# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""The bits-back chain (BB-ANS; Townsend et al., "Practical lossless compression with latent variables using bits
back coding", ICLR 2019) over one constriction ``AnsCoder`` stack, for any ``LatentModel`` (protocol.py).

One batch X (uint8, shape (n, *data_shape)) is coded as::

    push:  z = q(z|X).pop;   p(x|z).push(X);   p(z).push(z)
    pop:   z = p(z).pop;     X = p(x|z).pop;   q(z|X).push(z)

Batches are pushed in order and popped in reverse. The net cost of a batch is its -ELBO in bits (summed over its
items), because the posterior pop takes bits *back* off the stack. Seeding and batch sizes: schedule.py.

With K > 1 particles a batch is coded with Monte-Carlo bits-back instead (importance.py), which costs the K-sample
importance estimate rather than the -ELBO. The particle count ramps up with the bits on the stack (the first batch
uses one), so the initial-bits overhead stays that of one item's single posterior pop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import constriction

from ..errors import ArchiveError
from . import bounds, importance, schedule
from .protocol import LatentModel

AnsCoder = constriction.stream.stack.AnsCoder


def push_batch(model: LatentModel, coder, x: np.ndarray, particles: int = 1) -> int:
    """Push one batch ``x`` (uint8, (n, *data_shape), C-contiguous) onto ``coder`` with bits back, using
    ``particles`` particles per item. Returns the bits the posterior pops took off the stack (the bits got back),
    for sizing the next batch."""
    if particles > 1:
        return importance.push_batch(model, coder, x, particles)
    before = coder.num_valid_bits()
    z = model.posterior_codec(x).pop(coder)          # z ~ q(z|x): these bits come back off the stack
    got_back = before - coder.num_valid_bits()
    bounds.check_pop_left_bits(coder)
    model.likelihood_codec(z).push(coder, x)         # x under p(x|z)
    model.prior_codec(len(x)).push(coder, z)         # z under p(z)
    return got_back


def pop_batch(model: LatentModel, coder, n: int, particles: int = 1) -> np.ndarray:
    """Pop one batch of ``n`` items off ``coder``: the inverse of ``push_batch``; returns uint8 (n, *data_shape)."""
    if particles > 1:
        return importance.pop_batch(model, coder, n, particles)
    z = model.prior_codec(n).pop(coder)              # z under p(z)
    x = bounds.check_decoded_items(coder, model.likelihood_codec(z).pop(coder))   # x under p(x|z)
    model.posterior_codec(x).push(coder, z)          # z back under q(z|x): the bits the encoder got back
    return x


@dataclass
class Encoded:
    """A coded chain. ``payload``: uint32 words of the final stack above the stripped seed prefix (bottom first)."""

    payload: np.ndarray
    seed_words: int  # words of seed the stack started from
    prefix_words: int  # untouched seed words stripped from the stack bottom (the decoder regenerates them)
    schedule: list  # (items, particles, repeat) runs in encoding order (schedule.run_lengths)
    particles: int = 1  # the most particles any batch may use (1: standard bits-back)

    @property
    def initial_bits(self) -> int:
        """Overhead of the initial bits, in bits: seed words consumed by pops and so stored in the payload."""
        return schedule.WORD_BITS * (self.seed_words - self.prefix_words)


def encode(model: LatentModel, data: np.ndarray, batch_size: int, progress=None, particles: int = 1) -> Encoded:
    """Code ``data`` (uint8, (N, *data_shape), C-contiguous) in growing batches of at most ``batch_size`` items,
    with up to ``particles`` importance-sampled particles per item (1: standard bits-back).
    ``progress(done_items, total_items)`` is called after each batch."""
    n_seed = schedule.seed_length(model)
    seed = schedule.seed_words(n_seed)
    coder = AnsCoder(seed.copy())
    pop_bits, batches, done, total = float(schedule.first_pop_bits(model)), [], 0, len(data)
    low = schedule.RESERVE_BITS  # the first batch may pop the seed down to the reserve
    while done < total:
        level = coder.num_valid_bits()
        batch = schedule.next_batch(level - low, pop_bits, total - done, batch_size, particles)
        got_back = push_batch(model, coder, data[done:done + batch.items], batch.particles)
        batches.append(batch)
        low = level - got_back if len(batches) == 1 else min(low, level - got_back)  # lowest level a pop reached
        pop_bits = got_back / (batch.items * batch.particles)
        done += batch.items
        if progress is not None:
            progress(done, total)
    prefix, payload = schedule.strip_seed(coder.get_compressed(), seed)
    return Encoded(np.ascontiguousarray(payload, np.uint32), n_seed, prefix, schedule.run_lengths(batches), particles)


def decode(model: LatentModel, enc: Encoded, n_items: int, progress=None) -> np.ndarray:
    """Invert ``encode``: returns uint8 (n_items, *data_shape); raises ArchiveError if the stack ends off the seed."""
    batches = schedule.expand(enc.schedule, n_items, enc.particles)
    if not 0 <= enc.prefix_words <= enc.seed_words:
        raise ArchiveError("the archive strips more seed words than it seeded; the archive is corrupt")
    seed = schedule.seed_words(enc.seed_words)
    payload = np.asarray(enc.payload, np.uint32)
    words = np.concatenate([seed[: enc.prefix_words], payload])
    if words.size and words[-1] == 0:
        raise ArchiveError("the coded stream ends in a zero word, which no encoder writes; the archive is corrupt")
    if not bounds.plausible_item_count(n_items, payload.size):
        raise ArchiveError(f"the archive claims {n_items} items but holds only {payload.size} coded words, less "
                           "than any model needs for them; the archive is corrupt")
    coder = AnsCoder(words)
    out = np.empty((n_items, *model.data_shape), np.uint8)
    end = n_items
    for batch in reversed(batches):
        n = batch.items
        if n > 8 * coder.num_valid_bits() + 64:  # every item's pushes cost well over 1/8 bit (its latent prior)
            raise ArchiveError(f"the archive claims a batch of {n} items where only {coder.num_valid_bits()} coded "
                               "bits remain; the archive is corrupt")
        out[end - n:end] = pop_batch(model, coder, n, batch.particles)
        end -= n
        if progress is not None:
            progress(n_items - end, n_items)
    if not np.array_equal(coder.get_compressed(), seed):
        raise ArchiveError(
            "the decoder did not return to its starting seed, so the data cannot be trusted; the archive is corrupt "
            "or the model computes differently on this machine"
        )
    return out
