# BIT-EXACT: a change here alters archive bytes; tests/test_golden.py must pass, else version it (docs/design.md).
"""Initial bits and the batch schedule of the bits-back chain (docs/design.md, "Initial bits and the schedule").

The first posterior pop of a bits-back chain needs bits on the stack that nobody pushed. We seed the stack with a
fixed pseudo-random word sequence that the decoder regenerates, and grow the batch size from 1 so that each batch's
pops are covered by bits already on the stack (so the posterior pops are true samples and the rate tracks -ELBO).

- ``seed_words(n)``: n uint32 words from splitmix64 (our own generator: the stream must never depend on a numpy
  Generator version). The last word (the stack top) has its high bit set so constriction accepts it as a stack.
- Known-seed trick: constriction keeps the stack *bottom* at the start of ``get_compressed()``. Pops only eat the
  top of the seed, so the final stack starts with an untouched prefix of the seed. ``strip_seed`` removes it (the
  archive stores only its length); the decoder prepends the regenerated prefix. After decoding everything the
  decoder's stack must be exactly the seed again, a strong integrity check.
- Batch sizes are chosen adaptively by the encoder (``next_batch``) and stored run-length encoded as
  (items, particles, repeat) triples (``run_lengths`` / ``expand``). Only the first batch feeds on the seed; later batches are
  sized to the bits pushed above the lowest level reached so far, so the seed's consumed part, the initial-bits
  overhead, is about one item's posterior information rounded up to whole words (the target in docs/design.md).

Units: bits throughout (never nats); "per item" means per data item (one image).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import ArchiveError

WORD_BITS = 32
RESERVE_BITS = 64  # bits left on the stack under every batch's pops (constriction's 64-bit head)
SAFETY = 1.25  # measured pop cost per item is multiplied by this when sizing the next batch
MAX_SEED_WORDS = 2 ** 26  # a decoder refuses to regenerate more (256 MiB)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(n: int, key: int = 0) -> np.ndarray:
    """The first ``n`` outputs of splitmix64 started at state ``key``: uint64 array of shape (n,).

    Vectorized: output i mixes state key + (i+1) * golden (mod 2^64). Arrays wrap silently on overflow.
    """
    i = np.arange(1, n + 1, dtype=np.uint64)
    z = np.uint64(key) + i * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def seed_words(n: int) -> np.ndarray:
    """The fixed seed of ``n`` uint32 words (high halves of splitmix64), stack bottom first, top word's MSB set."""
    if not 0 <= n <= MAX_SEED_WORDS:
        raise ArchiveError(f"the archive asks for {n} seed words, more than any bbans writes; the archive is corrupt")
    words = (splitmix64(n) >> np.uint64(32)).astype(np.uint32)
    if n:
        words[-1] |= np.uint32(0x80000000)
    return words


def first_pop_bits(model) -> int:
    """Upper estimate of the bits the posterior pop of ONE item takes: latent_size * ceil(log2(latent_bins)), from
    the two ``LatentModel`` attributes (protocol.py)."""
    return int(model.latent_size) * max(1, math.ceil(math.log2(max(int(model.latent_bins), 2))))


def seed_length(model) -> int:
    """Words of seed for a model: enough to cover the first (one-item) batch's pop plus ``RESERVE_BITS``."""
    return -(-(first_pop_bits(model) + RESERVE_BITS) // WORD_BITS)


def next_batch_size(available_bits: float, pop_bits_per_item: float, remaining: int, batch_size: int,
                    safety: float = SAFETY) -> int:
    """Size of the next batch: as many items as ``available_bits`` can feed (with ``SAFETY`` margin), in
    1..min(batch_size, remaining).

    ``available_bits``: bits the next pops may take (see ``encode`` in chain.py: the seed less
    ``RESERVE_BITS`` for the first batch, then the bits above the lowest level any earlier pop reached, so later
    batches live on pushed data and leave the rest of the seed untouched); ``pop_bits_per_item``: the measured
    posterior pop cost per item (bits) of the previous batch; ``safety``: the margin it is multiplied by.
    """
    per_item = max(float(pop_bits_per_item), 1.0) * safety
    fed = int(available_bits // per_item) if available_bits > 0 else 0
    return min(batch_size, remaining, max(1, fed))


PARTICLE_ROWS = 1024  # with particles, a batch's model calls hold at most this many (item, particle) rows


def next_particle_batch(available_bits: float, pop_bits_per_particle: float, remaining: int, batch_size: int,
                        particles: int, safety: float = SAFETY) -> tuple[int, int]:
    """(items, particles) of the next Monte-Carlo bits-back batch (importance.py).

    Each particle of each item pops about ``pop_bits_per_particle`` bits (measured on the previous batch). The
    particle count grows first -- through powers of two up to ``particles``, so the schedule stays short -- and the
    item count after it, both limited by the bits ``available_bits`` can feed (with the ``SAFETY`` margin); items
    also by ``batch_size`` and by ``PARTICLE_ROWS`` rows per model call.
    """
    per = max(float(pop_bits_per_particle), 1.0) * safety
    fed = int(available_bits // per) if available_bits > 0 else 0
    k = particles if fed >= particles else max(1, 1 << (max(fed, 1).bit_length() - 1))
    n = min(remaining, batch_size, max(1, PARTICLE_ROWS // k), max(1, fed // k))
    return n, k


class Batch(NamedTuple):
    """One batch of the chain: ``items`` coded with ``particles`` particles each (1: standard bits-back)."""

    items: int
    particles: int = 1


def next_batch(available_bits: float, pop_bits: float, remaining: int, batch_size: int, particles: int,
               safety: float = SAFETY) -> Batch:
    """The next batch: ``next_batch_size`` for standard bits-back (``particles`` 1), else ``next_particle_batch``
    (``pop_bits``: the previous batch's posterior pop cost per item, or per particle with particles)."""
    if particles == 1:
        return Batch(next_batch_size(available_bits, pop_bits, remaining, batch_size, safety), 1)
    return Batch(*next_particle_batch(available_bits, pop_bits, remaining, batch_size, particles, safety))


RAMP_POP_MARGIN = 1.1  # a ramp's pop_bits: the measured mean pop per item (or particle) times this
RAMP_NET_FRACTION = 0.75  # a ramp's net_bits: this fraction of the measured mean net bits per item


class Ramp(NamedTuple):
    """The batch schedule of a data-seeded chain (archive layout 2) as a rule that encoder and decoder both
    evaluate, so the archive stores four numbers instead of the batch list.

    The rule assumes the stack holds ``start_bits`` (the level after the seed items) plus ``net_bits`` for every
    bits-back item coded so far, and sizes each batch with ``next_batch`` to what that level feeds at ``pop_bits``
    per item (or per particle) with no further margin, at most ``batch_size`` items and ``particles`` particles.
    The encoder chooses ``pop_bits`` above and ``net_bits`` below what it measured, and checks every real pop
    (chain.py): when one would reach the stack's bottom it codes again with a more cautious ramp. All in bits.
    """

    start_bits: int
    net_bits: int
    pop_bits: int
    batch_size: int
    particles: int = 1

    def batches(self, n_items: int) -> list[Batch]:
        """The batches of ``n_items`` bits-back items, in encoding order (at most ``n_items`` of them)."""
        out, done = [], 0
        pop = max(int(self.pop_bits), 1)
        while done < n_items:
            level = int(self.start_bits) + int(self.net_bits) * done
            b = next_batch(level - RESERVE_BITS, pop, n_items - done, max(int(self.batch_size), 1),
                           max(int(self.particles), 1), safety=1.0)
            out.append(b)
            done += b.items
        return out


def run_lengths(batches: list[Batch]) -> list[tuple[int, int, int]]:
    """Run-length encode batches as (items, particles, repeat) triples, the one schedule shape:
    [(1, 1), (2, 1), (5, 1), (5, 1)] -> [(1, 1, 1), (2, 1, 1), (5, 1, 2)]."""
    runs: list[list] = []
    for b in batches:
        if runs and runs[-1][:2] == [b.items, b.particles]:
            runs[-1][2] += 1
        else:
            runs.append([int(b.items), int(b.particles), 1])
    return [tuple(r) for r in runs]


def expand(runs, n_items: int, max_particles: int = 1) -> list[Batch]:
    """Batches from (items, particles, repeat) runs, checked: positive counts, particles in 1..``max_particles``,
    no batch over the ``PARTICLE_ROWS`` rows the encoder keeps (so a hostile archive cannot make the decoder
    allocate more), and items summing to ``n_items``."""
    total, out = 0, []
    for items, k, repeat in runs:
        if items < 1 or repeat < 1:
            raise ArchiveError("the archive's batch schedule has an empty batch; the archive is corrupt")
        if not 1 <= k <= max_particles:
            raise ArchiveError(f"the archive's batch schedule uses {k} particles, outside 1..{max_particles}; "
                               "the archive is corrupt")
        if k > 1 and items * k > max(PARTICLE_ROWS, k):
            raise ArchiveError(f"the archive's batch schedule has a batch of {items} items x {k} particles, more "
                               f"than any bbans writes ({PARTICLE_ROWS} rows); the archive is corrupt")
        total += items * repeat
        if total > n_items:
            break
        out.extend([Batch(int(items), int(k))] * int(repeat))
    if total != n_items:
        raise ArchiveError(
            f"the archive's batch schedule covers {total} items but the archive holds {n_items}; the archive is corrupt"
        )
    return out


def strip_seed(words: np.ndarray, seed: np.ndarray) -> tuple[int, np.ndarray]:
    """Split the final stack into (length of its longest common prefix with ``seed``, the words after it)."""
    m = min(len(words), len(seed))
    differ = np.flatnonzero(words[:m] != seed[:m])
    prefix = int(differ[0]) if differ.size else m
    return prefix, words[prefix:]
