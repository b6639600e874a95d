"""The pure-Python reference writer: the seed's algorithm, same API, same bytes.

Every native behaviour is tested against this class and every benchmark is a
ratio against it, so it stays deliberately close to the original writer:
a text file opened in append mode, ``json.dumps(record, ensure_ascii=False)``
plus ``"\\n"`` per record, ``flush()`` after each, an advisory ``flock``, the
trailer and an atomic ``os.replace`` on close.

Beyond the seed it accepts ``sync=`` (durability, see docs/durability.md) and
``write_chunks`` so the two writers stay comparable; its default
``sync="never"`` is the seed's behaviour.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from sessionwal import files
from sessionwal._base import WriterBase, check_sync_mode
from sessionwal.errors import PersistenceError

__all__ = ["SessionWriter"]

logger = logging.getLogger(__name__)

#: Opens tried when the file's name moves while the lock is awaited (as the native writer).
_OPEN_ATTEMPTS = 3

# macOS has no fdatasync; fsync is the closest it offers from Python.
_fdatasync = getattr(os, "fdatasync", os.fsync)


def _lock_conflict(partial_path: Path) -> PersistenceError:
    return PersistenceError(
        f"another process is already writing to '{partial_path}'; refusing to interleave appends"
    )


class SessionWriter(WriterBase):
    """Append-only JSONL WAL writer for one session (pure Python)."""

    __slots__ = (
        "_chunks_written",
        "_closed",
        "_closing",
        "_file",
        "_final_path",
        "_last_sync",
        "_partial_path",
        "_sandbox_handle_id",
        "_session",
        "_state_lock",
        "_sync",
        "_sync_interval",
    )

    def __init__(
        self,
        session: Any,
        *,
        sandbox_handle_id: str | None = None,
        path: Path | str | None = None,
        sync: str = "never",
        sync_interval: float = 1.0,
    ) -> None:
        check_sync_mode(sync, sync_interval)
        self._session = session
        self._final_path, self._partial_path = self._resolve_paths(session, path)
        self._sandbox_handle_id = sandbox_handle_id
        self._sync = sync
        self._sync_interval = sync_interval
        self._last_sync = time.monotonic()
        self._file: IO[str] | None = None
        self._chunks_written = 0
        self._closed = False
        # close() has begun: a racing abandon() is a no-op from here.
        self._closing = False
        self._state_lock = threading.Lock()
        self._open()
        try:
            self._write_record(self.build_header(session, sandbox_handle_id=sandbox_handle_id))
        except BaseException:
            self._release()
            self._closed = True
            raise

    @property
    def chunks_written(self) -> int:
        """Number of ``record_type=chunk`` lines written so far."""
        return self._chunks_written

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abandon`."""
        return self._closed

    def write_chunk(self, index: int, row: Any) -> None:
        """Append one chunk record."""
        self._check_open()
        self._write_record(self.build_chunk_record(index, row))
        self._chunks_written += 1

    def write_chunks(self, items: Iterable[tuple[int, Any]]) -> None:
        """Append many chunk records; if one cannot be encoded, none is written."""
        self._check_open()
        lines = [
            json.dumps(self.build_chunk_record(index, row), ensure_ascii=False) + "\n"
            for index, row in items
        ]
        if lines:
            self._write_line("".join(lines))
            self._chunks_written += len(lines)

    def close(self) -> None:
        """Write the trailer and atomically rename ``__partial__`` to the final name.

        Idempotent. Once it has begun, a racing :meth:`abandon` is a no-op: this
        close finishes or raises.
        """
        with self._state_lock:
            if self._closed or self._closing:
                return
            self._closing = True
        try:
            if self._file is not None:
                trailer = self.build_trailer(self._session, final_chunk_count=self._chunks_written)
                self._write_record(trailer)
                if self._sync != "never":
                    os.fsync(self._file.fileno())
        finally:
            self._release()
            self._closed = True
        try:
            os.replace(self._partial_path, self._final_path)
        except FileNotFoundError:
            return
        if self._sync != "never":
            files.fsync_dir(self._final_path.parent)

    def abandon(self) -> None:
        """Release the file without a trailer or rename; the ``__partial__`` file stays.

        A no-op once :meth:`close` has begun.
        """
        with self._state_lock:
            if self._closed or self._closing:
                return
            self._closed = True
        self._release()

    def __del__(self) -> None:
        # A writer dropped unclosed (a runtime giving up after a record it
        # could not encode, say) closes its file, which also drops the lock,
        # and leaves the __partial__ file: what the native writer does when
        # dropped, and what the garbage collector would do anyway, minus its
        # ResourceWarning. Only close(): an explicit unlock in a forked child
        # would release the parent's lock. getattr: __init__ may have failed
        # before _file was set.
        file = getattr(self, "_file", None)
        if file is not None:
            self._file = None
            file.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                f"SessionWriter({self._final_path}) is closed; cannot append more chunks",
            )

    def _open(self) -> None:
        self._partial_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(_OPEN_ATTEMPTS):
            existed = self._partial_path.exists()
            file = self._partial_path.open("a", encoding="utf-8")
            try:
                locked = files.lock_for_writing(file.fileno())
                # While we waited for the lock, its holder (repair, delete_session)
                # may have renamed or removed the file: writing to it then would
                # append to the repaired final file, or to nothing. Open again.
                if locked and not files.same_file(
                    file.fileno(), self._partial_path, follow_symlinks=True
                ):
                    files.unlock(file.fileno())
                    file.close()
                    continue
            except BaseException:
                file.close()
                raise
            if not locked:
                file.close()
                raise self._refused(_lock_conflict(self._partial_path))
            self._file = file
            if not existed:
                os.chmod(self._partial_path, 0o600)
            return
        raise PersistenceError(
            f"'{self._partial_path}' was replaced or removed {_OPEN_ATTEMPTS} times while "
            "waiting for its lock; refusing to write to a file that no longer has its name"
        )

    def _write_record(self, record: dict[str, Any]) -> None:
        self._write_line(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")

    def _write_line(self, text: str) -> None:
        assert self._file is not None
        self._file.write(text)
        self._file.flush()
        if self._sync == "always" or (
            self._sync == "interval" and time.monotonic() - self._last_sync >= self._sync_interval
        ):
            _fdatasync(self._file.fileno())
            self._last_sync = time.monotonic()

    def _release(self) -> None:
        if self._file is None:
            return
        try:
            files.unlock(self._file.fileno())
            self._file.close()
        except OSError:  # pragma: no cover - racing filesystem
            logger.exception("failed to close persisted session file %s", self._partial_path)
        self._file = None
