"""``AsyncSessionWriter``: the session WAL for asyncio code, with no thread hop per chunk.

``awrite_chunk`` encodes the record natively while it is called and appends
the bytes to a bounded in-memory queue; one background thread per writer
(native, it never takes the GIL) writes whatever has piled up with a single
``write(2)``. The event loop therefore never waits on the disk, and the
common case (room in the queue) costs about what encoding costs.

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
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from sessionwal._base import WriterBase, check_sync_mode
from sessionwal._native import NativeAsyncWriter

__all__ = ["DEFAULT_MAX_QUEUED_BYTES", "DEFAULT_MAX_QUEUED_CHUNKS", "AsyncSessionWriter"]

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
        self._session = session
        self._final_path, self._partial_path = self._resolve_paths(session, path)
        self._admit_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._written_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._finished: asyncio.Future[None] | None = None
        self._close_error_raised = False
        self._event_fd = -1
        custom_builder = None if self._uses_default_chunk_builder() else self.build_chunk_record
        self._open(self._partial_path, self._final_path, sync, sync_interval, custom_builder)
        try:
            header = self.build_header(session, sandbox_handle_id=sandbox_handle_id)
            ready = self._loop.create_future()
            ready.set_result(None)
            self._event_fd = self._start(header, ready, max_queued_chunks, max_queued_bytes)
        except BaseException:
            self._release_unstarted()
            raise
        self._loop.add_reader(self._event_fd, self._on_event)

    # awrite_chunk(index, row) and awrite_chunks(items) are native methods
    # of NativeAsyncWriter; they call back into _wait_* only when the caller
    # has to wait.

    async def flush(self) -> None:
        """Wait until everything queued so far reached the OS (the disk under ``sync="always"``)."""
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
        raise TypeError("AsyncSessionWriter is an async context manager: use 'async with'")

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ refuses
        raise TypeError("AsyncSessionWriter is an async context manager: use 'async with'")

    # ------------------------------------------------------------ internals
    #
    # Waiting works on tickets: every submission gets the next one, and the
    # native side reports the highest admitted and written tickets. Waiters
    # sit in two deques in ticket order; the worker rings the eventfd only
    # when the loop armed it for the head of a deque (or for finishing).

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
        while True:
            admit_at = self._admit_waiters[0][0] if self._admit_waiters else _NEVER
            written_at = self._written_waiters[0][0] if self._written_waiters else _NEVER
            finish = self._finished is not None and not self._finished.done()
            if admit_at == _NEVER and written_at == _NEVER and not finish:
                return
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
            self._loop.remove_reader(self._event_fd)
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


def _resolve(waiters: deque[tuple[int, asyncio.Future[None]]], reached: int) -> None:
    while waiters and waiters[0][0] <= reached:
        _, future = waiters.popleft()
        if not future.done():
            future.set_result(None)
