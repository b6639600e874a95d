"""Type stubs for the Rust extension module ``sessionwal._native``."""

import asyncio
from collections.abc import Callable, Iterable
from os import PathLike
from typing import Any, final

from typing_extensions import disjoint_base

__all__ = [
    "CHUNK_FRAMING",
    "STRING_ENCODER",
    "NativeAsyncWriter",
    "NativeDoorbell",
    "NativeWriter",
    "drain_io",
    "encode_record",
    "io_threads",
    "recover",
    "scan",
    "set_io_threads",
]

CHUNK_FRAMING: dict[str, bytes]
"""The fixed bytes of a default chunk line, in line order: ``prefix`` (up to the
``index`` value), ``kind_key``, ``payload_key``, ``end`` (closing brace and newline).
The writer frames chunks with them and the scanner recognises chunk lines by them."""

STRING_ENCODER: str
"""How 2- and 4-byte strings are encoded: ``"avx512"``, ``"avx2"`` or ``"scalar"``, the
fastest this CPU runs unless ``SESSIONWAL_STRING_ENCODER`` caps it."""

def encode_record(record: Any) -> bytes:
    """``(json.dumps(record, ensure_ascii=False) + "\\n").encode()``, natively where possible."""

@disjoint_base
class NativeWriter:
    def __new__(cls, *args: Any, **kwargs: Any) -> NativeWriter: ...
    def _open(
        self,
        partial_path: str | PathLike[str],
        final_path: str | PathLike[str],
        sync: str,
        sync_interval: float,
        chunk_builder: Callable[[Any, Any], Any] | None,
    ) -> None: ...
    def _append_record(self, record: Any) -> None: ...
    def _seal(self) -> int | None: ...
    def _close(self, trailer: Any) -> None: ...
    def _abandon_close(self) -> None: ...
    def write_chunk(self, index: int, row: Any) -> None:
        """Append one chunk record."""
    def write_chunks(self, items: Iterable[tuple[int, Any]]) -> None:
        """Append many chunk records with one write; all or nothing."""
    def abandon(self) -> None:
        """Release the file without a trailer or rename."""
    @property
    def chunks_written(self) -> int: ...
    @property
    def closed(self) -> bool: ...

@disjoint_base
class NativeAsyncWriter:
    """Native base of :class:`sessionwal.aio.AsyncSessionWriter`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> NativeAsyncWriter: ...
    def _open(
        self,
        partial_path: str | PathLike[str],
        final_path: str | PathLike[str],
        sync: str,
        sync_interval: float,
        chunk_builder: Callable[[Any, Any], Any] | None,
    ) -> None: ...
    def _start(
        self,
        header: Any,
        event_loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[None],
        bell: NativeDoorbell,
        bounds: tuple[int, int],
    ) -> int: ...
    def _release_unstarted(self) -> None: ...
    def awrite_chunk(self, index: int, row: Any) -> asyncio.Future[None]:
        """Queue one chunk record, encoded now; await the result for room (or durability)."""
    def awrite_chunks(self, items: Iterable[tuple[int, Any]]) -> asyncio.Future[None]:
        """Queue many chunk records as one unit, all encoded now; all or nothing."""
    def _check_loop(self) -> None: ...
    def _last_ticket(self) -> int: ...
    def _poll(self) -> tuple[int, int, bool, bool]: ...
    def _arm(self, admitted_at: int, written_at: int, finished: bool) -> bool: ...
    def _failure(self) -> BaseException | None: ...
    def _seal(self) -> bool: ...
    def _finish_close(self, trailer: Any) -> None: ...
    def _finish_abandon(self) -> None: ...
    def _finish_result(self) -> None: ...
    def _stall(self, stalled: bool) -> None:
        """Test hook: hold the writer's turns as if the disk did not answer."""
    @property
    def chunks_written(self) -> int: ...
    @property
    def chunks_submitted(self) -> int: ...
    @property
    def queued_chunks(self) -> int: ...
    @property
    def queued_bytes(self) -> int: ...
    @property
    def closed(self) -> bool: ...

@final
class NativeDoorbell:
    """One event loop's doorbell: the descriptor it watches for all its asyncio writers."""

    def __new__(cls) -> NativeDoorbell: ...
    @property
    def fd(self) -> int: ...
    def take(self) -> list[int]: ...

def io_threads() -> tuple[int, int]:
    """(write threads, most threads for ``sync="always"`` writers) of the asyncio engine."""

def set_io_threads(threads: int, syncs: int | None = None) -> None:
    """Set the engine's thread counts; only before the first asyncio writer opens."""

def drain_io() -> None:
    """Wait until every record queued by an asyncio writer reached the OS."""

def scan(
    source: bytes | str | PathLike[str],
    *,
    validate: bool = False,
    max_line: int = ...,
    on_event: Callable[[int, str, bytes], object] | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    """Scans a session file (a path, read without the GIL) or its bytes; only its first
    ``end`` bytes when given (the valid log :func:`recover` found).

    Keys: ``size``, ``complete_len``, ``lines``, ``chunks`` (ints); ``events``,
    ``[(line, kind, text)]`` for every complete line that is not a chunk line;
    ``invalid``, ``None`` or ``(line, byte_column, reason, text)`` for the
    first line that is not one JSON object (only with ``validate=True``).
    """

def recover(source: bytes | int | str | PathLike[str], *, max_line: int = ...) -> dict[str, Any]:
    """The recovery rule: where the valid log of a session file (a path, or an open
    descriptor read from its start without moving its offset, without the GIL; or its
    bytes) ends, and what follows it.

    Keys: ``end``, ``size``, ``records``, ``chunks`` (ints), ``trailer_at`` (int or ``None``),
    ``tail`` (``None`` or its kind: ``"zeros"``, ``"hole"``, ``"torn"``, ``"garbage"``,
    ``"unrecognized record"``, ``"out of sequence"``), ``line_too_long`` (``None`` or
    ``(line, offset, length, max_line)``: the line after the valid log may be a record
    longer than ``max_line``; ``size``, ``chunks`` and ``tail`` are then ``None``).
    """
