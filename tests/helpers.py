"""Small helpers shared by the test modules."""
from __future__ import annotations

import constriction
import torch


def with_torch_threads(n: int, fn, *args, **kw):
    """Call ``fn(*args, **kw)`` with torch limited to ``n`` intra-op threads, restoring the count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kw)
    finally:
        torch.set_num_threads(before)


def empty_coder():
    """A fresh, empty constriction ANS stack."""
    return constriction.stream.stack.AnsCoder()
