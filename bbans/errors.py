"""Project exceptions. Every user-facing failure is a ``BBANSError`` whose message says what to do."""


class BBANSError(Exception):
    """Base class of every error bbans raises on purpose; the CLI prints its message and exits non-zero."""

    exit_code = 1


class InputError(BBANSError):
    """The data given to compress is unreadable or of a kind no method accepts."""

    exit_code = 2


class ArchiveError(BBANSError):
    """An archive is corrupt, truncated, of an unknown version, or fails its checksum."""

    exit_code = 3


class ModelError(BBANSError):
    """A model is missing, does not fit the data, or its weights fail their sha256."""

    exit_code = 4
