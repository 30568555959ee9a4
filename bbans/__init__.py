"""bbans: lossless compression with bits-back coding over VAEs."""
from .api import CompressReport, compress, compress_with_report, decompress
from .archive import ArchiveHeader, read_header
from .errors import ArchiveError, BBANSError, InputError, ModelError
from .registry import default_model_for, find_model, list_models, load_model

__all__ = [
    "compress", "compress_with_report", "decompress", "CompressReport", "read_header", "ArchiveHeader",
    "list_models", "load_model", "find_model", "default_model_for",
    "BBANSError", "InputError", "ArchiveError", "ModelError",
]
