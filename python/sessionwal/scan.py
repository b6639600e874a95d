"""Facts about a session file without parsing every record in Python.

:func:`summarize` runs the native scanner (``sessionwal._native.scan``): it
counts chunk lines by their fixed prefix and returns every other complete
line, which is parsed here and fed through the same :class:`Structure` as the
loader. So the header and trailer are parsed, chunk payloads are not (unless
``validate=True``, where the scanner checks every line's JSON natively), and
files of other shapes (a subclass's own records) are still judged exactly
like the loader judges them, only without the speed-up.

:func:`verify_file` is the CLI's ``verify``; :func:`writer_holds_lock` tells
a session in flight from a crashed one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionwal import _native
from sessionwal._format import SessionFormatError, Structure, parse_line
from sessionwal.paths import PARTIAL_SUFFIX

__all__ = [
    "FileSummary",
    "Verdict",
    "final_file_problem",
    "summarize",
    "verify_file",
    "writer_holds_lock",
]


@dataclass(frozen=True, slots=True)
class FileSummary:
    """What the scanner found in one session file."""

    path: Path
    size: int
    #: Bytes after the last newline (a record cut short by a crash).
    torn_bytes: int
    header: dict[str, Any]
    trailer: dict[str, Any] | None
    chunk_count: int
    #: Chunk records since the last header (a reopened session has several).
    segment_chunk_count: int

    @property
    def partial(self) -> bool:
        return self.path.name.endswith(PARTIAL_SUFFIX)

    @property
    def recovered(self) -> bool:
        return self.trailer is not None and self.trailer.get("recovered") is True


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


@contextlib.contextmanager
def lock_unless_written(path: Path | str) -> Iterator[bool | None]:
    """Holds the flock on ``path`` for the ``with`` block when no writer holds it.

    Yields ``True`` while holding it, ``False`` when a writer holds it, and
    ``None`` when the file does not exist. The lock is taken with
    ``flock(LOCK_EX | LOCK_NB)`` on a separate open of the file; while we
    hold it, a writer opening the same file is refused as if another writer
    had it, so hold it briefly.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def writer_holds_lock(path: Path | str) -> bool:
    """True when a writer holds the flock on ``path`` (probed and released at once)."""
    with lock_unless_written(path) as held:
        return held is False


def final_file_problem(summary: FileSummary) -> str | None:
    """Why a file under its final name is not a cleanly closed session, if it is not."""
    if summary.trailer is None:
        return "no trailer, but only a closed session has the final name"
    if summary.torn_bytes:
        return f"{summary.torn_bytes} bytes without a newline after the trailer"
    count = summary.trailer.get("final_chunk_count", summary.segment_chunk_count)
    if count != summary.segment_chunk_count:
        return (
            f"the trailer says final_chunk_count={count!r} "
            f"but its writer wrote {_plural(summary.segment_chunk_count, 'chunk record')}"
        )
    return None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`verify_file`; ``str()`` is the CLI's line for it."""

    path: Path
    #: "ok", "in flight", "crashed", "corrupt" or "unreadable".
    status: str
    detail: str

    @property
    def exit_code(self) -> int:
        """0 closed and intact, 1 in flight or crashed, 2 corrupt or unreadable."""
        return {"ok": 0, "in flight": 1, "crashed": 1}.get(self.status, 2)

    def __str__(self) -> str:
        return f"{self.path}: {self.status}: {self.detail}"


def verify_file(path: Path | str) -> Verdict:
    """Checks every record of ``path`` (JSON validated natively) and its state."""
    path = Path(path)
    try:
        summary = summarize(path, validate=True)
    except SessionFormatError as exc:
        return Verdict(path, "corrupt", str(exc))
    except OSError as exc:
        return Verdict(path, "unreadable", str(exc))
    chunks = _plural(summary.chunk_count, "chunk")
    if summary.partial:
        if writer_holds_lock(path):
            return Verdict(path, "in flight", f"{chunks} so far; a writer holds the lock")
        if summary.trailer is not None and not summary.torn_bytes:
            detail = f"{chunks} and a trailer, but the rename to the final name never happened"
        elif summary.torn_bytes:
            detail = f"{chunks} complete, then a torn tail of {summary.torn_bytes} bytes"
        else:
            detail = f"{chunks} complete, no trailer"
        return Verdict(path, "crashed", f"{detail}; `sessionwal repair` closes it")
    problem = final_file_problem(summary)
    if problem is not None:
        return Verdict(path, "corrupt", f"{path}: {problem}")
    recovered = ", recovered by repair" if summary.recovered else ""
    return Verdict(path, "ok", f"closed, {chunks}{recovered}")
