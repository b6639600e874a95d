"""Reading sessions back: load one, stream its records, list, delete and prune.

All of them read a file's *valid log*, as the recovery rule finds it (see
:mod:`sessionwal.records`): the records up to the last complete, valid one
in sequence. What follows (a torn line, NUL bytes left by power loss,
garbage) is the crash tail: skipped and reported (``torn_bytes``, ``tail``),
never parsed. ``load_session`` and ``iter_records`` parse every record of
the log with ``json.loads``; ``list_sessions`` uses the native scanner (see
:mod:`sessionwal.scan`), which parses only each file's header and trailer.
A file whose log has no header, or a line longer than the readers' maximum,
raises :class:`SessionFormatError` (a :class:`PersistenceError`) naming
``path:line``.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sessionwal import files
from sessionwal.errors import PersistenceError, SessionFormatError
from sessionwal.files import SessionState
from sessionwal.model import ChunkKind, ChunkRow
from sessionwal.records import (
    FileSummary,
    Structure,
    ValidLog,
    iter_lines,
    parse_line,
    valid_log,
)

__all__ = [
    "PersistedSession",
    "SessionFormatError",
    "SessionInfo",
    "delete_session",
    "iter_records",
    "list_sessions",
    "load_session",
    "prune_sessions",
]

logger = logging.getLogger(__name__)

_KINDS = {kind.value: kind for kind in ChunkKind}


@dataclass(frozen=True, slots=True)
class PersistedSession:
    """One session as read back from its file."""

    path: Path
    header: dict[str, Any]
    chunks: tuple[ChunkRow, ...]
    trailer: dict[str, Any] | None
    #: The trailer was seen *and* the file has its final name. A ``__partial__``
    #: file with a trailer (a crash between the trailer and the rename) is not
    #: closed: the rename is what advertises a clean close.
    closed: bool
    #: Each chunk record's ``index``, in file order.
    chunk_indices: tuple[Any, ...] = ()
    #: Bytes of the crash tail, after the valid log: skipped.
    torn_bytes: int = 0

    @property
    def id(self) -> str:
        return str(self.header.get("id"))

    #: Chunk records since the last header (what the trailer counts).
    segment_chunk_count: int = 0
    #: The crash tail's kind (see :data:`sessionwal.records.TAIL_KINDS`), or None.
    tail: str | None = None
    #: The line the crash tail starts on, or None.
    tail_line: int | None = None

    @property
    def partial(self) -> bool:
        return files.is_partial(self.path)

    @property
    def recovered(self) -> bool:
        """The trailer was written by ``sessionwal repair``, not by the writer."""
        return self.trailer is not None and self.trailer.get("recovered") is True

    def summary(self) -> FileSummary:
        """The facts :func:`sessionwal.files.judge` decides the state on."""
        return FileSummary(
            path=self.path,
            size=-1,
            torn_bytes=self.torn_bytes,
            header=self.header,
            trailer=self.trailer,
            chunk_count=len(self.chunks),
            segment_chunk_count=self.segment_chunk_count,
            tail=self.tail,
            tail_line=self.tail_line,
        )

    def verdict(self) -> files.Verdict:
        """The session's state, by the rule every command uses (asks the lock for a
        partial file)."""
        return files.judge(self.summary())


def _records(path: Path, file: IO[bytes]) -> tuple[ValidLog, Iterator[tuple[str, dict[str, Any]]]]:
    """The valid log of the open ``file`` and an iterator over its records (the
    tail is never read). Raises at the end when the log has no header."""
    log = valid_log(path, file.fileno())

    def records() -> Iterator[tuple[str, dict[str, Any]]]:
        structure = Structure(path)
        for line, raw in iter_lines(file, path=path, end=log.end):
            record = parse_line(path, line, raw)
            yield structure.feed(line, record), record
        structure.finish()

    return log, records()


def iter_records(path: Path | str) -> Iterator[dict[str, Any]]:
    """Streams the records of the file at ``path``'s valid log, one line in memory at a time.

    Yields the header, the chunks and the trailer as dicts; the crash tail
    after the log is skipped. Raises :class:`SessionFormatError` like
    :func:`load_session`.
    """
    path = Path(path)
    with files.open_regular(path) as file:
        _log, records = _records(path, file)
        for _record_type, record in records:
            yield record


def _chunk_row(record: dict[str, Any]) -> ChunkRow:
    # Whatever JSON the file holds: the format rules constrain record order,
    # not the chunk's fields, and a reader returns what the writer wrote.
    kind: Any = record.get("kind")
    payload: Any = record.get("payload")
    if isinstance(kind, str):
        kind = _KINDS.get(kind, kind)
    return ChunkRow(kind, payload)


def load_session(session_id: object = None, *, path: Path | str | None = None) -> PersistedSession:
    """Reads a whole session: by id from the sessions directory, or from ``path``.

    The final file (``<id>.jsonl``) is read when it exists, else the
    ``__partial__`` file beside it (a session in flight, abandoned or
    crashed). Only the valid log is read (the recovery rule: records up to
    the last complete, valid one in sequence); a crash tail after it is
    skipped and reported as ``torn_bytes`` and ``tail``. Raises
    ``FileNotFoundError`` when neither file exists and
    :class:`SessionFormatError` when the log has no complete header, or a
    line is longer than the readers' maximum.
    """
    found, file = files.open_first(files.candidates(session_id, path=path))
    header: dict[str, Any] = {}
    trailer: dict[str, Any] | None = None
    chunks: list[ChunkRow] = []
    indices: list[Any] = []
    segment_chunks = 0
    with file:
        log, records = _records(found, file)
        for record_type, record in records:
            if record_type == "chunk":
                chunks.append(_chunk_row(record))
                indices.append(record.get("index"))
                segment_chunks += 1
            elif record_type == "header":
                header = header or record
                segment_chunks = 0
                trailer = None  # a reopen after a trailer: not closed any more
            else:
                trailer = record
    partial = files.is_partial(found)
    return PersistedSession(
        path=found,
        header=header,
        chunks=tuple(chunks),
        trailer=trailer,
        closed=trailer is not None and not partial,
        chunk_indices=tuple(indices),
        torn_bytes=log.tail_bytes,
        segment_chunk_count=segment_chunks,
        tail=log.tail,
        tail_line=log.tail_line,
    )


# ------------------------------------------------------------------ listing


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session file as :func:`list_sessions` sees it."""

    id: str
    path: Path
    #: The header's ``created_at`` (naive read as UTC), or the file's
    #: modification time when the header has no ISO-8601 one.
    created_at: datetime
    #: Complete chunk records in the file.
    chunk_count: int
    #: Cleanly closed: final name and a trailer.
    closed: bool
    #: File size in bytes.
    size: int
    #: CLOSED, IN_FLIGHT (a writer holds the lock) or CRASHED (a
    #: ``__partial__`` file nobody holds: abandoned, or its process died);
    #: equal to the strings "closed", "in_flight", "crashed".
    state: SessionState
    #: Bytes of the crash tail, after the valid log.
    torn_bytes: int = 0
    #: Closed by ``sessionwal repair`` rather than by its writer.
    recovered: bool = False
    #: The crash tail's kind (see :data:`sessionwal.records.TAIL_KINDS`), or None.
    tail: str | None = None


def _created_at(path: Path, header: dict[str, Any]) -> datetime:
    """The header's ISO-8601 ``created_at``; else (a runtime's own header hook may
    write none, or another shape) the file's modification time. Not a format
    error: no other reader judges ``created_at``, and a listing must agree
    with ``verify`` about every file."""
    value = header.get("created_at")
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    if created is None:
        return datetime.fromtimestamp(os.stat(path, follow_symlinks=False).st_mtime, UTC)
    # A duck-typed session may carry a naive datetime: read it as UTC so that
    # every created_at compares with every other.
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)


def session_info(path: Path | str, *, listed: frozenset[int] | None = None) -> SessionInfo:
    """The :class:`SessionInfo` of one file; raises what :func:`list_sessions` reports.
    ``listed``: see :func:`sessionwal.files.writer_holds_lock`."""
    verdict = files.state_of(path, listed=listed)
    if verdict.summary is None or verdict.state is SessionState.CORRUPT:
        assert verdict.error is not None
        raise verdict.error
    summary = verdict.summary
    if not summary.header:
        raise SessionFormatError(summary.path, 1, f"no complete header record: {verdict.detail}")
    session_id = summary.header.get("id")
    return SessionInfo(
        id=session_id if isinstance(session_id, str) else files.session_id_of(summary.path),
        path=summary.path,
        created_at=_created_at(summary.path, summary.header),
        chunk_count=summary.chunk_count,
        closed=verdict.state is SessionState.CLOSED,
        size=summary.size,
        state=verdict.state,
        torn_bytes=summary.torn_bytes,
        recovered=summary.recovered,
        tail=summary.tail,
    )


def _warn(path: Path, exc: Exception) -> None:
    logger.warning("skipping session file %s: %s", path, exc)


def list_sessions(
    directory: Path | str | None = None,
    *,
    on_error: Callable[[Path, Exception], None] | None = None,
) -> list[SessionInfo]:
    """Every ``*.jsonl`` and ``*.jsonl.__partial__`` file in ``directory``, oldest first.

    ``directory`` defaults to :func:`sessionwal.sessions_dir`; a directory that
    does not exist holds no sessions. Sorted by ``created_at`` (then id, then
    path). A file that cannot be read or is out of shape is skipped with a
    logged warning, or handed to ``on_error(path, exception)`` when given.
    Chunk payloads are not parsed (see :func:`sessionwal.scan.summarize`):
    use ``sessionwal verify`` to check them.
    """
    where = (
        files.SessionsDir(Path(directory)) if directory is not None else files.SessionsDir.default()
    )
    report = on_error if on_error is not None else _warn
    infos = []
    listed = files.locked_inodes()  # one snapshot of the locks for the whole listing
    for path in where.session_paths():
        try:
            # A directory is not a session; a link, FIFO or device is
            # reported (the reader refuses it), never followed or read.
            if stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            infos.append(session_info(path, listed=listed))
        except (OSError, PersistenceError) as exc:
            report(path, exc)
    infos.sort(key=lambda info: (info.created_at, info.id, str(info.path)))
    return infos


# ------------------------------------------------------------------ deleting


def _unlink_unless_written(path: Path) -> bool:
    """Removes ``path`` while holding its lock, so no writer is writing it meanwhile.

    Returns False when it does not exist; raises :class:`PersistenceError`
    when a writer holds it. A symlink at ``path`` is removed itself.
    """
    try:
        with files.lock_unless_written(path) as held:
            if held is None:
                return False
            if not held:
                raise PersistenceError(f"'{path}' is in flight: a writer holds its lock")
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            return True
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    # A symlink under the session's name: no writer can hold one (writers
    # refuse links), so the link itself goes; its target is never touched.
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _remove_copies(paths: list[Path]) -> list[Path]:
    """Unlinks the backups in ``paths`` (copies no writer opens); returns those removed.

    What cannot be unlinked (a directory planted under a backup's name) is
    logged and left, so one odd name never stops a delete or prune part-way.
    """
    removed = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("not removing %s: %s", path, exc)
            continue
        removed.append(path)
    return removed


def _delete_files(final: Path, *, missing_ok: bool) -> list[Path]:
    partial = files.partial_of(final)
    # The partial file first: if a writer holds it, nothing is removed.
    removed = [p for p in (partial, final) if _unlink_unless_written(p)]
    # Copies no writer opens: repair's, and the earlier sessions of this id
    # that later closes kept aside.
    removed += _remove_copies(files.backups_of(partial) + files.earlier_sessions_of(final))
    if not removed and not missing_ok:
        raise FileNotFoundError(errno.ENOENT, "no session file", str(final))
    return removed


def delete_session(
    session_id: object = None, *, path: Path | str | None = None, missing_ok: bool = False
) -> list[Path]:
    """Removes every file of a session: final, ``__partial__``, repair backups, and
    the earlier sessions of that id kept as ``<id>.jsonl.~N~`` by later closes.

    Refuses (:class:`PersistenceError`, nothing removed) while a writer holds
    the partial file. Returns the paths removed; raises ``FileNotFoundError``
    when there was none, unless ``missing_ok``.
    """
    final = files.final_of(files.candidates(session_id, path=path)[0])
    return _delete_files(final, missing_ok=missing_ok)


def prune_sessions(
    older_than: timedelta,
    *,
    directory: Path | str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[Path]:
    """Deletes the sessions created more than ``older_than`` before ``now``.

    Looks at what :func:`list_sessions` lists (unreadable files are left
    alone: their age is unknown). Sessions in flight are never pruned; closed
    and crashed ones are, with their repair backups and, for a closed one,
    the earlier (older) sessions of its id kept as ``<id>.jsonl.~N~``.
    Returns the paths removed (or that would be, with ``dry_run``).
    """
    cutoff = (now if now is not None else datetime.now(UTC)) - older_than
    removed: list[Path] = []
    for info in list_sessions(directory):
        if info.state is SessionState.IN_FLIGHT or info.created_at >= cutoff:
            continue
        # Only this file (the final and the partial file of one id are listed,
        # and aged, separately) and the backups repair kept under its name.
        backups = files.backups_of(files.partial_of(info.path))
        if not files.is_partial(info.path):
            backups += files.earlier_sessions_of(info.path)
        if dry_run:
            removed += [info.path, *backups]
            continue
        try:
            if _unlink_unless_written(info.path):
                removed.append(info.path)
        except (PersistenceError, OSError) as exc:
            # A writer reopened it since it was listed (it is in flight now),
            # or the name was swapped for a link or a FIFO: leave it, go on.
            logger.warning("not pruning %s: %s", info.path, exc)
            continue
        removed += _remove_copies(backups)
    return removed
