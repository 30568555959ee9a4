"""Codecs: distributions that push symbols onto and pop them off one constriction ``AnsCoder`` stack.

The lowest layer of bbans (numpy + constriction only): ``Codec`` (basic.py) and every codec built on it, with the
integer tables that make their probabilities identical on every machine (docs/design.md, "Determinism").
"""
from .basic import Bernoulli, Categorical, Codec, QuantizedGaussian, Sequence, Uniform

__all__ = ["Codec", "Uniform", "Bernoulli", "Categorical", "QuantizedGaussian", "Sequence"]
