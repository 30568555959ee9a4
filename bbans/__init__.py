"""bbans: lossless compression with bits-back coding over VAEs.

Layers (docs/design.md): ``bbans.codecs`` (push/pop codecs and integer tables) under ``bbans.bitsback`` (the
chain, Monte-Carlo bits-back, seed and schedule) under ``bbans.container`` (archive formats, the one encode/decode
pipeline, method and model choice) under ``bbans.api`` (this facade). No torch anywhere in ``bbans``.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("bbans")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
from .api import (CompressReport, Report, compress, compress_collection, compress_with_report, decompress,
                  decompress_collection, open)
from .bitsback.protocol import Evaluable, LatentModel
from .container.archive import ArchiveHeader, read_header
from .container.registry import default_model_for, find_model, list_models, load_model
from .errors import ArchiveError, BBANSError, InputError, ModelError

__all__ = [
    "__version__", "compress", "compress_with_report", "decompress", "open", "compress_collection",
    "decompress_collection", "Report", "CompressReport",
    "read_header", "ArchiveHeader", "LatentModel", "Evaluable",
    "list_models", "load_model", "find_model", "default_model_for",
    "BBANSError", "InputError", "ArchiveError", "ModelError",
]
