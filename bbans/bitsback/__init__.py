"""Bits-back coding over the codecs layer: the chain (pop q(z|x), push p(x|z), push p(z)), Monte-Carlo bits-back
with importance-sampled particles, the initial-bits seed and the batch schedule, and the model protocol they code
with. Imports only ``bbans.codecs`` and ``bbans.errors``."""
