"""Facts about a session file without parsing every record in Python.

:func:`summarize` runs the native scanner (``sessionwal._native.scan``): it
counts chunk lines by their fixed prefix and returns every other complete
line, which is parsed here and fed through the same
:class:`~sessionwal.records.Structure` as the loader. So the header and
trailer are parsed, chunk payloads are not (unless ``validate=True``, where
the scanner checks every line's JSON natively), and files of other shapes (a
subclass's own records) are still judged exactly like the loader judges
them, only without the speed-up. What the facts mean (closed, in flight,
crashed, corrupt) is decided in :mod:`sessionwal.files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionwal import _native
from sessionwal.errors import SessionFormatError
from sessionwal.records import FileSummary, Structure, parse_line

__all__ = ["FileSummary", "summarize"]


def summarize(path: Path | str, *, validate: bool = False) -> FileSummary:
    """Scans ``path``; raises ``OSError`` or :class:`SessionFormatError` like the loader.

    Without ``validate``, a line starting with the chunk prefix is counted
    without being parsed, so a corrupt chunk payload goes unnoticed; with it,
    every complete line must be one valid JSON object.
    """
    path = Path(path)
    result = _native.scan(path, validate=validate)
    invalid = result["invalid"]
    # Records before the first invalid line are judged first: errors are
    # reported in line order, as the loader meets them.
    stop = invalid[0] if invalid is not None else result["lines"] + 1
    structure = Structure(path)
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    previous = 0
    for line, _hint, text in result["events"]:
        if line >= stop:
            break
        if line > previous + 1:
            structure.feed_chunks(previous + 1, line - previous - 1)
        record = parse_line(path, line, text)
        record_type = structure.feed(line, record)
        if record_type == "header" and header is None:
            header = record
        elif record_type == "trailer":
            trailer = record
        previous = line
    if stop - 1 > previous:
        structure.feed_chunks(previous + 1, stop - 1 - previous)
    if invalid is not None:
        line, byte_column, reason, text = invalid
        # Python's own words for the problem (and the same column as the loader).
        parse_line(path, line, text)
        # json.loads accepted what the native validator refused: report the latter.
        column = len(text[:byte_column].decode("utf-8", "replace")) + 1
        raise SessionFormatError(path, line, f"invalid JSON: {reason}", column)
    structure.finish()
    assert header is not None
    return FileSummary(
        path=path,
        size=result["size"],
        torn_bytes=result["size"] - result["complete_len"],
        header=header,
        trailer=trailer,
        chunk_count=structure.chunks,
        segment_chunk_count=structure.segment_chunks,
    )
