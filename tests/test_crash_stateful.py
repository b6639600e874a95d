"""A hypothesis state machine over a session id's life: open, write,
write_chunks, hostile records, close, abandon, crash and reopen, in any
order; after every step the files on disk must say exactly what a model
says they should."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import split_wal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import sessionwal
from sessionwal import ChunkRow

from conftest import WRITERS

scalars = st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none())
payloads = st.dictionaries(st.text(max_size=8), scalars | st.lists(scalars, max_size=3), max_size=4)
# A longer interval than any test: the syncer is started and stopped, never timed.
sync_modes = st.sampled_from(["never", "close", "interval", "always"])
TORN = b'{"record_type": "chunk", "index": 99, "kind": "assist'


def summary(record: dict[str, Any]) -> tuple[Any, ...]:
    kind = record["record_type"]
    if kind == "chunk":
        return (kind, record["index"], record["payload"])
    if kind == "trailer":
        return (kind, record["final_chunk_count"])
    return (kind, record["id"])


class WalMachine(RuleBasedStateMachine):
    writer_name = "native"
    #: Whether a crash may leave a torn record (the pure writer, like the
    #: seed, would glue the next header onto it; the native one cuts it).
    tears = True

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sessionwal-sm-"))
        self.path = self.dir / "s.jsonl"
        self.partial = self.dir / "s.jsonl.__partial__"
        self.cls = WRITERS[self.writer_name]
        self.writer: Any = None
        self.released: Any = None
        self.model_partial: list[tuple[Any, ...]] | None = None
        self.model_final: list[tuple[Any, ...]] | None = None
        self.model_torn = b""
        self.count = 0
        self.next_index = 0

    def teardown(self) -> None:
        if self.writer is not None:
            self.writer.abandon()
        shutil.rmtree(self.dir, ignore_errors=True)

    @precondition(lambda self: self.writer is None)
    @rule(sync=sync_modes)
    def open(self, sync: str) -> None:
        self.writer = self.cls(
            sessionwal.Session(id="sm"), path=self.path, sync=sync, sync_interval=3600.0
        )
        self.model_partial = (self.model_partial or []) + [("header", "sm")]
        self.model_torn = b""
        self.count = 0

    @precondition(lambda self: self.writer is not None)
    @rule(payload=payloads)
    def write_chunk(self, payload: dict[str, Any]) -> None:
        self.writer.write_chunk(self.next_index, ChunkRow("user", payload))
        self.model_partial.append(("chunk", self.next_index, payload))
        self.next_index += 1
        self.count += 1

    @precondition(lambda self: self.writer is not None)
    @rule(batch=st.lists(payloads, max_size=5))
    def write_chunks(self, batch: list[dict[str, Any]]) -> None:
        items = [(self.next_index + i, ChunkRow("tool", p)) for i, p in enumerate(batch)]
        self.writer.write_chunks(items)
        for index, row in items:
            self.model_partial.append(("chunk", index, row.payload))
        self.next_index += len(batch)
        self.count += len(batch)

    @precondition(lambda self: self.writer is not None)
    @rule(where=st.integers(0, 3))
    def write_hostile(self, where: int) -> None:
        items = [(self.next_index + i, ChunkRow("user", {"i": i})) for i in range(4)]
        items[where] = (self.next_index + where, ChunkRow("user", {"bad": {1, 2}}))
        with pytest.raises(TypeError, match="not JSON serializable"):
            self.writer.write_chunks(items)

    @precondition(lambda self: self.writer is not None)
    @rule()
    def close(self) -> None:
        self.writer.close()
        self.writer.close()
        self.model_final = [*self.model_partial, ("trailer", self.count)]
        self.model_partial = None
        self.released, self.writer = self.writer, None

    @precondition(lambda self: self.writer is not None)
    @rule()
    def abandon(self) -> None:
        self.writer.abandon()
        self.released, self.writer = self.writer, None

    @precondition(lambda self: self.writer is not None)
    @rule(torn=st.booleans())
    def crash(self, torn: bool) -> None:
        """The process dies: no trailer, maybe half a record at the end."""
        self.writer.abandon()
        self.released, self.writer = self.writer, None
        if torn and self.tears:
            with self.partial.open("ab") as out:
                out.write(TORN)
            self.model_torn = TORN

    @precondition(lambda self: self.released is not None)
    @rule()
    def use_a_released_writer(self) -> None:
        """Writes are refused and close/abandon do nothing, even after a reopen."""
        with pytest.raises(RuntimeError, match="closed"):
            self.released.write_chunk(0, ChunkRow("user", {}))
        self.released.close()
        self.released.abandon()

    @invariant()
    def disk_matches_the_model(self) -> None:
        for path, model in ((self.partial, self.model_partial), (self.path, self.model_final)):
            if model is None:
                assert not path.exists(), path
                continue
            records, tail = split_wal(path.read_bytes())
            assert [summary(r) for r in records] == model
            assert tail == (self.model_torn if path == self.partial else b"")
        if self.writer is not None:
            assert self.writer.chunks_written == self.count


def machine_settings() -> settings:
    examples = settings().max_examples
    # Each step is a real file operation; scale the profile down to stay fast.
    return settings(max_examples=max(20, examples // 8), stateful_step_count=30, deadline=None)


class NativeMachine(WalMachine):
    writer_name = "native"
    tears = True


class PureMachine(WalMachine):
    writer_name = "pure"
    tears = False


TestNativeWal = NativeMachine.TestCase
TestNativeWal.settings = machine_settings()
TestPureWal = PureMachine.TestCase
TestPureWal.settings = machine_settings()
