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
uses one).

Initial bits (docs/design.md, "Initial bits and the schedule"). The first posterior pop needs bits on the stack
that nobody pushed. Two chains exist:

- ``encode`` / the data seed (archive format 2): the first ``seed_items`` items are pushed *without* bits back,
  under the likelihood at the all-zero latent, p(x | z = 0) (``seed_codec``), onto an empty stack; the bits-back
  batches of the rest pop from those bits, which carry data. The seed items cost -log2 p(x | 0) each instead of
  their -ELBO, so the chain seeds with as few of them as cover the first pop. Decoding ends on an empty stack.
- ``encode_random_seed`` / the random seed (format 1, kept so old archives decode and for ``--format-version 1``):
  a fixed pseudo-random seed (schedule.seed_words) whose consumed part the archive stores as overhead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import constriction

from ..errors import ArchiveError, ModelError
from . import bounds, importance, schedule
from .protocol import LatentModel

AnsCoder = constriction.stream.stack.AnsCoder


def items(model: LatentModel, start: int, stop: int) -> LatentModel:
    """The model that codes items ``start``..``stop``-1 of a chain: ``model.for_items(start, stop)`` for a model
    whose codecs depend on which items they code (``protocol.ItemDependent``: the tiles of a photo, whose edge
    tiles leave the pixels outside the image uncoded), else ``model`` itself."""
    view = getattr(model, "for_items", None)
    return model if view is None else view(start, stop)


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
    """A coded chain. ``payload``: uint32 words of the final stack (bottom first); with a random seed, above the
    stripped seed prefix. A data-seeded chain has ``seed_items`` (not None) and its batches as a ``ramp``."""

    payload: np.ndarray
    seed_words: int  # words of random seed the stack started from (0 with a data seed)
    prefix_words: int  # untouched seed words stripped from the stack bottom (the decoder regenerates them)
    schedule: list  # (items, particles, repeat) runs of the bits-back batches in encoding order
    particles: int = 1  # the most particles any batch may use (1: standard bits-back)
    seed_items: int | None = None  # data seed: the first items, coded under p(x | z = 0) without bits back
    ramp: schedule.Ramp | None = None  # data seed: the rule that sizes the bits-back batches

    @property
    def initial_bits(self) -> int:
        """Overhead of the initial bits, in bits: random seed words consumed by pops and so stored in the payload
        (0 with a data seed, whose bits are the seed items' own code)."""
        return schedule.WORD_BITS * (self.seed_words - self.prefix_words)


class _StackTooLow(Exception):
    """A bits-back batch of a data-seeded chain would pop the stack to its bottom: code with a more cautious ramp."""


def seed_codec(model: LatentModel, n: int):
    """The data seed's codec: p(x | z = 0) for ``n`` items, the likelihood at the all-zero latent (every latent
    bin index 0, the prior's centre). No bits back, so it needs no bits on the stack."""
    return model.likelihood_codec(np.zeros((n, int(model.latent_size)), np.int32))


TRIAL_ITEMS = 64  # items whose pop and net bits are measured on a scratch stack to set the ramp


def _trial(model: LatentModel, data: np.ndarray) -> tuple[float, float]:
    """(posterior pop bits, net bits) per item, the mean over up to ``TRIAL_ITEMS`` items coded with bits back on
    a scratch stack (its randomness is the fixed seed, so the result is too)."""
    x = data[: min(len(data), TRIAL_ITEMS)]
    scratch = AnsCoder(schedule.seed_words(schedule.seed_length(model) * len(x) + 64))
    before = scratch.num_valid_bits()
    got_back = push_batch(items(model, 0, len(x)), scratch, x)
    return got_back / len(x), (scratch.num_valid_bits() - before) / len(x)


def seed_count(model: LatentModel, data: np.ndarray, need_bits: float) -> int:
    """The fewest leading items whose seed code (``seed_codec``, pushed one by one on a scratch stack) holds
    ``need_bits`` bits; len(data) if all of them hold fewer. Only the encoder counts: the archive stores the count."""
    scratch = AnsCoder()
    for i in range(len(data)):
        seed_codec(items(model, i, i + 1), 1).push(scratch, data[i:i + 1])
        if scratch.num_valid_bits() >= need_bits:
            return i + 1
    return len(data)


def encode(model: LatentModel, data: np.ndarray, batch_size: int, progress=None, particles: int = 1) -> Encoded:
    """Code ``data`` (uint8, (N, *data_shape), C-contiguous) with a data seed: the fewest first items whose
    p(x | z = 0) code covers one posterior pop (``seed_count``), then bits-back batches of at most ``batch_size``
    items and ``particles`` particles sized by a ``schedule.Ramp`` set from a trial on the first items.
    ``progress(done_items, total_items)`` after the seed and after each batch."""
    if len(data) == 0:
        return Encoded(np.zeros(0, np.uint32), 0, 0, [], particles, 0, schedule.Ramp(0, 0, 1, batch_size, particles))
    pop, net = _trial(model, data)
    pop_bits = max(1, math.ceil(pop * schedule.RAMP_POP_MARGIN))
    net_bits = max(0, math.floor(net * schedule.RAMP_NET_FRACTION))
    ceiling = schedule.first_pop_bits(model)  # no item's pop takes more: batches of one under it always fit
    while True:
        seed = seed_count(model, data, pop_bits + schedule.RESERVE_BITS)
        try:
            return _encode_data_seeded(model, data, seed, net_bits, pop_bits, batch_size, progress, particles)
        except _StackTooLow:  # some pops came out above the ramp's assumptions: code again, more cautiously
            if pop_bits > ceiling and net_bits == 0:
                raise ModelError("the model's posterior pops took more bits than its latent_size and latent_bins "
                                 "allow; bits-back cannot code this data safely with it") from None
            pop_bits, net_bits = math.ceil(pop_bits * 1.25), net_bits // 2


def _encode_data_seeded(model, data, seed, net_bits, pop_bits, batch_size, progress, particles) -> Encoded:
    coder, total = AnsCoder(), len(data)
    seed_codec(items(model, 0, seed), seed).push(coder, data[:seed])
    if progress is not None:
        progress(seed, total)
    ramp = schedule.Ramp(coder.num_valid_bits(), net_bits, pop_bits, batch_size, particles)
    batches, done = ramp.batches(total - seed), seed
    for batch in batches:
        try:
            push_batch(items(model, done, done + batch.items), coder, data[done:done + batch.items], batch.particles)
        except ModelError:  # bounds.check_pop_left_bits: the pops reached the stack's bottom
            raise _StackTooLow() from None
        done += batch.items
        if progress is not None:
            progress(done, total)
    return Encoded(np.ascontiguousarray(coder.get_compressed(), np.uint32), 0, 0, schedule.run_lengths(batches),
                   particles, seed, ramp)


def encode_random_seed(model: LatentModel, data: np.ndarray, batch_size: int, progress=None,
                       particles: int = 1) -> Encoded:
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
        got_back = push_batch(items(model, done, done + batch.items), coder, data[done:done + batch.items],
                              batch.particles)
        batches.append(batch)
        low = level - got_back if len(batches) == 1 else min(low, level - got_back)  # lowest level a pop reached
        pop_bits = got_back / (batch.items * batch.particles)
        done += batch.items
        if progress is not None:
            progress(done, total)
    prefix, payload = schedule.strip_seed(coder.get_compressed(), seed)
    return Encoded(np.ascontiguousarray(payload, np.uint32), n_seed, prefix, schedule.run_lengths(batches), particles)


def decode(model: LatentModel, enc: Encoded, n_items: int, progress=None) -> np.ndarray:
    """Invert ``encode`` (or ``encode_random_seed`` when ``enc.seed_items`` is None): returns uint8
    (n_items, *data_shape); raises ArchiveError if the stack does not end where the encoder started it."""
    if enc.seed_items is None:
        return _decode_random_seed(model, enc, n_items, progress)
    seed = int(enc.seed_items)
    if not 0 <= seed <= n_items:
        raise ArchiveError(f"the archive claims {seed} seed items of {n_items}; the archive is corrupt")
    words = np.asarray(enc.payload, np.uint32)
    _check_stream(words, words.size, n_items)
    batches = enc.ramp.batches(n_items - seed)  # after the item count is known to be plausible: it bounds the work
    coder = AnsCoder(words)
    out = np.empty((n_items, *model.data_shape), np.uint8)
    end = _pop_batches(model, coder, batches, out, n_items, progress)
    if end != seed:
        raise ArchiveError("the archive's batch schedule does not end at its seed items; the archive is corrupt")
    if seed:
        x = seed_codec(items(model, 0, seed), seed).pop(coder)
        if int(np.min(x)) < 0 or int(np.max(x)) > 255:
            raise ArchiveError("the decoded values do not fit uint8; the archive is corrupt or the model is wrong")
        out[:seed] = x
        if progress is not None:
            progress(n_items, n_items)
    if not coder.is_empty():
        raise ArchiveError(
            "the decoder did not end on an empty stack, so the data cannot be trusted; the archive is corrupt or the "
            "model computes differently on this machine")
    return out


def _check_stream(words: np.ndarray, payload_words: int, n_items: int) -> None:
    """ArchiveError unless the stack ``words`` ends in a non-zero word (as every encoder leaves it) and the
    archive's ``payload_words`` coded words can plausibly hold ``n_items`` items (which bounds the decoder's work)."""
    if words.size and words[-1] == 0:
        raise ArchiveError("the coded stream ends in a zero word, which no encoder writes; the archive is corrupt")
    if not bounds.plausible_item_count(n_items, payload_words):
        raise ArchiveError(f"the archive claims {n_items} items but holds only {payload_words} coded words, less "
                           "than any model needs for them; the archive is corrupt")


def _pop_batches(model, coder, batches, out, n_items, progress) -> int:
    """Pop ``batches`` in reverse into ``out`` (the last one ends at item ``n_items``); returns where they begin."""
    end = n_items
    for batch in reversed(batches):
        n = batch.items
        if n > 8 * coder.num_valid_bits() + 64:  # every item's pushes cost well over 1/8 bit (its latent prior)
            raise ArchiveError(f"the archive claims a batch of {n} items where only {coder.num_valid_bits()} coded "
                               "bits remain; the archive is corrupt")
        out[end - n:end] = pop_batch(items(model, end - n, end), coder, n, batch.particles)
        end -= n
        if progress is not None:
            progress(n_items - end, n_items)
    return end


def _decode_random_seed(model: LatentModel, enc: Encoded, n_items: int, progress=None) -> np.ndarray:
    batches = schedule.expand(enc.schedule, n_items, enc.particles)
    if not 0 <= enc.prefix_words <= enc.seed_words:
        raise ArchiveError("the archive strips more seed words than it seeded; the archive is corrupt")
    seed = schedule.seed_words(enc.seed_words)
    payload = np.asarray(enc.payload, np.uint32)
    words = np.concatenate([seed[: enc.prefix_words], payload])
    _check_stream(words, payload.size, n_items)
    coder = AnsCoder(words)
    out = np.empty((n_items, *model.data_shape), np.uint8)
    _pop_batches(model, coder, batches, out, n_items, progress)
    if not np.array_equal(coder.get_compressed(), seed):
        raise ArchiveError(
            "the decoder did not return to its starting seed, so the data cannot be trusted; the archive is corrupt "
            "or the model computes differently on this machine"
        )
    return out
