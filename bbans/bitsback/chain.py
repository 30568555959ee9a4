"""The bits-back chain (BB-ANS) over one constriction ``AnsCoder`` stack, for any model of bbans/protocol.py.

One batch X (uint8, shape (n, *data_shape)) is coded as::

    push:  z = q(z|X).pop;   p(x|z).push(X);   p(z).push(z)
    pop:   z = p(z).pop;     X = p(x|z).pop;   q(z|X).push(z)

Batches are pushed in order and popped in reverse. The net cost of a batch is its -ELBO in bits (summed over its
items), because the posterior pop takes bits *back* off the stack. Seeding and batch sizes: bbans/schedule.py.

With ``particles`` K > 1 the batches are coded with Monte-Carlo bits-back (bbans/importance.py), which costs the
K-sample importance estimate instead of the -ELBO. The particle count ramps up with the bits on the stack (the
first batch uses one), so the initial-bits overhead stays that of one item's single posterior pop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import constriction

from . import importance

from . import schedule
from ..errors import ArchiveError, ModelError

AnsCoder = constriction.stream.stack.AnsCoder
# A decoder refuses archives claiming more items than this many per coded bit: bits-back costs each item its -ELBO,
# above one bit for any real model (shipped ones: over 100 bits). Bounds a hostile archive's decoding work and
# memory by its size, since a stack popped past its end silently yields zeros forever.
MAX_ITEMS_PER_BIT = 1


def push_batch(model, coder, x: np.ndarray) -> int:
    """Push one batch ``x`` (uint8, (n, *data_shape), C-contiguous) onto ``coder`` with bits back.

    Returns the bits the posterior pop took off the stack (the bits got back), for sizing the next batch.
    """
    before = coder.num_valid_bits()
    z = model.posterior(x).pop(coder)
    got_back = before - coder.num_valid_bits()
    if coder.num_valid_bits() < schedule.WORD_BITS:  # the decoder treats a stack this low as exhausted
        raise ModelError("the model's posterior took more bits than the stack held (its first-pop estimate is too "
                         "low); bits-back cannot code this data safely with it")
    model.likelihood(z).push(coder, x)
    model.prior(len(x)).push(coder, z)
    return got_back


def pop_batch(model, coder, n: int) -> np.ndarray:
    """Pop one batch of ``n`` items off ``coder``: the inverse of ``push_batch``; returns uint8 (n, *data_shape)."""
    z, x = importance.pop_latents_and_items(model, coder, n)
    model.posterior(x).push(coder, z)
    return x


@dataclass
class Encoded:
    """A coded chain. ``payload``: uint32 words of the final stack above the stripped seed prefix (bottom first)."""

    payload: np.ndarray
    seed_words: int  # words of seed the stack started from
    prefix_words: int  # untouched seed words stripped from the stack bottom (the decoder regenerates them)
    schedule: list  # (size, repeat) pairs, or (size, particles, repeat) triples with particles; encoding order
    particles: int = 1  # the most particles any batch may use (1: standard bits-back)

    @property
    def initial_bits(self) -> int:
        """Overhead of the initial bits, in bits: seed words consumed by pops and so stored in the payload."""
        return schedule.WORD_BITS * (self.seed_words - self.prefix_words)


def encode(model, data: np.ndarray, batch_size: int, progress=None, particles: int = 1) -> Encoded:
    """Code ``data`` (uint8, (N, *data_shape), C-contiguous) in growing batches of at most ``batch_size`` items,
    with up to ``particles`` importance-sampled particles per item (1: standard bits-back)."""
    n_seed = schedule.seed_length(model)
    seed = schedule.seed_words(n_seed)
    coder = AnsCoder(seed.copy())
    pop_bits, sizes, done, total = float(schedule.first_pop_bits(model)), [], 0, len(data)
    low = schedule.RESERVE_BITS  # the first batch may pop the seed down to the reserve
    while done < total:
        level = coder.num_valid_bits()
        if particles == 1:
            n, k = schedule.next_batch_size(level - low, pop_bits, total - done, batch_size), 1
            got_back = push_batch(model, coder, data[done : done + n])
            sizes.append(n)
        else:
            n, k = schedule.next_particle_batch(level - low, pop_bits, total - done, batch_size, particles)
            batch = data[done : done + n]
            got_back = (push_batch(model, coder, batch) if k == 1 else importance.push_batch(model, coder, batch, k))
            sizes.append((n, k))
        low = level - got_back if len(sizes) == 1 else min(low, level - got_back)  # lowest level a pop reached
        pop_bits = got_back / (n * k)
        done += n
        if progress is not None:
            progress(done, total)
    prefix, payload = schedule.strip_seed(coder.get_compressed(), seed)
    return Encoded(np.ascontiguousarray(payload, np.uint32), n_seed, prefix, schedule.run_lengths(sizes), particles)


def decode(model, enc: Encoded, n_items: int, progress=None) -> np.ndarray:
    """Invert ``encode``: returns uint8 (n_items, *data_shape); raises ArchiveError if the stack ends off the seed."""
    if enc.particles > 1:
        batches = schedule.expand_particles(enc.schedule, n_items, enc.particles)
    else:
        batches = [(n, 1) for n in schedule.expand(enc.schedule, n_items)]
    if not 0 <= enc.prefix_words <= enc.seed_words:
        raise ArchiveError("the archive strips more seed words than it seeded; the archive is corrupt")
    seed = schedule.seed_words(enc.seed_words)
    words = np.concatenate([seed[: enc.prefix_words], np.asarray(enc.payload, np.uint32)])
    if words.size and words[-1] == 0:
        raise ArchiveError("the coded stream ends in a zero word, which no encoder writes; the archive is corrupt")
    if n_items > MAX_ITEMS_PER_BIT * schedule.WORD_BITS * np.asarray(enc.payload).size + 64:
        raise ArchiveError(f"the archive claims {n_items} items but holds only {np.asarray(enc.payload).size} coded "
                           "words, less than any model needs for them; the archive is corrupt")
    coder = AnsCoder(words)
    out = np.empty((n_items, *model.data_shape), np.uint8)
    end = n_items
    for n, k in reversed(batches):
        if n > 8 * coder.num_valid_bits() + 64:  # every item's pushes cost well over 1/8 bit (its latent prior)
            raise ArchiveError(f"the archive claims a batch of {n} items where only {coder.num_valid_bits()} coded "
                               "bits remain; the archive is corrupt")
        out[end - n : end] = pop_batch(model, coder, n) if k == 1 else importance.pop_batch(model, coder, n, k)
        end -= n
        if progress is not None:
            progress(n_items - end, n_items)
    if not np.array_equal(coder.get_compressed(), seed):
        raise ArchiveError(
            "the decoder did not return to its starting seed, so the data cannot be trusted; the archive is corrupt "
            "or the model computes differently on this machine"
        )
    return out
