"""Files as power loss leaves them, without a FUSE layer: the repro of issue 14.

A power cut can give back a file whose size was extended over pages that never
landed: the durable records, a run of NUL bytes, then later records whose
pages did land. Every reader must find the durable records (the recovery
rule: the log ends at the last valid record), and a writer reopening the
session must cut the rest, never append after it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow, SessionState, files, list_sessions, load_session
from sessionwal.aio import AsyncSessionWriter
from sessionwal.repair import repair_session

from conftest import make_session, run_cli

DURABLE = 182
HOLE = 93_662
LATER = range(273, 277)


def row(i: int) -> ChunkRow:
    return ChunkRow("assistant", {"i": i, "text": f"chunk {i} " + "é" * (i % 7)})


def chunk_line(i: int) -> bytes:
    record = sessionwal.build_chunk_record(i, row(i))
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def power_loss_image(session_id: str, durable: int | None = DURABLE, hole: int = HOLE) -> bytes:
    """``header + <durable> records + <hole> NUL bytes + records 273..276``: the
    shape the issue found under a power-loss file system. ``durable=None``: NUL
    bytes from the first byte (the header never landed either)."""
    durable_part = b"" if durable is None else durable_log(session_id, durable)
    return durable_part + bytes(hole) + b"".join(chunk_line(i) for i in LATER)


def durable_log(session_id: str, chunks: int) -> bytes:
    header = sessionwal.build_header(make_session(session_id))
    head = (json.dumps(header, ensure_ascii=False) + "\n").encode()
    return head + b"".join(map(chunk_line, range(chunks)))


def crashed_partial(session_id: str, image: bytes) -> Path:
    partial = files.ensure_sessions_dir() / f"{session_id}.jsonl{files.PARTIAL_SUFFIX}"
    partial.write_bytes(image)
    return partial


def test_every_reader_finds_the_durable_chunks(tmp_path):
    image = power_loss_image("s")
    partial = crashed_partial("s", image)
    loaded = load_session("s")
    assert [c.payload["i"] for c in loaded.chunks] == list(range(DURABLE))
    assert (loaded.tail, loaded.torn_bytes) == ("hole", len(image) - image.index(b"\0"))
    [info] = list_sessions()
    assert (info.chunk_count, info.state, info.tail) == (DURABLE, SessionState.CRASHED, "hole")
    verify = run_cli("verify", partial)
    assert verify.returncode == 1
    assert verify.stdout == (
        f"{partial}: crashed: {DURABLE} chunks complete, then a crash tail of "
        f"{loaded.torn_bytes} bytes from line {DURABLE + 2} (NUL bytes and data that landed "
        "around them (pages written back out of order)); `sessionwal repair` closes it\n"
    )
    ls = run_cli("ls", "--json")
    assert [json.loads(line)["chunk_count"] for line in ls.stdout.splitlines()] == [DURABLE]
    tail = run_cli("tail", "s", "-n", "1")
    assert tail.returncode == 0
    assert f"#{DURABLE - 1} assistant" in tail.stdout.splitlines()[-1]


def write_sync(session_id: str, first: int, count: int, *, batch: bool) -> None:
    with sessionwal.SessionWriter(make_session(session_id), sync="always") as writer:
        items = [(i, row(i)) for i in range(first, first + count)]
        if batch:
            writer.write_chunks(items)
        else:
            for i, r in items:
                writer.write_chunk(i, r)


def write_async(session_id: str, first: int, count: int) -> None:
    async def main() -> None:
        writer = AsyncSessionWriter(make_session(session_id), sync="always")
        for i in range(first, first + count):
            await writer.awrite_chunk(i, row(i))
        await writer.aclose()

    asyncio.run(main())


WRITES = {
    "write_chunk": lambda sid, first, n: write_sync(sid, first, n, batch=False),
    "write_chunks": lambda sid, first, n: write_sync(sid, first, n, batch=True),
    "asyncio": write_async,
}


@pytest.mark.parametrize("durable", [DURABLE, None])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_reopen_write_close_yields_a_closed_intact_file(write, durable):
    # The deterministic repro: copy the file into a sessions dir, open
    # a writer with its id, write, close, verify. (durable=None: NUL bytes from
    # the first byte.)
    image = power_loss_image("s", durable=durable)
    durable = durable or 0
    crashed_partial("s", image)
    WRITES[write]("s", 1000, 3)
    final = sessionwal.session_file("s")
    verify = run_cli("verify", final)
    assert (verify.returncode, verify.stdout) == (
        0,
        f"{final}: ok: closed, {durable + 3} chunks\n",
    )
    loaded = load_session("s")
    indices = [c.payload["i"] for c in loaded.chunks]
    assert indices == [*range(durable), 1000, 1001, 1002]
    assert loaded.closed and loaded.torn_bytes == 0
    assert not final.read_bytes().count(b"\0")


def test_repair_keeps_the_durable_chunks_and_the_original_bytes():
    image = power_loss_image("s")
    partial = crashed_partial("s", image)
    result = repair_session(partial)
    assert (result.chunk_count, result.tail, result.trailer_added) == (DURABLE, "hole", True)
    assert result.backup.read_bytes() == image
    assert run_cli("verify", result.path).returncode == 0
    assert len(load_session("s").chunks) == DURABLE


def test_reopen_refuses_a_line_a_crash_cannot_leave():
    # A whole JSON object in our log's place is not crash damage: maybe another
    # program's data. The writer neither cuts it nor appends after it.
    image = durable_log("s", 3) + b'{"type": "x"}\n'
    partial = crashed_partial("s", image)
    with pytest.raises(sessionwal.PersistenceError, match="JSON object without a known"):
        sessionwal.SessionWriter(make_session("s"))
    assert partial.read_bytes() == image


def test_following_stops_at_a_nul_run_without_buffering_it():
    from sessionwal.follow import Follower

    image = durable_log("s", 3) + bytes(8 << 20)  # zeros to the end: no newline ever comes
    partial = crashed_partial("s", image)
    with Follower(partial, poll_interval=0, timeout=5) as follower:
        assert [t for t, _ in follower.read()] == ["header", "chunk", "chunk", "chunk"]
        assert follower.tail is not None and follower.tail.tail == "zeros"
        assert follower.tail.tail_bytes == 8 << 20
        assert follower.read() == []  # reading stopped at the tail
        while follower.wait():
            pass
        assert follower.outcome == "crashed"


def test_the_rule_reads_a_shared_descriptor_without_moving_its_offset(tmp_path):
    path = tmp_path / "s.jsonl.__partial__"
    path.write_bytes(power_loss_image("s", durable=5, hole=10))
    with open(path, "rb", buffering=0) as file:
        assert file.read(3) == b'{"r'
        log = sessionwal.records.valid_log(path, file.fileno())
        assert file.read(3) == b"eco"
    assert (log.chunks, log.tail, log.tail_line) == (5, "hole", 7)
    assert (
        log
        == sessionwal.records.valid_log(path)
        == sessionwal.records.valid_log(path, path.read_bytes())
    )
