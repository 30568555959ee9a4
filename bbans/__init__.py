"""bbans: lossless compression with bits-back coding over VAEs."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bbans")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
from .api import CompressReport, compress, compress_with_report, decompress
from .container.archive import ArchiveHeader, read_header
from .errors import ArchiveError, BBANSError, InputError, ModelError
from .container.registry import default_model_for, find_model, list_models, load_model

__all__ = [
    "__version__", "compress", "compress_with_report", "decompress", "CompressReport", "read_header", "ArchiveHeader",
    "list_models", "load_model", "find_model", "default_model_for",
    "BBANSError", "InputError", "ArchiveError", "ModelError",
]
