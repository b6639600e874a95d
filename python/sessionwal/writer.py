"""The native writer: the seed's API over the Rust core in ``sessionwal._native``.

``write_chunk``, ``write_chunks``, ``abandon``, ``chunks_written`` and
``closed`` are native methods of the base class, so the per-chunk path runs
no Python frame. This module only resolves paths, calls the record-builder
hooks (header and trailer, once each) and keeps the seed's signatures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionwal._base import WriterBase, check_sync_mode
from sessionwal._native import NativeWriter
from sessionwal.errors import PersistenceError

__all__ = ["SessionWriter"]


class SessionWriter(WriterBase, NativeWriter):
    """Append-only JSONL WAL writer for one session, with a native core.

    Same API and bytes as :class:`sessionwal.pure.SessionWriter`; see
    docs/durability.md for the ``sync`` modes (default ``"close"``: the
    trailer and the rename survive power loss).
    """

    def __init__(
        self,
        session: Any,
        *,
        sandbox_handle_id: str | None = None,
        path: Path | str | None = None,
        sync: str = "close",
        sync_interval: float = 1.0,
    ) -> None:
        check_sync_mode(sync, sync_interval)
        self._session = session
        self._final_path, self._partial_path = self._resolve_paths(session, path)
        custom_builder = None if self._uses_default_chunk_builder() else self.build_chunk_record
        try:
            self._open(self._partial_path, self._final_path, sync, sync_interval, custom_builder)
        except PersistenceError as refused:
            raise self._refused(refused)  # noqa: B904 - _refused sets the cause
        try:
            self._append_record(self.build_header(session, sandbox_handle_id=sandbox_handle_id))
        except BaseException:
            self.abandon()
            raise

    def close(self) -> None:
        """Write the trailer, sync per ``sync``, and atomically rename to :attr:`path`.

        Idempotent.
        """
        # _seal stops writes from other threads before the count is taken, so
        # the trailer's final_chunk_count is exactly the chunks in the file.
        final_chunk_count = self._seal()
        if final_chunk_count is None:
            return
        # From here a racing abandon() is a no-op: this close finishes or raises.
        try:
            trailer = self.build_trailer(self._session, final_chunk_count=final_chunk_count)
        except BaseException:
            self._abandon_close()
            raise
        self._close(trailer)
