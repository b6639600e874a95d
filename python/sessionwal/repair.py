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
3. copy the original bytes (holes stay holes) to a temporary name, fsync
   it, and only then give it the backup name ``<partial>.bak`` (``.bak.1``,
   ... if taken) without replacing anything, and fsync the directory: a
   ``.bak`` is always complete;
4. cut the crash tail (everything after the valid log: a torn line, NUL
   bytes left by power loss, garbage, and any record beyond), append a trailer
   ``{"record_type": "trailer", "closed_at": <now>, "final_chunk_count": N,
   "cumulative_usage": null, "recovered": true}`` (N = complete chunk records;
   the usage is unknown) unless the file already ends with a trailer (a crash
   between the trailer and the rename), and fsync;
5. if a closed session of the same id is under the final name (the id was
   closed, reopened, then crashed), keep it as ``<id>.jsonl.~N~``, as a
   writer's close does; install the repaired file under the final name
   without replacing anything (a hard link that fails if the name exists,
   then the partial name goes) and fsync the directory; then release the lock.

The file is read a line at a time (memory bounded by the readers' line
limit, never the file's size).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sessionwal import files
from sessionwal.errors import PersistenceError, RepairRefused, SessionFormatError
from sessionwal.files import BACKUP_SUFFIX
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
    #: Where an earlier closed session of the same id was kept (``<final>.~N~``).
    earlier: Path | None = None
    #: The kind of the crash tail cut (see :data:`sessionwal.records.TAIL_KINDS`), or None.
    tail: str | None = None


_COPY_STEP = 1 << 20


def _copy_sparse(src: int, dst: int, size: int) -> None:
    """Copies the first ``size`` bytes of ``src`` to ``dst``, holes as holes."""
    offset = 0
    while offset < size:
        try:
            data_at = os.lseek(src, offset, os.SEEK_DATA)
            hole_at = min(os.lseek(src, data_at, os.SEEK_HOLE), size)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            data_at, hole_at = offset, size  # no SEEK_DATA here: copy it all
        while data_at < hole_at:
            block = os.pread(src, min(_COPY_STEP, hole_at - data_at), data_at)
            if not block:
                raise OSError(errno.EIO, "the file shrank while copying it")
            view = memoryview(block)
            while view:
                written = os.pwrite(dst, view, data_at)
                view = view[written:]
                data_at += written
        offset = hole_at
    os.ftruncate(dst, size)


def _write_backup(partial: Path, fd: int, size: int) -> Path:
    """A complete, durable copy of the locked file beside ``partial``: written
    under a temporary name, then linked to the first free backup name."""
    # One name: repair holds the session's lock, so no other repair of it
    # runs; one left by a repair that died is ours to replace. No longer
    # than the last backup name, so every id that is valid fits it.
    temporary = partial.with_name(partial.name + BACKUP_SUFFIX + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(temporary, flags, 0o600)
    try:
        try:
            _copy_sparse(fd, out, size)
            os.fsync(out)
        finally:
            os.close(out)
        for n in range(1000):
            backup = files.backup_name(partial, n)
            try:
                os.link(temporary, backup, follow_symlinks=False)
            except FileExistsError:
                continue
            files.fsync_dir(partial.parent)
            return backup
    finally:
        os.unlink(temporary)
    raise PersistenceError(f"no free backup name beside '{partial}' (.bak to .bak.999 exist)")


def _install(partial: Path, final: Path, backup: Path) -> None:
    """``partial`` renamed to ``final`` unless ``final`` exists (never replaced):
    a hard link fails on an existing name. Where the file system has no hard
    links, a check then a rename, as the writer's last resort (docs/safety.md)."""
    refused = RepairRefused(
        f"'{final}' appeared while repairing; not replacing it (the repaired file "
        f"stays at '{partial}', its original bytes in '{backup}')"
    )
    try:
        os.link(partial, final, follow_symlinks=False)
    except FileExistsError:
        raise refused from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS):
            raise
        if os.path.lexists(final):
            raise refused from None
        os.rename(partial, final)
        return
    os.unlink(partial)


def _check(path: Path, fd: int) -> tuple[ValidLog, int, int]:
    """(the valid log, its chunk records, those since the last header), or the
    loader's error, reading the log a line at a time (the tail is never read).
    The recovered trailer counts like a writer's would: since the last header
    (a reopened session has several)."""
    log = valid_log(path, fd)
    structure = Structure(path)
    with open(fd, "rb", closefd=False) as file:
        for line, raw in iter_lines(file, path=path, end=log.end):
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
    fd = files.open_regular_fd(partial, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not files.lock_for_writing(fd, patience=0):
            raise RepairRefused(
                f"'{partial}' is in flight: a writer holds its lock", in_flight=True
            )
        if not files.same_file(fd, partial):
            # Its writer closed it (renamed it away) between our open and lock.
            raise RepairRefused(f"'{partial}' was renamed or removed while opening it")
        try:
            log, chunk_count, segment_chunks = _check(partial, fd)
        except SessionFormatError as exc:
            raise RepairRefused(f"not repairing a corrupt file: {exc}") from None
        size = log.size
        complete = log.end
        has_trailer = log.trailer_at is not None
        backup = _write_backup(partial, fd, size)
        os.ftruncate(fd, complete)
        if not has_trailer:
            line = json.dumps(build_recovered_trailer(segment_chunks), ensure_ascii=False) + "\n"
            encoded = line.encode("utf-8")
            if os.pwrite(fd, encoded, complete) != len(encoded):
                raise OSError(errno.EIO, "short write of the recovered trailer", str(partial))
        os.fsync(fd)
        # An earlier closed session of this id (the id was closed, reopened,
        # then crashed) is kept aside as <final>.~N~, as a writer's close does.
        earlier = files.keep_earlier_session(final)
        _install(partial, final, backup)
        files.fsync_dir(final.parent)
        return RepairResult(
            path=final,
            backup=backup,
            earlier=earlier,
            chunk_count=chunk_count,
            torn_bytes=log.tail_bytes,
            trailer_added=not has_trailer,
            tail=log.tail,
        )
    finally:
        os.close(fd)
