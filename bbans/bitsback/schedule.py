"""Initial bits and the batch schedule of the bits-back chain (DESIGN.md §2 "Initial bits").

The first posterior pop of a bits-back chain needs bits on the stack that nobody pushed. We seed the stack with a
fixed pseudo-random word sequence that the decoder regenerates, and grow the batch size from 1 so that each batch's
pops are covered by bits already on the stack (so the posterior pops are true samples and the rate tracks -ELBO).

- ``seed_words(n)``: n uint32 words from splitmix64 (our own generator: the stream must never depend on a numpy
  Generator version). The last word (the stack top) has its high bit set so constriction accepts it as a stack.
- Known-seed trick: constriction keeps the stack *bottom* at the start of ``get_compressed()``. Pops only eat the
  top of the seed, so the final stack starts with an untouched prefix of the seed. ``strip_seed`` removes it (the
  archive stores only its length); the decoder prepends the regenerated prefix. After decoding everything the
  decoder's stack must be exactly the seed again, a strong integrity check.
- Batch sizes are chosen adaptively by the encoder (``next_batch_size``) and stored run-length encoded as
  (size, repeat) pairs (``run_lengths`` / ``expand``). Only the first batch feeds on the seed; later batches are
  sized to the bits pushed above the lowest level reached so far, so the seed's consumed part, the initial-bits
  overhead, is about one item's posterior information rounded up to whole words (DESIGN.md's target).

Units: bits throughout (never nats); "per item" means per data item (one image).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ArchiveError

WORD_BITS = 32
RESERVE_BITS = 64  # bits left on the stack under every batch's pops (constriction's 64-bit head)
SAFETY = 1.25  # measured pop cost per item is multiplied by this when sizing the next batch
DEFAULT_LATENT_BINS = 2 ** 12
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
    """Upper estimate of the bits the posterior pop of ONE item takes: latent_size * ceil(log2(latent bins))."""
    bins = int(getattr(model, "coder_settings", {}).get("latent_bins", DEFAULT_LATENT_BINS))
    return int(model.latent_size) * max(1, math.ceil(math.log2(max(bins, 2))))


def seed_length(model) -> int:
    """Words of seed for a model: enough to cover the first (one-item) batch's pop plus ``RESERVE_BITS``."""
    return -(-(first_pop_bits(model) + RESERVE_BITS) // WORD_BITS)


def next_batch_size(available_bits: float, pop_bits_per_item: float, remaining: int, batch_size: int) -> int:
    """Size of the next batch: as many items as ``available_bits`` can feed (with ``SAFETY`` margin), in
    1..min(batch_size, remaining).

    ``available_bits``: bits the next pops may take (see ``encode`` in bbans/chain.py: the seed less
    ``RESERVE_BITS`` for the first batch, then the bits above the lowest level any earlier pop reached, so later
    batches live on pushed data and leave the rest of the seed untouched); ``pop_bits_per_item``: the measured
    posterior pop cost per item (bits) of the previous batch.
    """
    per_item = max(float(pop_bits_per_item), 1.0) * SAFETY
    fed = int(available_bits // per_item) if available_bits > 0 else 0
    return min(batch_size, remaining, max(1, fed))


def run_lengths(sizes: list) -> list[tuple]:
    """Run-length encode batch sizes: [1, 2, 5, 5, 5] -> [(1, 1), (2, 1), (5, 3)].

    With particles each batch is a (size, particles) pair and each run a (size, particles, repeat) triple:
    [(1, 1), (2, 4), (2, 4)] -> [(1, 1, 1), (2, 4, 2)].
    """
    runs: list[list] = []
    for s in sizes:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return [(*s, r) if isinstance(s, tuple) else (int(s), r) for s, r in runs]


def expand(pairs, n_items: int) -> list:
    """Batch sizes from (size, repeat) pairs, checked to be positive and to sum to ``n_items``. A size may be a
    (size, particles) pair; it is returned as given."""
    total = 0
    for size, repeat in pairs:
        items = size[0] if isinstance(size, tuple) else size
        if items < 1 or repeat < 1:
            raise ArchiveError("the archive's batch schedule has an empty batch; the archive is corrupt")
        total += items * repeat
        if total > n_items:
            break
    if total != n_items:
        raise ArchiveError(
            f"the archive's batch schedule covers {total} items but the archive holds {n_items}; the archive is corrupt"
        )
    return [size for size, repeat in pairs for _ in range(repeat)]


PARTICLE_ROWS = 1024  # with particles, a batch's model calls hold at most this many (item, particle) rows


def next_particle_batch(available_bits: float, pop_bits_per_particle: float, remaining: int, batch_size: int,
                        particles: int) -> tuple[int, int]:
    """(items, particles) of the next Monte-Carlo bits-back batch (bbans/importance.py).

    Each particle of each item pops about ``pop_bits_per_particle`` bits (measured on the previous batch). The
    particle count grows first -- through powers of two up to ``particles``, so the schedule stays short -- and the
    item count after it, both limited by the bits ``available_bits`` can feed (with the ``SAFETY`` margin); items
    also by ``batch_size`` and by ``PARTICLE_ROWS`` rows per model call.
    """
    per = max(float(pop_bits_per_particle), 1.0) * SAFETY
    fed = int(available_bits // per) if available_bits > 0 else 0
    k = particles if fed >= particles else max(1, 1 << (max(fed, 1).bit_length() - 1))
    n = min(remaining, batch_size, max(1, PARTICLE_ROWS // k), max(1, fed // k))
    return n, k


def expand_particles(triples, n_items: int, max_particles: int) -> list[tuple[int, int]]:
    """(size, particles) per batch from (size, particles, repeat) triples, checked like ``expand`` and against
    the ``PARTICLE_ROWS`` limit the encoder keeps (so a hostile archive cannot make the decoder allocate more)."""
    for size, k, _ in triples:
        if not 1 <= k <= max_particles:
            raise ArchiveError(f"the archive's batch schedule uses {k} particles, outside 1..{max_particles}; "
                               "the archive is corrupt")
        if k > 1 and size * k > max(PARTICLE_ROWS, k):  # the encoder never writes such a batch: refuse to allocate it
            raise ArchiveError(f"the archive's batch schedule has a batch of {size} items x {k} particles, more than "
                               f"any bbans writes ({PARTICLE_ROWS} rows); the archive is corrupt")
    sizes = expand([((size, k), repeat) for size, k, repeat in triples], n_items)
    return list(sizes)


def strip_seed(words: np.ndarray, seed: np.ndarray) -> tuple[int, np.ndarray]:
    """Split the final stack into (length of its longest common prefix with ``seed``, the words after it)."""
    m = min(len(words), len(seed))
    differ = np.flatnonzero(words[:m] != seed[:m])
    prefix = int(differ[0]) if differ.size else m
    return prefix, words[prefix:]
