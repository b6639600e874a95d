"""Reading sessions back: load one, stream its records, list, delete and prune.

``load_session`` and ``iter_records`` parse every record with ``json.loads``;
``list_sessions`` uses the native scanner (see :mod:`sessionwal.scan`), which
parses only each file's header and trailer. Both apply the same rules (see
:mod:`sessionwal._format`): a torn last line is skipped, anything else out of
shape raises :class:`SessionFormatError` (a :class:`PersistenceError`) naming
``path:line[:column]``.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sessionwal import paths
from sessionwal._format import SessionFormatError, Structure, iter_lines, parse_line
from sessionwal.errors import PersistenceError
from sessionwal.model import ChunkKind, ChunkRow
from sessionwal.scan import (
    final_file_problem,
    lock_unless_written,
    summarize,
    writer_holds_lock,
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
    #: Bytes after the last newline, skipped as a torn record.
    torn_bytes: int = 0

    @property
    def id(self) -> str:
        return str(self.header.get("id"))

    @property
    def partial(self) -> bool:
        return self.path.name.endswith(paths.PARTIAL_SUFFIX)

    @property
    def recovered(self) -> bool:
        """The trailer was written by ``sessionwal repair``, not by the writer."""
        return self.trailer is not None and self.trailer.get("recovered") is True


def _candidates(session_id: object, path: Path | str | None) -> list[Path]:
    if (session_id is None) == (path is None):
        raise TypeError("pass either a session id or path=, not both")
    if path is not None:
        path = Path(path)
        if path.name.endswith(paths.PARTIAL_SUFFIX):
            return [path]
        return [path, path.with_name(path.name + paths.PARTIAL_SUFFIX)]
    return [paths.session_file(session_id), paths.session_partial_file(session_id)]


def _open_session(session_id: object, path: Path | str | None) -> tuple[Path, IO[bytes]]:
    """Opens the final file, else the partial one.

    Tries twice: a writer closing between our two opens renames the partial
    file to the final name we just found missing.
    """
    candidates = _candidates(session_id, path)
    for _ in range(2):
        for candidate in candidates:
            try:
                return candidate, open(candidate, "rb")  # the caller closes it
            except FileNotFoundError:
                continue
    looked = " or ".join(f"'{c}'" for c in candidates)
    message = f"no session file: looked for {looked}"
    raise FileNotFoundError(errno.ENOENT, message, str(candidates[0]))


def _records(
    path: Path, file: IO[bytes], torn: list[int] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    structure = Structure(path)
    for line, raw in iter_lines(file, torn):
        record = parse_line(path, line, raw)
        yield structure.feed(line, record), record
    structure.finish()


def iter_records(path: Path | str) -> Iterator[dict[str, Any]]:
    """Streams the records of the file at ``path``, one line in memory at a time.

    Yields the header, the chunks and the trailer as dicts, checking the same
    rules as :func:`load_session` as it goes (an error is raised when its
    line is reached); a torn last line is skipped.
    """
    path = Path(path)
    with open(path, "rb") as file:
        for _record_type, record in _records(path, file):
            yield record


def _chunk_row(record: dict[str, Any]) -> ChunkRow:
    kind = record.get("kind")
    if isinstance(kind, str):
        kind = _KINDS.get(kind, kind)
    return ChunkRow(kind, record.get("payload"))


def load_session(session_id: object = None, *, path: Path | str | None = None) -> PersistedSession:
    """Reads a whole session: by id from the sessions directory, or from ``path``.

    The final file (``<id>.jsonl``) is read when it exists, else the
    ``__partial__`` file beside it (a session in flight, abandoned or
    crashed). Raises ``FileNotFoundError`` when neither exists and
    :class:`SessionFormatError` for invalid JSON, a record that is not an
    object, a record without or with an unknown ``record_type``, a chunk or
    trailer before the header, a header for another session id, a record after the
    trailer, or a file without a complete header.
    """
    found, file = _open_session(session_id, path)
    header: dict[str, Any] = {}
    trailer: dict[str, Any] | None = None
    chunks: list[ChunkRow] = []
    indices: list[Any] = []
    torn: list[int] = []
    with file:
        for record_type, record in _records(found, file, torn):
            if record_type == "chunk":
                chunks.append(_chunk_row(record))
                indices.append(record.get("index"))
            elif record_type == "header" and not header:
                header = record
            else:
                trailer = record
    partial = found.name.endswith(paths.PARTIAL_SUFFIX)
    return PersistedSession(
        path=found,
        header=header,
        chunks=tuple(chunks),
        trailer=trailer,
        closed=trailer is not None and not partial,
        chunk_indices=tuple(indices),
        torn_bytes=sum(torn),
    )


# ------------------------------------------------------------------ listing


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session file as :func:`list_sessions` sees it."""

    id: str
    path: Path
    created_at: datetime
    #: Complete chunk records in the file.
    chunk_count: int
    #: Cleanly closed: final name and a trailer.
    closed: bool
    #: File size in bytes.
    size: int
    #: "closed", "in_flight" (a writer holds the lock) or "crashed" (a
    #: ``__partial__`` file nobody holds: abandoned, or its process died).
    state: str
    #: Bytes after the last newline.
    torn_bytes: int = 0
    #: Closed by ``sessionwal repair`` rather than by its writer.
    recovered: bool = False


def _created_at(path: Path, header: dict[str, Any]) -> datetime:
    value = header.get("created_at")
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    if created is None:
        raise SessionFormatError(path, 1, f"header has no ISO-8601 created_at (got {value!r})")
    # A duck-typed session may carry a naive datetime: read it as UTC so that
    # every created_at compares with every other.
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)


def session_info(path: Path | str) -> SessionInfo:
    """The :class:`SessionInfo` of one file; raises like :func:`list_sessions` logs."""
    summary = summarize(path)
    path = summary.path
    if summary.partial:
        state = "in_flight" if writer_holds_lock(path) else "crashed"
    else:
        problem = final_file_problem(summary)
        if problem is not None:
            raise PersistenceError(f"{path}: {problem}")
        state = "closed"
    session_id = summary.header.get("id")
    return SessionInfo(
        id=session_id if isinstance(session_id, str) else _id_from_name(path),
        path=path,
        created_at=_created_at(path, summary.header),
        chunk_count=summary.chunk_count,
        closed=state == "closed",
        size=summary.size,
        state=state,
        torn_bytes=summary.torn_bytes,
        recovered=summary.recovered,
    )


def _id_from_name(path: Path) -> str:
    return path.name.removesuffix(paths.PARTIAL_SUFFIX).removesuffix(".jsonl")


def _is_session_file(name: str) -> bool:
    return name.endswith((".jsonl", ".jsonl" + paths.PARTIAL_SUFFIX))


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
    directory = Path(directory) if directory is not None else paths.sessions_dir()
    report = on_error if on_error is not None else _warn
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    infos = []
    for entry in entries:
        if not _is_session_file(entry.name):
            continue
        path = Path(entry.path)
        try:
            if not entry.is_file():
                continue
            infos.append(session_info(path))
        except (OSError, PersistenceError) as exc:
            report(path, exc)
    infos.sort(key=lambda info: (info.created_at, info.id, str(info.path)))
    return infos


# ------------------------------------------------------------------ deleting


def _backups(partial: Path) -> list[Path]:
    """The copies ``repair`` kept of ``partial``: ``<partial>.bak``, ``<partial>.bak.1``, ..."""
    pattern = glob.escape(str(partial)) + ".bak*"
    return sorted(Path(p) for p in glob.glob(pattern))


def _unlink_unless_written(path: Path) -> bool:
    """Removes ``path`` while holding its lock, so no writer is writing it meanwhile.

    Returns False when it does not exist; raises :class:`PersistenceError`
    when a writer holds it.
    """
    with lock_unless_written(path) as held:
        if held is None:
            return False
        if not held:
            raise PersistenceError(f"'{path}' is in flight: a writer holds its lock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True


def _delete_files(final: Path, *, missing_ok: bool) -> list[Path]:
    partial = final.with_name(final.name + paths.PARTIAL_SUFFIX)
    # The partial file first: if a writer holds it, nothing is removed.
    removed = [p for p in (partial, final) if _unlink_unless_written(p)]
    for backup in _backups(partial):
        backup.unlink(missing_ok=True)
        removed.append(backup)
    if not removed and not missing_ok:
        raise FileNotFoundError(errno.ENOENT, "no session file", str(final))
    return removed


def delete_session(
    session_id: object = None, *, path: Path | str | None = None, missing_ok: bool = False
) -> list[Path]:
    """Removes every file of a session: final, ``__partial__``, and repair backups.

    Refuses (:class:`PersistenceError`, nothing removed) while a writer holds
    the partial file. Returns the paths removed; raises ``FileNotFoundError``
    when there was none, unless ``missing_ok``.
    """
    final = _candidates(session_id, path)[0]
    if final.name.endswith(paths.PARTIAL_SUFFIX):
        final = final.with_name(final.name.removesuffix(paths.PARTIAL_SUFFIX))
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
    and crashed ones are, with their repair backups. Returns the paths
    removed (or that would be, with ``dry_run``).
    """
    cutoff = (now if now is not None else datetime.now(UTC)) - older_than
    removed: list[Path] = []
    for info in list_sessions(directory):
        if info.state == "in_flight" or info.created_at >= cutoff:
            continue
        # Only this file (the final and the partial file of one id are listed,
        # and aged, separately) and the backups repair kept under its name.
        final = info.path.with_name(info.path.name.removesuffix(paths.PARTIAL_SUFFIX))
        backups = _backups(final.with_name(final.name + paths.PARTIAL_SUFFIX))
        if dry_run:
            removed += [info.path, *backups]
            continue
        try:
            if _unlink_unless_written(info.path):
                removed.append(info.path)
        except PersistenceError as exc:
            # A writer reopened it since it was listed: it is in flight now.
            logger.warning("not pruning %s: %s", info.path, exc)
            continue
        for backup in backups:
            backup.unlink(missing_ok=True)
            removed.append(backup)
    return removed
