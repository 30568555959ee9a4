"""Archives and the one pipeline that writes and reads them: the archive format (single and multi-chunk), the
classical fallback codecs, model discovery, sources of items, and the streaming encode/decode pipeline where method
and model are chosen. Imports ``bbans.bitsback``, ``bbans.codecs`` and ``bbans.errors``."""
