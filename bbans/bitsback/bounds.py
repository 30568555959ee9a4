"""The checks that keep a bits-back stack honest, shared by encoder and decoder (and by standard and Monte-Carlo
bits-back): how low a stack may run, and how many items an archive may plausibly claim for its coded bits.

Why they exist (docs/design.md, "Hazards"): a constriction stack popped past its end silently yields zeros
forever, so neither side may let a pop reach the bottom, and a decoder must bound its work by the archive's size
before trusting any count it reads.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchiveError, ModelError
from .schedule import WORD_BITS

# Items per coded bit an archive may claim: bits-back costs each item its -ELBO, above one bit for any real model
# (shipped ones: over 100 bits), so more items than coded bits means a hostile or corrupt archive.
MAX_ITEMS_PER_BIT = 1


def plausible_item_count(n_items: int, payload_words: int) -> bool:
    """True when ``n_items`` items fit in ``payload_words`` 32-bit words at most ``MAX_ITEMS_PER_BIT`` per bit
    (plus a small allowance). The encoder refuses to write an archive its decoder would reject by this bound."""
    return n_items <= MAX_ITEMS_PER_BIT * WORD_BITS * int(payload_words) + 64


def check_pop_left_bits(coder) -> None:
    """After an encoder's posterior pops: ModelError when they took the stack below one word, which the decoder
    would read as exhausted (the model's pops cost more than the schedule provided)."""
    if coder.num_valid_bits() < WORD_BITS:
        raise ModelError("the model's posterior pops took more bits than the stack held (its first-pop estimate is "
                         "too low); bits-back cannot code this data safely with it")


def check_decoded_items(coder, x: np.ndarray) -> np.ndarray:
    """After a decoder's likelihood pop: ArchiveError when the stack ran out (an exhausted stack returns zeros) or
    the values do not fit uint8; returns ``x`` as C-contiguous uint8."""
    if coder.num_valid_bits() < WORD_BITS:
        raise ArchiveError("the coded stream ran out before all its items were decoded; the archive is corrupt")
    if x.size and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ArchiveError("the decoded values do not fit uint8; the archive is corrupt or the model is wrong")
    return np.ascontiguousarray(x, dtype=np.uint8)
