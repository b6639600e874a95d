"""Facts about a session file without parsing every record in Python.

:func:`summarize` asks the recovery rule where the file's valid log ends
(:func:`~sessionwal.records.valid_log`: every line checked natively), then
runs the native scanner (``sessionwal._native.scan``) over that log: it
counts chunk lines by their fixed prefix and returns every other line, which
is parsed here and fed through the same :class:`~sessionwal.records.Structure`
as the loader. So the header and trailer are parsed in Python, chunk
payloads are not, and files of other key orders are still read like the
loader reads them, only without the speed-up. What the facts mean (closed,
in flight, crashed, corrupt) is decided in :mod:`sessionwal.files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionwal import _native
from sessionwal.records import FileSummary, Structure, parse_line, valid_log

__all__ = ["FileSummary", "summarize"]


def summarize(path: Path | str, *, source: int | None = None) -> FileSummary:
    """Applies the recovery rule to ``path`` (read from the open descriptor
    ``source`` when given) and summarizes its valid log.

    Raises ``OSError``, or :class:`~sessionwal.errors.SessionFormatError` for a line longer than
    the maximum (see :func:`~sessionwal.records.valid_log`) or a record that
    Python's ``json`` cannot read although the native validator accepted it
    (nesting deeper than its recursion limit). Every line of the log was
    validated natively; only non-chunk lines (the header, the trailer, and
    records of other key orders) are parsed here.
    """
    path = Path(path)
    log = valid_log(path, source)
    result = _native.scan(path if source is None else source, end=log.end)
    structure = Structure(path)
    header: dict[str, Any] = {}
    trailer: dict[str, Any] | None = None
    previous = 0
    for line, _hint, text in result["events"]:
        if line > previous + 1:
            structure.feed_chunks(previous + 1, line - previous - 1)
        record = parse_line(path, line, text)
        record_type = structure.feed(line, record)
        if record_type == "header" and not header:
            header = record
        elif record_type == "trailer":
            trailer = record
        previous = line
    if result["lines"] > previous:
        structure.feed_chunks(previous + 1, result["lines"] - previous)
    return FileSummary(
        path=path,
        size=log.size,
        torn_bytes=log.tail_bytes,
        header=header,
        trailer=trailer,
        chunk_count=structure.chunks,
        segment_chunk_count=structure.segment_chunks,
        tail=log.tail,
        tail_line=log.tail_line,
    )
