"""The rules of a session file, shared by the loader, the scanner summary and repair.

A session file is JSONL: the header record on line 1, then chunk records,
then optionally one trailer as the last record. A final line without its
``\\n`` is a torn tail (a write cut short by a crash) and is not a record.
Every other departure is a :class:`SessionFormatError` naming ``path:line``
(and the column, for JSON syntax errors).

Everything that reads records (``load_session``, ``iter_records``, the native
summary behind ``list_sessions``/``verify``, ``repair``) feeds them through
one :class:`Structure`, so they agree on what is an error and where.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sessionwal.errors import PersistenceError

__all__ = ["RECORD_TYPES", "SessionFormatError", "Structure", "iter_lines", "parse_line"]

RECORD_TYPES = ("header", "chunk", "trailer")


class SessionFormatError(PersistenceError):
    """A session file breaks the format; ``str()`` starts with ``path:line[:column]:``.

    ``path``, ``line`` (1-based) and ``column`` (1-based, in characters, or
    ``None``) say where; ``reason`` says what, without the location.
    """

    def __init__(self, path: Path | str, line: int, reason: str, column: int | None = None):
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{path}:{line}" if column is None else f"{path}:{line}:{column}"
        super().__init__(f"{where}: {reason}")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def parse_line(path: Path, line: int, raw: bytes) -> dict[str, Any]:
    """One complete line (without its newline) as a record dict."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
        raise SessionFormatError(path, line, f"invalid UTF-8 ({exc.reason})", column) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionFormatError(path, line, f"invalid JSON: {exc.msg}", exc.colno) from None
    except RecursionError:
        raise SessionFormatError(path, line, "invalid JSON: nested too deeply") from None
    if not isinstance(record, dict):
        raise SessionFormatError(path, line, f"record is {_json_type(record)}, not a JSON object")
    return record


class Structure:
    """The order rules, fed one record (or a run of chunk records) at a time."""

    __slots__ = ("chunks", "header_line", "path", "trailer_line")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header_line: int | None = None
        self.trailer_line: int | None = None
        self.chunks = 0

    def _error(self, line: int, reason: str) -> SessionFormatError:
        return SessionFormatError(self.path, line, reason)

    def feed(self, line: int, record: dict[str, Any]) -> str:
        """Checks one record at ``line``; returns its record_type."""
        record_type = record.get("record_type")
        if record_type not in RECORD_TYPES:
            if "record_type" not in record:
                raise self._error(line, "record has no record_type")
            raise self._error(line, f"unknown record_type {record_type!r}")
        if record_type == "chunk":
            self.feed_chunks(line, 1)
            return record_type
        self._check_not_after_trailer(line)
        if record_type == "header":
            if self.header_line is not None:
                raise self._error(line, f"duplicate header (the header is line {self.header_line})")
            self.header_line = line
        else:
            self._check_after_header(line, record_type)
            self.trailer_line = line
        return record_type

    def feed_chunks(self, first_line: int, count: int) -> None:
        """``count`` chunk records on the lines from ``first_line`` on."""
        self._check_not_after_trailer(first_line)
        self._check_after_header(first_line, "chunk")
        self.chunks += count

    def finish(self) -> None:
        """No more complete records. (Without a header there was no complete line at
        all: any other first line fails earlier, so the error is on line 1.)"""
        if self.header_line is None:
            raise self._error(1, "no complete header record")

    def _check_after_header(self, line: int, record_type: str) -> None:
        if self.header_line is None:
            raise self._error(line, f"{record_type} record before the header")

    def _check_not_after_trailer(self, line: int) -> None:
        if self.trailer_line is not None:
            raise self._error(line, f"record after the trailer (line {self.trailer_line})")


def iter_lines(file: IO[bytes], torn: list[int] | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, line without newline)`` for each complete line of ``file``.

    A last line without ``\\n`` is the torn tail: it is not yielded; its length
    is appended to ``torn`` when given.
    """
    for number, raw in enumerate(file, 1):
        if not raw.endswith(b"\n"):
            if torn is not None:
                torn.append(len(raw))
            return
        yield number, raw[:-1]
