"""close() racing abandon(): a close that has begun finishes or raises, never half of each.

"close() returned" must mean the file is under its final name. An abandon()
from another thread that lands while close() is building the trailer used to
release the file under the close, which then returned normally with no
trailer and no rename. Now, once close() has begun, abandon() is a no-op; an
abandon() that completed first still makes a later close() a no-op (the
seed's behaviour). Each race is forced in order with events, not hoped for.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import split_wal

from sessionwal import ChunkRow

from conftest import make_session

WAIT = 10.0


def racing_writer(
    base: type, *, hook_raises: bool
) -> tuple[type, threading.Event, threading.Event]:
    """A writer whose trailer hook lets another thread abandon() while it runs."""
    in_hook = threading.Event()
    abandoned = threading.Event()

    class Racing(base):  # type: ignore[misc, valid-type]
        @staticmethod
        def build_trailer(session: Any, *, final_chunk_count: int) -> dict[str, Any]:
            in_hook.set()
            assert abandoned.wait(WAIT), "abandon() did not return while close() was under way"
            if hook_raises:
                raise LookupError("the runtime's trailer failed")
            return {"record_type": "trailer", "final_chunk_count": final_chunk_count}

    return Racing, in_hook, abandoned


def abandon_once_in_hook(writer: Any, in_hook: threading.Event, abandoned: threading.Event):
    def run() -> None:
        assert in_hook.wait(WAIT)
        writer.abandon()
        abandoned.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_begun_close_finishes_and_the_racing_abandon_is_a_no_op(writer_cls, tmp_path: Path):
    cls, in_hook, abandoned = racing_writer(writer_cls, hook_raises=False)
    path = tmp_path / "s.jsonl"
    writer = cls(make_session(), path=path)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    thread = abandon_once_in_hook(writer, in_hook, abandoned)
    writer.close()
    thread.join(WAIT)
    assert abandoned.is_set()
    assert writer.closed
    assert not writer.partial_path.exists()
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header", "chunk", "trailer"]
    assert records[-1] == {"record_type": "trailer", "final_chunk_count": 1}


def test_a_begun_close_whose_hook_raises_raises_and_leaves_the_partial_file(
    writer_cls, tmp_path: Path
):
    cls, in_hook, abandoned = racing_writer(writer_cls, hook_raises=True)
    path = tmp_path / "s.jsonl"
    writer = cls(make_session(), path=path)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    thread = abandon_once_in_hook(writer, in_hook, abandoned)
    with pytest.raises(LookupError, match="trailer failed"):
        writer.close()
    thread.join(WAIT)
    assert writer.closed
    assert not path.exists()
    records, tail = split_wal(writer.partial_path.read_bytes())
    assert ([r["record_type"] for r in records], tail) == (["header", "chunk"], b"")
    # The file was released: another writer can take the session over.
    again = writer_cls(make_session(), path=path)
    again.close()
    assert path.exists()


def test_close_after_a_completed_abandon_is_a_no_op(writer_cls, tmp_path: Path):
    path = tmp_path / "s.jsonl"
    writer = writer_cls(make_session(), path=path)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    writer.abandon()
    writer.close()
    assert writer.closed
    assert not path.exists()
    records, _ = split_wal(writer.partial_path.read_bytes())
    assert [r["record_type"] for r in records] == ["header", "chunk"]
