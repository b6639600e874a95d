"""The drop-in recipe: a runtime subclasses the writer and points the hooks at its own code."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow
from sessionwal.aio import AsyncSessionWriter

from conftest import make_session


def runtime_writer(base: type, directory: Path) -> type:
    def my_header(session, *, sandbox_handle_id):
        return {"type": "begin", "sid": session.id, "sandbox": sandbox_handle_id}

    def my_trailer(session, *, final_chunk_count):
        return {"type": "end", "count": final_chunk_count}

    def my_chunk(index, row):
        return {"type": "msg", "i": index, "who": str(row.kind), "body": row.payload}

    class RuntimeWriter(base):
        build_header = staticmethod(my_header)
        build_trailer = staticmethod(my_trailer)
        build_chunk_record = staticmethod(my_chunk)
        session_file = staticmethod(lambda sid: directory / f"{sid}.log")
        session_partial_file = staticmethod(lambda sid: directory / f"{sid}.log.inflight")

    return RuntimeWriter


def test_subclass_hooks_are_honoured(writer_cls, tmp_path):
    cls = runtime_writer(writer_cls, tmp_path / "rt")
    writer = cls(make_session("s1"), sandbox_handle_id="box")
    assert writer.partial_path == (tmp_path / "rt" / "s1.log.inflight").resolve()
    assert writer.partial_path.exists()
    writer.write_chunk(0, ChunkRow("user", {"x": 1}))
    writer.write_chunks([(1, ChunkRow("user", {"x": 2}))]) if hasattr(writer, "write_chunks") else (
        writer.write_chunk(1, ChunkRow("user", {"x": 2}))
    )
    writer.close()
    lines = (tmp_path / "rt" / "s1.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"type": "begin", "sid": "s1", "sandbox": "box"},
        {"type": "msg", "i": 0, "who": "user", "body": {"x": 1}},
        {"type": "msg", "i": 1, "who": "user", "body": {"x": 2}},
        {"type": "end", "count": 2},
    ]
    assert lines[0] == json.dumps({"type": "begin", "sid": "s1", "sandbox": "box"})


def test_native_and_pure_subclasses_write_the_same_bytes(tmp_path):
    outputs = []
    for name, base in (("p", sessionwal.pure.SessionWriter), ("n", sessionwal.SessionWriter)):
        cls = runtime_writer(base, tmp_path / name)
        with cls(make_session("s")) as writer:
            writer.write_chunk(0, ChunkRow("assistant", {"t": "é\n"}))
        outputs.append((tmp_path / name / "s.log").read_bytes())
    assert outputs[0] == outputs[1]


def test_header_only_override_keeps_native_chunks(writer_cls, tmp_path):
    class HeaderOnly(writer_cls):
        build_header = staticmethod(lambda session, *, sandbox_handle_id: {"h": session.id})

    with HeaderOnly(make_session("z"), path=tmp_path / "z.jsonl") as writer:
        writer.write_chunk(7, ChunkRow(sessionwal.ChunkKind.USER, {"q": None}))
    lines = (tmp_path / "z.jsonl").read_text().splitlines()
    assert lines[0] == '{"h": "z"}'
    assert lines[1] == (
        '{"record_type": "chunk", "index": 7, "kind": "user", "payload": {"q": null}}'
    )


def test_hooks_naming_one_file_for_both_leave_it_in_place(writer_cls, tmp_path):
    # A runtime without in-flight names: the seed's rename onto itself leaves
    # the closed session where it is, closed again and again.
    class InPlace(writer_cls):
        session_file = staticmethod(lambda sid: tmp_path / f"{sid}.log")
        session_partial_file = staticmethod(lambda sid: tmp_path / f"{sid}.log")

    for n in range(3):
        with InPlace(make_session("s")) as writer:
            writer.write_chunk(n, ChunkRow("user", {"n": n}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.log"]
    records = [json.loads(line) for line in (tmp_path / "s.log").read_text().splitlines()]
    assert [r["record_type"] for r in records] == ["header", "chunk", "trailer"] * 3


async def _close_in_place_async(directory: Path) -> None:
    class InPlace(AsyncSessionWriter):
        session_file = staticmethod(lambda sid: directory / f"{sid}.log")
        session_partial_file = staticmethod(lambda sid: directory / f"{sid}.log")

    async with InPlace(make_session("s")) as writer:
        await writer.awrite_chunk(0, ChunkRow("user", {"n": 0}))


def test_hooks_naming_one_file_for_both_leave_it_in_place_asyncio(tmp_path):
    asyncio.run(_close_in_place_async(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.log"]


class RuntimePersistenceError(RuntimeError):
    """A runtime's own error class, unrelated to sessionwal's."""


def test_a_refused_open_raises_the_runtimes_own_error_class(writer_cls, tmp_path):
    class RuntimeWriter(writer_cls):
        lock_error = RuntimePersistenceError

    path = tmp_path / "session-1.jsonl"
    with RuntimeWriter(make_session(), path=path):
        with pytest.raises(RuntimePersistenceError, match="already writing") as refused:
            RuntimeWriter(make_session(), path=path)
        assert isinstance(refused.value.__cause__, sessionwal.PersistenceError)
        # Without the hook: sessionwal's own class, as before.
        with pytest.raises(sessionwal.PersistenceError, match="already writing"):
            writer_cls(make_session(), path=path)


def test_a_refused_async_open_raises_the_runtimes_own_error_class(tmp_path):
    class RuntimeAsyncWriter(AsyncSessionWriter):
        lock_error = RuntimePersistenceError

    async def main() -> None:
        path = tmp_path / "session-1.jsonl"
        async with RuntimeAsyncWriter(make_session(), path=path):
            with pytest.raises(RuntimePersistenceError, match="already writing"):
                RuntimeAsyncWriter(make_session(), path=path)

    asyncio.run(main())
