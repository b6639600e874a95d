"""The record format, both directions: what a writer writes and what a reader accepts.

A session file is JSONL: the header record on line 1, then chunk records,
then optionally one trailer as the last record.

**The recovery rule** (one rule for every reader and the writer's reopen,
decided natively by ``sessionwal._native.recover``, asked through
:func:`valid_log`): the log of a file ends at its last complete, valid record
in sequence. Valid: a whole line that is a JSON object with a known
``record_type``; in sequence: a header first, then chunks, a further header
only for the same id (a reopen), a trailer ends a segment and only such a
header may follow it. Everything after is the
*crash tail* (a torn line, a run of NUL bytes where the size was extended
over data that never landed, garbage, and valid-looking records beyond
those): readers skip it, ``repair`` and a reopening writer cut it. A line
longer than :func:`max_line_bytes` where the log would continue is a
:class:`~sessionwal.errors.SessionFormatError` naming ``path:line``, never a
tail: it may be a record.

Writing: the builders are the drop-in hooks (README, "Drop-in"): a runtime
with its own record shapes subclasses the writer and points ``build_header``
/ ``build_trailer`` / ``build_chunk_record`` at its own functions. Reading:
everything that reads records (the loader, the native scanner's summary,
``repair``, ``tail``) feeds them through one :class:`Structure`, so they
agree on what is an error and where. The chunk framing the native writer
and scanner hard-code is tied to :func:`build_chunk_record` by a test.

``now_utc`` is looked up at call time, so tests (and runtimes replaying a
session) can pin the trailer's ``closed_at`` by patching it.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sessionwal import _native
from sessionwal.errors import SessionFormatError

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "HEADER_KEYS",
    "MAX_LINE_ENV",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "TAIL_KINDS",
    "TRAILER_KEYS",
    "USAGE_KEYS",
    "FileSummary",
    "Structure",
    "ValidLog",
    "build_chunk_record",
    "build_header",
    "build_recovered_trailer",
    "build_trailer",
    "chunk_kind_value",
    "describe_tail",
    "iter_lines",
    "line_too_long",
    "max_line_bytes",
    "now_utc",
    "parse_line",
    "str_enum_is_its_value",
    "usage_record",
    "valid_log",
]

SCHEMA_VERSION = 1
RECORD_TYPES = ("header", "chunk", "trailer")
HEADER_KEYS = (
    "record_type",
    "schema_version",
    "id",
    "created_at",
    "parent_session_ids",
    "lineage_operator",
    "lineage_kind",
    "lineage_extras",
    "sandbox_backend",
    "sandbox_spec",
    "sandbox_handle_id",
)
TRAILER_KEYS = ("record_type", "closed_at", "final_chunk_count", "cumulative_usage")
#: The attributes (or mapping keys) of a session's usage, in trailer order.
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


# ------------------------------------------------------------------ writing


def now_utc() -> datetime:
    """The clock behind ``created_at`` defaults and the trailer's ``closed_at``."""
    return datetime.now(UTC)


def chunk_kind_value(kind: Any) -> Any:
    """``kind.value`` for an Enum, the kind itself otherwise."""
    return kind.value if isinstance(kind, enum.Enum) else kind


def str_enum_is_its_value(kind_type: type) -> bool:
    """True when every member of a ``str`` Enum type *is* its value as a string.

    For such types ``chunk_kind_value(member)`` equals the member's own text,
    so the native writer may write members without calling ``.value``.
    """
    return (
        issubclass(kind_type, str)
        and issubclass(kind_type, enum.Enum)
        and all(
            type(member.value) is str and str.__eq__(member, member.value)
            for member in kind_type.__members__.values()
        )
    )


def _lineage_pairs(extras: Any) -> list[list[Any]]:
    if not extras:
        return []
    items = extras.items() if hasattr(extras, "items") else extras
    return [[key, value] for key, value in items]


def build_header(session: Any, *, sandbox_handle_id: str | None = None) -> dict[str, Any]:
    """The first line of every session file, written when the writer opens."""
    created_at = getattr(session, "created_at", None)
    if created_at is None:
        created_at = now_utc()
    return {
        "record_type": "header",
        "schema_version": SCHEMA_VERSION,
        "id": str(session.id),
        "created_at": created_at.isoformat(),
        "parent_session_ids": [str(p) for p in getattr(session, "parent_session_ids", None) or ()],
        "lineage_operator": getattr(session, "lineage_operator", None),
        "lineage_kind": getattr(session, "lineage_kind", None),
        "lineage_extras": _lineage_pairs(getattr(session, "lineage_extras", None)),
        "sandbox_backend": getattr(session, "sandbox_backend", None),
        "sandbox_spec": getattr(session, "sandbox_spec", None),
        "sandbox_handle_id": sandbox_handle_id,
    }


def build_chunk_record(index: int, row: Any) -> dict[str, Any]:
    """One ``record_type=chunk`` line per ``write_chunk``."""
    return {
        "record_type": "chunk",
        "index": index,
        "kind": chunk_kind_value(row.kind),
        "payload": row.payload,
    }


def usage_record(session: Any) -> dict[str, Any] | None:
    """The trailer's ``cumulative_usage``: ``None``, or the three token counts.

    Read by shape, as the runtime the seed comes from does: ``None`` stays
    ``None``; our :class:`~sessionwal.Usage` gives ``as_record()``; a mapping
    gives its three keys; any other object its three attributes (a dataclass,
    a ``SimpleNamespace``, a ``__slots__`` class, a pydantic model). Anything
    else is a ``TypeError`` naming the session and what is missing.
    """
    usage = getattr(session, "usage", None)
    if usage is None:
        return None
    as_record = getattr(usage, "as_record", None)
    if callable(as_record):
        return dict(as_record())
    if isinstance(usage, Mapping):
        missing = [key for key in USAGE_KEYS if key not in usage]
        if not missing:
            return {key: usage[key] for key in USAGE_KEYS}
    else:
        missing = [key for key in USAGE_KEYS if not hasattr(usage, key)]
        if not missing:
            return {key: getattr(usage, key) for key in USAGE_KEYS}
    raise TypeError(
        f"session {getattr(session, 'id', None)!r}: usage of type {type(usage).__name__} "
        f"has no {' or '.join(missing)}: the trailer needs None, or an object or mapping "
        f"with {', '.join(USAGE_KEYS)}"
    )


def build_trailer(session: Any, *, final_chunk_count: int) -> dict[str, Any]:
    """The last line, written by ``close``; its presence means the session closed cleanly."""
    usage = usage_record(session)
    return {
        "record_type": "trailer",
        "closed_at": now_utc().isoformat(),
        "final_chunk_count": final_chunk_count,
        "cumulative_usage": usage,
    }


def build_recovered_trailer(final_chunk_count: int) -> dict[str, Any]:
    """The trailer ``repair`` appends: the writer's keys, no usage, and ``recovered``."""
    return {
        "record_type": "trailer",
        "closed_at": now_utc().isoformat(),
        "final_chunk_count": final_chunk_count,
        "cumulative_usage": None,
        "recovered": True,
    }


# ------------------------------------------------------------------ reading


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

    __slots__ = ("chunks", "header_id", "header_line", "path", "segment_chunks", "trailer_line")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header_line: int | None = None
        self.header_id: Any = None
        self.trailer_line: int | None = None
        self.chunks = 0
        # Chunks since the latest header: what a writer's trailer counts when
        # it reopened an abandoned partial file.
        self.segment_chunks = 0

    def _error(self, line: int, reason: str) -> SessionFormatError:
        return SessionFormatError(self.path, line, reason)

    def feed(self, line: int, record: dict[str, Any]) -> str:
        """Checks one record at ``line``; returns its record_type."""
        record_type = record.get("record_type")
        if not isinstance(record_type, str) or record_type not in RECORD_TYPES:
            if "record_type" not in record:
                raise self._error(line, "record has no record_type")
            raise self._error(line, f"unknown record_type {record_type!r}")
        if record_type == "chunk":
            self.feed_chunks(line, 1)
            return record_type
        if record_type == "header":
            if self.header_line is None:
                self.header_line, self.header_id = line, record.get("id")
                self.segment_chunks = 0
            elif record.get("id") != self.header_id:
                # A header for the same id is a reopened session: writers append
                # to an abandoned partial file (as the seed does), also after a
                # trailer (a lost rename, or hooks naming one file for both).
                # Another id is not.
                raise self._error(
                    line,
                    f"header for another session id {record.get('id')!r} "
                    f"(the header is line {self.header_line})",
                )
            else:
                self.segment_chunks = 0
                self.trailer_line = None
        else:
            self._check_not_after_trailer(line)
            self._check_after_header(line, record_type)
            self.trailer_line = line
        return str(record_type)

    def feed_chunks(self, first_line: int, count: int) -> None:
        """``count`` chunk records on the lines from ``first_line`` on."""
        self._check_not_after_trailer(first_line)
        self._check_after_header(first_line, "chunk")
        self.chunks += count
        self.segment_chunks += count

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


MAX_LINE_ENV = "SESSIONWAL_MAX_LINE_BYTES"
#: The longest line readers accept by default: far beyond any record a
#: session holds in practice, and the bound on a reader's memory (plus a
#: constant) whatever a file contains. docs/safety.md.
DEFAULT_MAX_LINE_BYTES = 256 << 20
_SKIP_STEP = 1 << 20


def max_line_bytes() -> int:
    """The longest line a reader accepts: ``$SESSIONWAL_MAX_LINE_BYTES``, else 256 MiB."""
    text = os.environ.get(MAX_LINE_ENV)
    if not text:
        return DEFAULT_MAX_LINE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_LINE_ENV} must be a positive number of bytes, not {text!r}")
    return value


def line_too_long(path: Path | str, line: int, limit: int) -> SessionFormatError:
    """The error for a complete line longer than the readers' limit."""
    return SessionFormatError(
        path,
        line,
        f"line is longer than {limit} bytes, the readers' limit (set ${MAX_LINE_ENV} to raise it)",
    )


def iter_lines(
    file: IO[bytes],
    torn: list[int] | None = None,
    *,
    path: Path | str | None = None,
    max_line: int | None = None,
    end: int | None = None,
) -> Iterator[tuple[int, bytes]]:
    """``(line number, line without newline)`` for each complete line of ``file``.

    A last line without ``\\n`` is the torn tail: it is not yielded; its length
    is appended to ``torn`` when given. Memory is bounded by ``max_line``
    (default :func:`max_line_bytes`): a complete line longer than that raises
    :class:`SessionFormatError` naming ``path:line`` (``path`` defaults to
    the file's name); a torn tail that long is counted, never held. With
    ``end`` (the valid log :func:`valid_log` found), nothing past its first
    ``end`` bytes is read.
    """
    limit = max_line_bytes() if max_line is None else max_line
    remaining = -1 if end is None else end
    number = 0
    while remaining and (raw := file.readline(limit + 1 if remaining < 0 else remaining)):
        if remaining > 0:
            remaining -= len(raw)
        number += 1
        if raw.endswith(b"\n"):
            yield number, raw[:-1]
            continue
        length = len(raw)
        # Longer than any line we accept: find out whether it ends (an
        # overlong line) or is the torn tail, without keeping its bytes.
        while length > limit and (more := file.readline(_SKIP_STEP)):
            length += len(more)
            if more.endswith(b"\n"):
                where = path if path is not None else str(getattr(file, "name", "<file>"))
                raise line_too_long(where, number, limit)
        if torn is not None:
            torn.append(length)
        return


#: What a crash tail looks like, by the kind ``valid_log`` reports, in words.
TAIL_KINDS = {
    "zeros": "NUL bytes only (the size was extended over data that never landed)",
    "hole": "NUL bytes and data that landed around them (pages written back out of order)",
    "torn": "a record cut short",
    "garbage": "a line that is not a JSON object",
    "unrecognized record": "a JSON object without a known record_type",
    "out of sequence": "a record out of sequence",
}


def describe_tail(size: int, kind: str | None, line: int | None) -> str:
    """``"a crash tail of N bytes from line L (<kind in words>)"``."""
    words = TAIL_KINDS.get(kind or "torn", str(kind))
    where = f" from line {line}" if line is not None else ""
    return f"a crash tail of {size} byte{'' if size == 1 else 's'}{where} ({words})"


@dataclass(frozen=True, slots=True)
class ValidLog:
    """Where the valid log of a file ends (the recovery rule) and what follows."""

    #: Bytes of the valid log: it ends with a newline, or is empty.
    end: int
    #: Bytes in the file when it was read.
    size: int
    #: ``None``, or the kind of the crash tail (a key of :data:`TAIL_KINDS`).
    tail: str | None
    #: Where the trailer ending the log starts, when it ends with one.
    trailer_at: int | None
    #: Chunk records in the log.
    chunks: int
    #: Records (lines) in the log.
    records: int

    @property
    def tail_bytes(self) -> int:
        return self.size - self.end

    @property
    def tail_line(self) -> int | None:
        """The line the crash tail starts on, when there is one."""
        return None if self.tail is None else self.records + 1

    def describe_tail(self) -> str:
        """:func:`describe_tail` of this log's tail, or ``""`` when there is none."""
        if self.tail is None:
            return ""
        return describe_tail(self.tail_bytes, self.tail, self.tail_line)


def valid_log(
    path: Path, source: Path | int | bytes | None = None, *, max_line: int | None = None
) -> ValidLog:
    """The recovery rule (module doc) on the file at ``path``: read from ``source``
    when given (an open descriptor, read from its start without moving its
    offset, or the file's bytes). One sequential read, natively.

    Raises :class:`~sessionwal.errors.SessionFormatError` for a line longer than
    ``max_line`` (default :func:`max_line_bytes`) where the log would continue: it
    may be a record, so it is never cut as a crash tail. ``OSError`` when unreadable.
    """
    limit = max_line_bytes() if max_line is None else max_line
    result = _native.recover(path if source is None else source, max_line=limit)
    too_long = result["line_too_long"]
    if too_long is not None:
        raise line_too_long(path, too_long[0], limit)
    return ValidLog(
        end=result["end"],
        size=result["size"],
        tail=result["tail"],
        trailer_at=result["trailer_at"],
        chunks=result["chunks"],
        records=result["records"],
    )


@dataclass(frozen=True, slots=True)
class FileSummary:
    """What a reader found in one session file: the facts its state is judged on."""

    path: Path
    size: int
    #: Bytes of the crash tail: after the valid log (see :func:`valid_log`).
    torn_bytes: int
    #: Empty when the valid log is (the file has no complete header).
    header: dict[str, Any]
    trailer: dict[str, Any] | None
    chunk_count: int
    #: Chunk records since the last header (a reopened session has several).
    segment_chunk_count: int
    #: The kind of the crash tail (a key of :data:`TAIL_KINDS`), or ``None``.
    tail: str | None = None
    #: The line the crash tail starts on, or ``None``.
    tail_line: int | None = None

    @property
    def recovered(self) -> bool:
        """The trailer was written by ``sessionwal repair``, not by the writer."""
        return self.trailer is not None and self.trailer.get("recovered") is True
