"""Facts about a session file without parsing every record in Python.

:func:`summarize` asks the recovery rule where the file's valid log ends
(:func:`~sessionwal.records.valid_log`: every line checked natively), then
runs the native scanner (``sessionwal._native.scan``) over that log: it
counts chunk lines by their fixed prefix and hands every other line to
Python, which parses it and feeds the same :class:`~sessionwal.records.Structure`
as the loader. So the header and trailer are parsed in Python, chunk payloads
are not, and files of other key orders are still read like the loader reads
them, only without the speed-up. What the facts mean (closed, in flight,
crashed, corrupt) is decided in :mod:`sessionwal.files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionwal import _native
from sessionwal.records import FileSummary, Structure, max_line_bytes, parse_line, valid_log

__all__ = ["FileSummary", "summarize"]


def summarize(path: Path | str, *, max_line: int | None = None) -> FileSummary:
    """Applies the recovery rule to ``path`` and summarizes its valid log.

    Raises ``OSError``, ``PersistenceError`` (not a regular file: the file is
    opened without following a link or blocking on a FIFO), or
    :class:`~sessionwal.errors.SessionFormatError` for a line longer than
    ``max_line`` (default :func:`~sessionwal.records.max_line_bytes`) where
    the log would continue, or a record Python's ``json`` cannot read although
    the native validator accepted it (nesting deeper than its recursion
    limit). Memory is bounded by ``max_line`` whatever the number of lines.
    """
    path = Path(path)
    limit = max_line_bytes() if max_line is None else max_line
    log = valid_log(path, max_line=limit)
    structure = Structure(path)
    seen: dict[str, Any] = {"previous": 0, "header": None, "trailer": None}

    def on_event(line: int, _hint: str, text: bytes) -> None:
        previous = seen["previous"]
        if line > previous + 1:
            structure.feed_chunks(previous + 1, line - previous - 1)
        record = parse_line(path, line, text)
        record_type = structure.feed(line, record)
        if record_type == "header":
            seen["header"] = seen["header"] or record
            seen["trailer"] = None  # a reopen after a trailer: not closed any more
        elif record_type == "trailer":
            seen["trailer"] = record
        seen["previous"] = line

    result = _native.scan(path, max_line=limit, on_event=on_event, end=log.end)
    previous = seen["previous"]
    if result["lines"] > previous:
        structure.feed_chunks(previous + 1, result["lines"] - previous)
    return FileSummary(
        path=path,
        size=log.size,
        torn_bytes=log.tail_bytes,
        header=seen["header"] or {},
        trailer=seen["trailer"],
        chunk_count=structure.chunks,
        segment_chunk_count=structure.segment_chunks,
        tail=log.tail,
        tail_line=log.tail_line,
    )
