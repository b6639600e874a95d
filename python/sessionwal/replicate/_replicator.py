"""The replicator: ships every session file under a directory to an object store.

One *pass* looks at the session files (all of them, or those the watcher
saw change), and for each session id:

- a final file (``<id>.jsonl``, closed) goes up as one ``closed`` object,
  into the generation whose live segments it extends (then those segments
  are deleted: consolidation), else into a new generation;
- a partial file (``<id>.jsonl.__partial__``, open) ships its complete lines
  past the last shipped offset as one new live segment, after checking that
  the bytes just before that offset are still the ones shipped; when they
  are not, the file starts a new generation from offset 0.

What was shipped is known only from the store (one listing at start, then
our own puts), so a ``kill -9`` at any point and a rerun leave no gap and no
duplicate. A file whose ``stat`` did not change since a pass left it fully
shipped is not opened again. Files are opened read-only, never locked, and
closed before the pass ends.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sessionwal import _native, files, records
from sessionwal.errors import PersistenceError
from sessionwal.replicate._layout import (
    BOUNDARY_WINDOW,
    Catalog,
    ClosedObject,
    Generation,
    LiveSegment,
    RemoteSession,
    boundary_digest,
    closed_key,
    live_key,
)
from sessionwal.replicate._store import (
    MULTIPART_THRESHOLD,
    ObjectStoreClient,
    StoreError,
    StoreMisconfigured,
)
from sessionwal.replicate._watch import Watcher

__all__ = ["PassResult", "Replicator", "Shipped", "Unshipped"]

logger = logging.getLogger("sessionwal.replicate")

#: A live segment holds at most this many bytes (more only for one longer line).
SEGMENT_MAX = 8 * 1024 * 1024
#: A file changed more recently than this is not taken as settled (see _settle).
_RACY_NS = 1_000_000_000
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0


@dataclass(frozen=True, slots=True)
class Shipped:
    """One object that reached the store (given to ``on_shipped``)."""

    session_id: str
    kind: str  # "live" or "closed"
    generation: int
    start: int
    end: int
    key: str


@dataclass(frozen=True, slots=True)
class Unshipped:
    """A session whose bytes did not all reach the store, and why."""

    session_id: str
    path: Path
    reason: str
    #: True when the local file could not be read (the store is not to blame).
    local: bool = False

    def __str__(self) -> str:
        return f"{self.session_id} ({self.path.name}): {self.reason}"


@dataclass(slots=True)
class PassResult:
    sessions: int = 0
    objects: int = 0
    unshipped: list[Unshipped] = field(default_factory=list)
    #: The first store error of the pass, if any.
    error: StoreError | None = None

    @property
    def ok(self) -> bool:
        return not self.unshipped and self.error is None


@dataclass(slots=True)
class Stats:
    """Bytes and objects sent, live shipping and consolidation counted apart."""

    live_objects: int = 0
    live_bytes: int = 0
    closed_objects: int = 0
    closed_bytes: int = 0
    deleted_objects: int = 0


@dataclass(slots=True)
class _LocalFiles:
    final: Path | None = None
    partial: Path | None = None


def _session_files(directory: Path, names: set[str] | None) -> dict[str, _LocalFiles]:
    """Session files in ``directory`` by id (only the ids ``names`` touch, when given)."""
    where = files.SessionsDir(directory)
    if names is None:
        found_paths = where.session_paths()
    else:
        found_paths = []
        for session_id in {files.session_id_of(n) for n in names if files.is_session_name(n)}:
            try:
                for path in (where.final(session_id), where.partial(session_id)):
                    if os.path.lexists(path):
                        found_paths.append(path)
            except ValueError:
                continue  # not a name a writer could have made
    found: dict[str, _LocalFiles] = {}
    for path in found_paths:
        local = found.setdefault(files.session_id_of(path), _LocalFiles())
        if files.is_partial(path):
            local.partial = path
        else:
            local.final = path
    return found


# ---------------------------------------------------------------- reading files


def _open_for_reading(path: Path) -> int | None:
    """A read-only descriptor by the session-file layer's rules, or None if the file is gone.

    A link or a FIFO at a session name raises (``OSError`` / ``PersistenceError``):
    the pass reports it as not shipped rather than passing over it in silence.
    """
    try:
        return files.open_regular_fd(path)
    except FileNotFoundError:
        return None


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``; fewer only at end of file."""
    pieces = []
    while size > 0:
        piece = os.pread(fd, size, offset)
        if not piece:
            break
        pieces.append(piece)
        size -= len(piece)
        offset += len(piece)
    return b"".join(pieces)


def _digest_before(fd: int, start: int, end: int) -> str | None:
    """The boundary digest of bytes ``[start, end)`` of the file, None if it is shorter."""
    window_start = max(start, end - BOUNDARY_WINDOW)
    window = _pread(fd, end - window_start, window_start)
    if len(window) != end - window_start:
        return None
    return boundary_digest(window)


def _next_piece(fd: int, start: int, size: int) -> bytes | None:
    """The complete lines from ``start`` (at most ``SEGMENT_MAX`` bytes, or one longer line)."""
    data = _pread(fd, min(size - start, SEGMENT_MAX), start)
    cut = data.rfind(b"\n")
    while cut < 0 and start + len(data) < size:
        more = _pread(fd, min(size - start - len(data), SEGMENT_MAX), start + len(data))
        if not more:
            break
        newline = more.find(b"\n")
        if newline >= 0:
            cut = len(data) + newline
        data += more
    if cut < 0:
        return None
    return data[: cut + 1]


def _first_line(fd: int) -> bytes:
    """The file's first line with its newline (its header), or b"" if it has none."""
    data = b""
    while True:
        more = _pread(fd, BOUNDARY_WINDOW, len(data))
        newline = more.find(b"\n")
        if newline >= 0:
            return data + more[: newline + 1]
        if not more or len(data) > records.max_line_bytes():
            return b""
        data += more


def _valid_part(fd: int, start: int, data: bytes) -> bytes:
    """The longest prefix of ``data`` (complete lines read from ``start``) that the
    recovery rule (:func:`sessionwal.records.valid_log`) accepts as the continuation
    of the file's valid log, so a NUL hole, garbage or records beyond them left
    by a power loss are never shipped. Only the new lines are read, behind the
    header for context (a file whose shipped part ended with a trailer is the
    one case the context misses: it is a crashed close, whose next valid line is
    a reopen's header anyway)."""
    context = b"" if start == 0 else _first_line(fd)
    if start and not context:
        return b""
    end = _native.recover(context + data, max_line=records.max_line_bytes())["end"]
    return data[: max(0, end - len(context))]


def _complete_length(fd: int, size: int) -> int:
    """Offset just past the file's last newline (0 when it has none)."""
    end = size
    while end > 0:
        start = max(0, end - BOUNDARY_WINDOW)
        block = _pread(fd, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _parts(fd: int, length: int) -> Iterator[bytes]:
    offset = 0
    while offset < length:
        piece = _pread(fd, min(MULTIPART_THRESHOLD, length - offset), offset)
        if not piece:
            raise OSError(errno.EIO, "session file shrank while it was being shipped")
        offset += len(piece)
        yield piece


# ---------------------------------------------------------------- the replicator


class Replicator:
    """Ships the sessions under ``directory`` to the store at ``url``.

    Use :meth:`ship_once` for one catch-up (``--once``), :meth:`run` to
    replicate until :meth:`stop`, or :meth:`start` for a background thread
    inside a runtime process.

    - ``directory``: the sessions directory (default ``$SESSIONWAL_HOME/sessions``);
    - ``interval``: seconds between passes while files change;
    - ``workers``: sessions shipped at once (threads);
    - ``use_inotify``: False polls every ``interval`` instead;
    - ``rescan``: with inotify, seconds between full rescans all the same;
    - ``timeout``: seconds one store request may take (retries included);
    - ``on_shipped``: called (from worker threads) with a :class:`Shipped`
      for every object put;
    - ``client``: an :class:`ObjectStoreClient` to use instead of one for ``url``.
    """

    def __init__(
        self,
        url: str,
        directory: Path | str | None = None,
        *,
        interval: float = 1.0,
        workers: int = 16,
        use_inotify: bool = True,
        rescan: float = 30.0,
        timeout: float = 10.0,
        on_shipped: Callable[[Shipped], None] | None = None,
        client: ObjectStoreClient | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else files.sessions_dir()
        self.interval = interval
        self.client = client if client is not None else ObjectStoreClient(url, timeout=timeout)
        self.stats = Stats()
        self._workers = workers
        self._use_inotify = use_inotify
        self._rescan = rescan
        self._on_shipped = on_shipped
        self._catalog: Catalog | None = None
        #: stat of files a pass left fully shipped: unchanged means nothing to do.
        self._settled: dict[Path, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: Watcher | None = None
        self._thread: threading.Thread | None = None
        #: The store error that made :meth:`ship_once` give up, if one did.
        self.last_error: StoreError | None = None

    # ------------------------------------------------------------ control

    def stop(self, timeout: float | None = None) -> None:
        """Asks the replicator to stop after the object in flight; joins its thread if any.

        A stopped replicator stays stopped (its passes ship nothing): make a
        new one to ship again; it picks up from the store's listing.
        """
        self._stop.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> threading.Thread:
        """Runs :meth:`run` in a daemon thread (call :meth:`stop` to end it)."""
        self._thread = threading.Thread(target=self.run, name="sessionwal-replicate", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        """Replicates until :meth:`stop`: a pass at most every ``interval`` seconds
        while files change, backing off (capped, exponential) while the store fails."""
        files.make_private_dirs(self.directory)
        watcher = self._watcher = Watcher(
            str(self.directory), use_inotify=self._use_inotify, rescan=self._rescan
        )
        if self._stop.is_set():
            watcher.wake()
        logger.info(
            "replicating %s to %s every %ss (%s)",
            self.directory,
            self.client.display,
            self.interval,
            "inotify" if watcher.uses_inotify else "polling",
        )
        backoff = _BACKOFF_FIRST
        failing = False
        reported_unreadable: set[Path] = set()
        not_before = time.monotonic()
        try:
            while not self._stop.is_set():
                names = watcher.wait(not_before)
                if self._stop.is_set():
                    break
                started = time.monotonic()
                result = self.run_pass(names)
                unreadable = {u.path: u.reason for u in result.unshipped if u.local}
                if unreadable.keys() != reported_unreadable:
                    for path, reason in unreadable.items():
                        if path not in reported_unreadable:
                            logger.warning("not shipped: %s", reason)
                    reported_unreadable = set(unreadable)
                if result.error is None or self._stop.is_set():
                    # A file we cannot read is retried every pass; it slows nobody else down.
                    if failing:
                        logger.warning("store %s reachable again; caught up", self.client.display)
                    failing = False
                    backoff = _BACKOFF_FIRST
                    not_before = started + self.interval
                    continue
                watcher.mark_all()
                logger.warning(
                    "%d session(s) not shipped: %s; retrying in %.1f s",
                    sum(1 for u in result.unshipped if not u.local),
                    result.error,
                    backoff,
                )
                failing = True
                not_before = time.monotonic() + backoff
                backoff = min(backoff * 2, _BACKOFF_CAP)
        finally:
            self._watcher = None
            watcher.close()

    def ship_once(self, give_up_after: float = 30.0) -> list[Unshipped]:
        """Ships everything there is now; retries (backing off) up to ``give_up_after`` s.

        Returns what was still not shipped then (empty when all was).
        Raises :class:`StoreMisconfigured` at once: retrying would not help.
        """
        deadline = time.monotonic() + give_up_after
        backoff = _BACKOFF_FIRST
        while True:
            result = self.run_pass(None)
            if result.ok:
                return []
            if isinstance(result.error, StoreMisconfigured):
                raise result.error
            if result.error is None:
                return result.unshipped  # only files we cannot read: retrying will not help
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                self.last_error = result.error
                return result.unshipped
            logger.warning("store not reachable (%s); retrying in %.1f s", result.error, backoff)
            if self._stop.wait(min(backoff, remaining)):
                return result.unshipped
            backoff = min(backoff * 2, _BACKOFF_CAP)

    # ------------------------------------------------------------ one pass

    def run_pass(self, names: set[str] | None = None) -> PassResult:
        """One pass over every session file (or those ``names`` cover)."""
        result = PassResult()
        if self._catalog is None:
            try:
                self._catalog = Catalog.from_listing(self.client.list())
            except StoreError as exc:
                # Nothing can be shipped without knowing what the store holds.
                result.error = exc
                for session_id, local_files in sorted(_session_files(self.directory, None).items()):
                    path = local_files.partial or local_files.final
                    assert path is not None
                    result.unshipped.append(Unshipped(session_id, path, "store not listed"))
                return result
            for remote in self._catalog.values():
                try:
                    self._remove_consolidated_pieces(remote)
                except StoreError as exc:
                    # Harmless to leave (readers take the closed object); tried again
                    # when the session's file is next looked at or at the next start.
                    logger.warning("could not remove consolidated segments: %s", exc)
                    break
            names = None
        catalog = self._catalog
        local = _session_files(self.directory, names)
        if names is None:
            present = {p for found in local.values() for p in (found.final, found.partial) if p}
            for path in list(self._settled):
                if path not in present:
                    del self._settled[path]
        result.sessions = len(local)

        def sync(session_id: str) -> None:
            found = local[session_id]
            remote = catalog.session(session_id)
            for path, closed in ((found.final, True), (found.partial, False)):
                if path is None or self._stop.is_set():
                    continue
                try:
                    shipped = (
                        self._sync_closed(remote, path) if closed else self._sync_open(remote, path)
                    )
                except StoreError as exc:
                    with self._lock:
                        result.error = result.error or exc
                        result.unshipped.append(Unshipped(session_id, path, str(exc)))
                    return
                except (OSError, PersistenceError) as exc:
                    with self._lock:
                        result.unshipped.append(
                            Unshipped(session_id, path, f"cannot read: {exc}", local=True)
                        )
                    continue
                with self._lock:
                    result.objects += shipped

        order = sorted(local)
        if self._workers <= 1 or len(order) <= 1:
            for session_id in order:
                sync(session_id)
        else:
            with ThreadPoolExecutor(self._workers, thread_name_prefix="sessionwal-ship") as pool:
                for future in [pool.submit(sync, session_id) for session_id in order]:
                    future.result()
        return result

    def _ship(self, shipped: Shipped, nbytes: int) -> None:
        with self._lock:
            if shipped.kind == "live":
                self.stats.live_objects += 1
                self.stats.live_bytes += nbytes
            else:
                self.stats.closed_objects += 1
                self.stats.closed_bytes += nbytes
        if self._on_shipped is not None:
            self._on_shipped(shipped)

    def _settle(self, path: Path, st: os.stat_result) -> None:
        """Remembers that ``path``, as ``st`` describes it, is fully shipped.

        Not when it changed within the last ``_RACY_NS``: file times come from
        a coarse clock, so a same-size rewrite in the same tick as the change we
        saw would look unchanged (git's "racily clean" entries). Such a file is
        checked again next pass, which costs one read of its boundary window.
        """
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            self._settled[path] = _stat_key(st)
        else:
            self._settled.pop(path, None)

    def _open_unless_settled(self, path: Path) -> int | None:
        """A descriptor for reading ``path``, or ``None`` when it is gone or,
        by its stat, unchanged since :meth:`_settle` saw it fully shipped."""
        try:
            key = _stat_key(os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            return None
        if self._settled.get(path) == key:
            return None
        return _open_for_reading(path)

    def _boundary_holds(self, fd: int, generation: Generation, limit: int) -> bool:
        """True when the file still holds, before the generation's last shipped offset,
        the bytes that were shipped there (checked by digest, never by size)."""
        run = generation.contiguous()
        if not run:
            return True
        last = run[-1]
        return last.end <= limit and _digest_before(fd, last.start, last.end) == last.digest

    def _sync_open(self, remote: RemoteSession, path: Path) -> int:
        """Ships an open session's new complete lines; returns the number of objects put."""
        fd = self._open_unless_settled(path)
        if fd is None:
            return 0
        objects = 0
        try:
            st = os.fstat(fd)
            size = st.st_size
            generation = remote.open_generation()
            if generation is not None and not self._boundary_holds(fd, generation, size):
                logger.warning(
                    "%s no longer holds what was shipped as generation %d; "
                    "shipping it again as a new generation",
                    path,
                    generation.number,
                )
                generation = None
            start = generation.live_end if generation is not None else 0
            while start < size and not self._stop.is_set():
                data = _next_piece(fd, start, size)
                if data is not None and files.is_partial(path):
                    data = _valid_part(fd, start, data) or None
                if data is None:
                    break
                if generation is None:
                    generation = remote.generation(remote.next_number())
                end = start + len(data)
                digest = boundary_digest(data[-BOUNDARY_WINDOW:])
                object_key = live_key(remote.session_id, generation.number, start, end, digest)
                self.client.put(object_key, data)
                generation.segments.append(LiveSegment(object_key, start, end, digest))
                objects += 1
                self._ship(
                    Shipped(remote.session_id, "live", generation.number, start, end, object_key),
                    len(data),
                )
                start = end
            if not self._stop.is_set():
                self._settle(path, st)
        finally:
            os.close(fd)
        return objects

    def _sync_closed(self, remote: RemoteSession, path: Path) -> int:
        """Ships a closed session as one object (consolidating its live segments)."""
        fd = self._open_unless_settled(path)
        if fd is None:
            return 0
        try:
            st = os.fstat(fd)
            length = _complete_length(fd, st.st_size)
            if length == 0:
                self._settle(path, st)
                return 0
            digest = _digest_before(fd, 0, length)
            assert digest is not None
            for earlier in remote.generations.values():
                closed = earlier.closed
                if closed is not None and closed.size == length and closed.digest == digest:
                    self._remove_consolidated_pieces(remote)
                    self._settle(path, st)
                    return 0
            generation: Generation | None = remote.open_generation()
            if generation is not None and not self._boundary_holds(fd, generation, length):
                generation = None
            if generation is None:
                generation = remote.generation(remote.next_number())
            object_key = closed_key(remote.session_id, generation.number, digest)
            if length <= MULTIPART_THRESHOLD:
                self.client.put(object_key, _pread(fd, length, 0))
            else:
                self.client.put(object_key, _parts(fd, length))
            generation.closed = ClosedObject(object_key, length, digest)
            self._ship(
                Shipped(remote.session_id, "closed", generation.number, 0, length, object_key),
                length,
            )
            self._remove_consolidated_pieces(remote)
            self._settle(path, st)
            return 1
        finally:
            os.close(fd)

    def _remove_consolidated_pieces(self, remote: RemoteSession) -> None:
        """Deletes the live segments of generations that have their closed object."""
        for generation in remote.generations.values():
            if generation.closed is None or not generation.segments:
                continue
            keys = [segment.key for segment in generation.segments]
            self.client.delete(keys)
            generation.segments.clear()
            with self._lock:
                self.stats.deleted_objects += len(keys)
