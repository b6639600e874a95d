"""The Python half of the native encoder: the records it hands back.

The native encoder gives up on anything it cannot render byte for byte
(unknown types, container subclasses, lone surrogates, deep nesting or
cycles). The whole record is then encoded here, exactly as the pure writer
does it, so the bytes and every error are Python's own. This is the only
Python the native writer runs per record, and only on that cold path.
"""

from __future__ import annotations

import json
from typing import Any

from sessionwal.records import build_chunk_record

__all__ = ["encode_chunk_line", "encode_line", "unpack_pair"]


def encode_line(record: Any) -> bytes:
    """``json.dumps(record, ensure_ascii=False) + "\\n"`` as UTF-8, like the seed's text file."""
    return (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def encode_chunk_line(index: Any, row: Any) -> bytes:
    """The default chunk record, through :func:`encode_line`."""
    return encode_line(build_chunk_record(index, row))


def unpack_pair(item: Any) -> tuple[Any, Any]:
    """``index, row = item``, so a malformed ``write_chunks`` item raises Python's own error."""
    index, row = item
    return index, row
