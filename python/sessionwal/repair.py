"""Closing a crashed session: ``sessionwal repair``.

A crashed session is a ``__partial__`` file no writer holds: its process died
(or it was abandoned) before ``close`` wrote the trailer and renamed it.
:func:`repair_session` gives it the ending ``close`` would have, keeping
every complete record:

1. open the partial file and take its lock (refuse if a writer holds it:
   the session is in flight), and check the path still names the file locked;
2. read it and find its valid log by the recovery rule
   (:func:`sessionwal.records.valid_log`: the records up to the last
   complete, valid one in sequence); refuse a file without a header in it,
   or with a line longer than the readers' maximum;
3. write the original bytes to a backup, ``<partial>.bak`` (``.bak.1``, ...
   if taken), mode 0600, fsync it and the directory;
4. cut the crash tail (everything after the valid log: a torn line, NUL
   bytes left by power loss, garbage, and any record beyond), append a trailer
   ``{"record_type": "trailer", "closed_at": <now>, "final_chunk_count": N,
   "cumulative_usage": null, "recovered": true}`` (N = complete chunk records;
   the usage is unknown) unless the file already ends with a trailer (a crash
   between the trailer and the rename), and fsync;
5. rename it to the final name (refusing to replace an existing file) and
   fsync the directory; then release the lock.
"""

from __future__ import annotations

import errno
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sessionwal import files
from sessionwal.errors import PersistenceError, RepairRefused, SessionFormatError
from sessionwal.records import (
    Structure,
    ValidLog,
    build_recovered_trailer,
    iter_lines,
    parse_line,
    valid_log,
)

__all__ = ["RepairRefused", "RepairResult", "recovered_trailer", "repair_session"]

#: The trailer repair appends (kept under this name for callers of 0.1).
recovered_trailer = build_recovered_trailer


@dataclass(frozen=True, slots=True)
class RepairResult:
    #: The repaired session, under its final name.
    path: Path
    #: The original bytes of the partial file.
    backup: Path
    #: Complete chunk records kept.
    chunk_count: int
    #: Bytes of the crash tail that were cut (they stay in the backup).
    torn_bytes: int
    #: False when the file already ended with a trailer.
    trailer_added: bool
    #: The kind of the crash tail cut (see :data:`sessionwal.records.TAIL_KINDS`), or None.
    tail: str | None = None


def _write_backup(partial: Path, data: bytes) -> Path:
    """``data`` in a new file beside ``partial``, durable before we change anything."""
    for n in range(1000):
        backup = files.backup_name(partial, n)
        try:
            fd = os.open(
                backup,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except FileExistsError:
            continue
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        files.fsync_dir(partial.parent)
        return backup
    raise PersistenceError(f"no free backup name beside '{partial}' (.bak to .bak.999 exist)")


def _check(path: Path, data: bytes) -> tuple[ValidLog, int, int]:
    """(the valid log, its chunk records, those since the last header), or the
    loader's error. The recovered trailer counts like a writer's would: since
    the last header (a reopened session has several)."""
    log = valid_log(path, data)
    structure = Structure(path)
    for line, raw in iter_lines(io.BytesIO(data), log.end):
        structure.feed(line, parse_line(path, line, raw))
    structure.finish()
    return log, structure.chunks, structure.segment_chunks


def repair_session(path: Path | str) -> RepairResult:
    """Closes the crashed ``__partial__`` file at ``path`` (see the module doc).

    Raises :class:`RepairRefused` (``in_flight=True`` when a writer holds the
    lock) without touching anything when the file is not a partial file, is
    in flight, is corrupt, has no complete header, or its final name is
    taken; ``OSError`` when the file cannot be read or written.
    """
    partial = Path(path)
    if not files.is_partial(partial):
        raise RepairRefused(f"'{partial}' is not a {files.PARTIAL_SUFFIX} file: nothing to repair")
    final = files.final_of(partial)
    fd = os.open(partial, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not files.lock_for_writing(fd, patience=0):
            raise RepairRefused(
                f"'{partial}' is in flight: a writer holds its lock", in_flight=True
            )
        if not files.same_file(fd, partial):
            # Its writer closed it (renamed it away) between our open and lock.
            raise RepairRefused(f"'{partial}' was renamed or removed while opening it")
        with open(fd, "rb", closefd=False) as file:
            data = file.read()
        try:
            log, chunk_count, segment_chunks = _check(partial, data)
        except SessionFormatError as exc:
            raise RepairRefused(f"not repairing a corrupt file: {exc}") from None
        if final.exists():
            raise RepairRefused(f"'{final}' already exists; not replacing it")
        complete = log.end
        has_trailer = log.trailer_at is not None
        backup = _write_backup(partial, data)
        os.ftruncate(fd, complete)
        if not has_trailer:
            line = json.dumps(build_recovered_trailer(segment_chunks), ensure_ascii=False) + "\n"
            encoded = line.encode("utf-8")
            if os.pwrite(fd, encoded, complete) != len(encoded):
                raise OSError(errno.EIO, "short write of the recovered trailer", str(partial))
        os.fsync(fd)
        if final.exists():
            raise RepairRefused(
                f"'{final}' appeared while repairing; not replacing it (the repaired file "
                f"stays at '{partial}', its original bytes in '{backup}')"
            )
        os.rename(partial, final)
        files.fsync_dir(final.parent)
        return RepairResult(
            path=final,
            backup=backup,
            chunk_count=chunk_count,
            torn_bytes=log.tail_bytes,
            trailer_added=not has_trailer,
            tail=log.tail,
        )
    finally:
        os.close(fd)
