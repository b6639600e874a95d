"""``AsyncSessionWriter``: the session WAL for asyncio code, with no thread hop per chunk.

``awrite_chunk`` encodes the record natively while it is called and appends
the bytes to the writer's bounded in-memory queue; a small fixed pool of
native I/O threads shared by every writer of the process (they never take
the GIL) writes whatever has piled up in a writer with a single ``write(2)``
per turn. The event loop therefore never waits on the disk, and the common
case (room in the queue) costs about what encoding costs.

Acknowledgement: awaiting ``awrite_chunk`` / ``awrite_chunks`` means the
record is *queued*: encoded, ordered, and going to be written unless a
write fails first. ``await flush()`` means everything queued before it
reached the OS (it survives ``kill -9``, like a returned ``write_chunk`` of
the synchronous writer); ``await aclose()`` means the trailer is written and
the file renamed (and, unless ``sync="never"``, on disk). With
``sync="always"`` each awaited ``awrite_chunk`` is itself durable: it
returns only once its record was fdatasync'ed (records of concurrent tasks
share one write and one fdatasync). A failed write latches: every later
call, ``flush`` and ``aclose`` raise it, and nothing queued after it lands.

The work happens when ``awrite_chunk`` is *called*, not when it is awaited:
the record takes its place in the file in call order and cancelling the
await does not withdraw it. The returned awaitable is an ``asyncio.Future``
(use ``asyncio.ensure_future`` rather than ``create_task`` to wrap it).
"""

from __future__ import annotations

import asyncio
import atexit
import warnings
import weakref
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from sessionwal._base import WriterBase, check_sync_mode
from sessionwal._native import (
    NativeAsyncWriter,
    NativeDoorbell,
    drain_io,
    io_threads,
    set_io_threads,
)
from sessionwal.errors import PersistenceError

__all__ = [
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_CHUNKS",
    "AsyncSessionWriter",
    "io_threads",
    "set_io_threads",
]

DEFAULT_MAX_QUEUED_CHUNKS = 8192
DEFAULT_MAX_QUEUED_BYTES = 8 << 20
_NEVER = 2**64 - 1  # "no threshold" for the native _arm


class AsyncSessionWriter(WriterBase, NativeAsyncWriter):
    """Append-only JSONL WAL writer for one session, for asyncio.

    Same file, bytes, paths, hooks and ``sync`` modes as
    :class:`sessionwal.SessionWriter`. Construct it inside a running event
    loop (it belongs to that loop): the constructor opens the file and
    writes the header before it returns, as the synchronous writer does.

    ``max_queued_chunks`` / ``max_queued_bytes`` bound what is queued but
    not yet written; when either is reached, ``awrite_chunk`` waits for
    room. A record larger than the byte bound still goes through, alone.
    """

    def __init__(
        self,
        session: Any,
        *,
        sandbox_handle_id: str | None = None,
        path: Path | str | None = None,
        sync: str = "close",
        sync_interval: float = 1.0,
        max_queued_chunks: int = DEFAULT_MAX_QUEUED_CHUNKS,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ) -> None:
        check_sync_mode(sync, sync_interval)
        if max_queued_chunks < 1 or max_queued_bytes < 1:
            raise ValueError("max_queued_chunks and max_queued_bytes must be at least 1")
        self._loop = asyncio.get_running_loop()
        self._bell: _LoopBell | None = None
        self._token = 0
        self._session = session
        self._final_path, self._partial_path = self._resolve_paths(session, path)
        self._admit_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._written_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._finished: asyncio.Future[None] | None = None
        self._close_error_raised = False
        custom_builder = None if self._uses_default_chunk_builder() else self.build_chunk_record
        try:
            self._open(self._partial_path, self._final_path, sync, sync_interval, custom_builder)
        except PersistenceError as refused:
            raise self._refused(refused)  # noqa: B904 - _refused sets the cause
        try:
            header = self.build_header(session, sandbox_handle_id=sandbox_handle_id)
            ready = self._loop.create_future()
            ready.set_result(None)
            bell = _LoopBell.of(self._loop)
            bounds = (max_queued_chunks, max_queued_bytes)
            self._token = self._start(header, self._loop, ready, bell.native, bounds)
            self._bell = bell
            # The header's ticket: a writer whose last ticket is still this
            # one has been given no chunk (see __enter__).
            self._header_ticket = self._last_ticket()
        except BaseException:
            self._release_unstarted()
            raise

    # awrite_chunk(index, row) and awrite_chunks(items) are native methods
    # of NativeAsyncWriter; they call back into _wait_* only when the caller
    # has to wait.

    async def flush(self) -> None:
        """Wait until everything queued so far reached the OS (the disk under ``sync="always"``)."""
        self._check_loop()
        if self.closed:
            self._raise_closed()
        ticket = self._last_ticket()
        if ticket:
            await self._wait_written(ticket)

    async def aclose(self) -> None:
        """Write what is queued, then the trailer; sync per ``sync``; rename to :attr:`path`.

        Idempotent. Raises a latched write failure (once); the partial file
        then stays, without a trailer.
        """
        self._check_loop()
        # Sealed first: build_trailer is Python and could let another call in.
        if self._seal():
            try:
                trailer = self.build_trailer(self._session, final_chunk_count=self.chunks_submitted)
            except BaseException:
                self._finish_abandon()
                self._watch_finish()
                raise
            try:
                self._finish_close(trailer)
            finally:
                self._watch_finish()
        await self._until_finished()
        if not self._close_error_raised:
            self._close_error_raised = True
            self._finish_result()

    async def abandon(self) -> None:
        """Write what is queued, then release the file without a trailer or rename.

        The ``__partial__`` file stays. Never raises a write failure.
        """
        self._check_loop()
        self._finish_abandon()  # a no-op once aclose() queued its close
        self._watch_finish()
        await self._until_finished()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            await self.abandon()

    def __enter__(self) -> NoReturn:
        # `with AsyncSessionWriter(...)` leaves nobody to close the writer it
        # opened: release it now (as abandon() does) rather than leak it. A
        # writer already given chunks is someone's: refuse, touch nothing.
        if self._last_ticket() == self._header_ticket:
            self._finish_abandon()
        raise TypeError("AsyncSessionWriter is an async context manager: use 'async with'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ refuses
        raise TypeError("AsyncSessionWriter is an async context manager: use 'async with'")

    def __del__(self) -> None:
        # Like an unclosed file or transport: the native side still writes
        # what was queued and releases the file (abandon); say so. No
        # source=self: a kept warning record would keep the writer alive.
        try:
            unclosed = self._bell is not None and not self.closed
        except Exception:  # a forked child's inherited writer: nothing to report
            return
        if unclosed:
            warnings.warn(
                f"unclosed AsyncSessionWriter({self._final_path}): its queue is written and "
                "the partial file released without a trailer; await aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------ internals
    #
    # Waiting works on tickets: every submission gets the next one, and the
    # native side reports the highest admitted and written tickets. Waiters
    # sit in two deques in ticket order; an I/O thread rings the loop's
    # doorbell only when the loop armed the writer for the head of a deque
    # (or for finishing). Only an armed writer is referenced by its loop's
    # doorbell, so a writer nobody awaits is freed like any object.

    def _wait_admitted(self, ticket: int) -> asyncio.Future[None]:
        return self._add_waiter(self._admit_waiters, ticket)

    def _wait_written(self, ticket: int) -> asyncio.Future[None]:
        return self._add_waiter(self._written_waiters, ticket)

    def _add_waiter(
        self, waiters: deque[tuple[int, asyncio.Future[None]]], ticket: int
    ) -> asyncio.Future[None]:
        future = self._loop.create_future()
        waiters.append((ticket, future))
        self._rearm()
        return future

    def _watch_finish(self) -> None:
        if self._finished is None:
            self._finished = self._loop.create_future()
            self._rearm()

    async def _until_finished(self) -> None:
        self._watch_finish()
        assert self._finished is not None
        # Shielded: a cancelled closer must not cancel the shared future.
        await asyncio.shield(self._finished)

    def _on_event(self) -> None:
        self._settle()
        self._rearm()

    def _rearm(self) -> None:
        assert self._bell is not None
        armed = self._bell.armed
        while True:
            admit_at = self._admit_waiters[0][0] if self._admit_waiters else _NEVER
            written_at = self._written_waiters[0][0] if self._written_waiters else _NEVER
            finish = self._finished is not None and not self._finished.done()
            if admit_at == _NEVER and written_at == _NEVER and not finish:
                armed.pop(self._token, None)
                return
            armed[self._token] = self
            if not self._arm(admit_at, written_at, finish):
                return
            self._settle()

    def _settle(self) -> None:
        admitted, written, failed, finished = self._poll()
        _resolve(self._admit_waiters, admitted)
        _resolve(self._written_waiters, written)
        if failed:
            for waiters in (self._admit_waiters, self._written_waiters):
                while waiters:
                    _, future = waiters.popleft()
                    if not future.done():
                        future.set_exception(self._latched_failure())
                        # The failure is latched and raised by every later call and by
                        # aclose(); an unawaited future need not log it once more.
                        future.exception()
        if finished and self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _latched_failure(self) -> BaseException:
        """A fresh exception for the latched failure, so each awaiter gets its own traceback."""
        failure = self._failure()
        if failure is None:  # only called after _poll reported the failure, which stays latched
            raise RuntimeError("AsyncSessionWriter: no latched failure to report")
        return failure

    def _raise_closed(self) -> NoReturn:
        raise RuntimeError(
            f"SessionWriter({self._final_path}) is closed; cannot append more chunks"
        )


class _LoopBell:
    """One event loop's doorbell: the descriptor it watches for all its writers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.native = NativeDoorbell()
        # token -> writer, only while the writer waits for a ring.
        self.armed: dict[int, AsyncSessionWriter] = {}
        loop.add_reader(self.native.fd, self._on_ring)

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _LoopBell:
        bell = _BELLS.get(loop)
        if bell is None:
            bell = _BELLS[loop] = cls(loop)
        return bell

    def _on_ring(self) -> None:
        for token in self.native.take():
            writer = self.armed.get(token)
            if writer is not None:
                writer._on_event()


# Weak on the loop: a closed loop that is gone frees its doorbell (writers
# still open keep the descriptor alive natively).
_BELLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBell] = (
    weakref.WeakKeyDictionary()
)

# At a normal interpreter exit (return, sys.exit, an unhandled exception),
# every record queued so far reaches the OS before the process ends: the I/O
# threads would otherwise be cut off mid-write. os._exit and signals skip it.
atexit.register(drain_io)


def _resolve(waiters: deque[tuple[int, asyncio.Future[None]]], reached: int) -> None:
    while waiters and waiters[0][0] <= reached:
        _, future = waiters.popleft()
        if not future.done():
            future.set_result(None)
