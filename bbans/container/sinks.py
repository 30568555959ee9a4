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
    byte; ``bytes_written`` counts them.

    A write that takes only part of the bytes is continued with the rest; one that takes none raises
    ``OSError(EIO)``. A non-blocking stream that is full (``BlockingIOError``, e.g. a pipe another program left in
    O_NONBLOCK mode) is waited on until it can take more, instead of failing or dropping bytes. Errors of the
    stream itself (EPIPE, ENOSPC, EFBIG, ...) propagate unchanged."""

    def __init__(self, stream):
        self.stream, self.bytes_written = stream, 0

    def write(self, b) -> None:
        view = memoryview(b).cast("B")
        while view.nbytes:
            try:
                n = self.stream.write(view)
            except BlockingIOError as exc:
                n = exc.characters_written
                if not n:
                    self._wait()
                    continue
            if n is None:  # a non-blocking raw stream that took nothing
                self._wait()
                continue
            if n <= 0:
                raise OSError(errno.EIO, "the output accepted no more bytes (short write)")
            self.bytes_written += n
            view = view[n:]

    def flush(self) -> None:
        while True:
            try:
                self.stream.flush()
                return
            except BlockingIOError:
                self._wait()

    def _wait(self) -> None:
        """Block until the stream can take bytes (streams without a file descriptor: a short sleep)."""
        import select
        import time

        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            time.sleep(0.01)
            return
        select.select([], [fd], [], 1.0)
