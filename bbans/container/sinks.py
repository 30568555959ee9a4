"""Where the pipeline writes archive (or decoded) bytes: small classes with one method, ``write(b)``.

Every write is checked: a stream that accepts fewer bytes than it was given (a pipe whose reader left, a full disk,
a file-size limit) raises OSError instead of losing data silently.
"""
from __future__ import annotations

import errno
import io


class MemorySink:
    """Collects everything written, in memory (the library's ``compress`` returns its bytes)."""

    def __init__(self):
        self._buf = io.BytesIO()

    def write(self, b) -> None:
        self._buf.write(b)

    def getvalue(self) -> bytes:
        return self._buf.getvalue()


class StreamSink:
    """Writes to a binary stream (an open file, standard output's buffer), checking that each write took every
    byte; ``bytes_written`` counts them."""

    def __init__(self, stream):
        self.stream, self.bytes_written = stream, 0

    def write(self, b) -> None:
        view = memoryview(b).cast("B")
        while view.nbytes:
            n = self.stream.write(view)
            if n is None:  # a non-blocking stream that took nothing
                n = 0
            if n <= 0:
                raise OSError(errno.EIO, "the output accepted no more bytes (short write)")
            self.bytes_written += n
            view = view[n:]

    def flush(self) -> None:
        self.stream.flush()
