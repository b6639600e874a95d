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
from sessionwal.records import FileSummary, Structure, line_too_long, max_line_bytes, parse_line

__all__ = ["FileSummary", "summarize"]


def summarize(
    path: Path | str, *, validate: bool = False, max_line: int | None = None
) -> FileSummary:
    """Scans ``path``; raises ``OSError`` or :class:`SessionFormatError` like the loader.

    Without ``validate``, a line starting with the chunk prefix is counted
    without being parsed, so a corrupt chunk payload goes unnoticed; with it,
    every complete line must be one valid JSON object. Records are judged as
    the scanner finds them, so memory is bounded by ``max_line`` (default
    :func:`~sessionwal.records.max_line_bytes`) whatever the number of lines;
    a longer complete line is a :class:`SessionFormatError`. The file is
    opened without following a link or blocking on a FIFO, and must be a
    regular file (``PersistenceError`` otherwise).
    """
    path = Path(path)
    limit = max_line_bytes() if max_line is None else max_line
    structure = Structure(path)
    seen: dict[str, Any] = {"previous": 0, "header": None, "trailer": None}

    def on_event(line: int, _hint: str, text: bytes) -> None:
        previous = seen["previous"]
        if line > previous + 1:
            structure.feed_chunks(previous + 1, line - previous - 1)
        record = parse_line(path, line, text)
        record_type = structure.feed(line, record)
        if record_type == "header" and seen["header"] is None:
            seen["header"] = record
        elif record_type == "trailer":
            seen["trailer"] = record
        seen["previous"] = line

    result = _native.scan(path, validate=validate, max_line=limit, on_event=on_event)
    invalid = result["invalid"]
    overlong = result["overlong"]
    # The chunk lines after the last event, up to the first bad line: errors
    # are reported in line order, as the loader meets them.
    stop = result["lines"] + 1
    if invalid is not None:
        stop = invalid[0]
    elif overlong is not None:
        stop = overlong
    previous = seen["previous"]
    if stop - 1 > previous:
        structure.feed_chunks(previous + 1, stop - 1 - previous)
    if invalid is not None:
        line, byte_column, reason, text = invalid
        # Python's own words for the problem (and the same column as the loader).
        parse_line(path, line, text)
        # json.loads accepted what the native validator refused: report the latter.
        column = len(text[:byte_column].decode("utf-8", "replace")) + 1
        raise SessionFormatError(path, line, f"invalid JSON: {reason}", column)
    if overlong is not None:
        raise line_too_long(path, overlong, limit)
    structure.finish()
    header = seen["header"]
    assert header is not None
    return FileSummary(
        path=path,
        size=result["size"],
        torn_bytes=result["size"] - result["complete_len"],
        header=header,
        trailer=seen["trailer"],
        chunk_count=structure.chunks,
        segment_chunk_count=structure.segment_chunks,
    )
