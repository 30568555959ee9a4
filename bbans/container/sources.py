"""Where a chunked encoder reads its items from: an array in memory, or a region of a file read through a memory
map one chunk at a time (so memory stays bounded whatever the file's size).

Both are small picklable objects, so worker processes can read their own chunks instead of receiving the data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArraySource:
    """Items of a uint8 array (N, *item_shape) in memory."""

    array: np.ndarray

    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    def read(self, i: int, j: int) -> np.ndarray:
        """Items [i, j) as a C-contiguous uint8 array (j - i, *item_shape)."""
        return np.ascontiguousarray(self.array[i:j])


@dataclass(frozen=True)
class FileSource:
    """Items stored as raw uint8 bytes in C order in the file ``path``, starting at byte ``offset``.

    ``shape`` is (N, *item_shape). Each ``read`` maps only the bytes of items [i, j), copies them and unmaps them,
    so the process's resident memory grows with the chunk, never with the file.
    """

    path: str
    offset: int
    shape: tuple

    @property
    def item_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    def read(self, i: int, j: int) -> np.ndarray:
        n = max(0, j - i)
        if n == 0:
            return np.zeros((0, *self.shape[1:]), np.uint8)
        mm = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.offset + i * self.item_bytes,
                       shape=(n, *self.shape[1:]))
        out = np.array(mm, copy=True, order="C")
        del mm  # the last reference: unmaps the region
        return out
