"""Type stubs for the Rust extension module ``sessionwal._native``."""

from collections.abc import Callable, Iterable
from os import PathLike
from typing import Any

def encode_record(record: Any) -> bytes:
    """``(json.dumps(record, ensure_ascii=False) + "\\n").encode()``, natively where possible."""

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
    def _close(self, trailer: Any) -> None: ...
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

def scan(source: bytes | str | PathLike[str], *, validate: bool = False) -> dict[str, Any]:
    """Scans a session file (a path, read without the GIL) or its bytes.

    Keys: ``size``, ``complete_len``, ``lines``, ``chunks`` (ints); ``events``,
    ``[(line, kind, text)]`` for every complete line that is not a chunk line;
    ``invalid``, ``None`` or ``(line, byte_column, reason, text)`` for the
    first line that is not one JSON object (only with ``validate=True``).
    """
