"""The asyncio writer when things go wrong: a failed write, a fork, a writer never closed.

A failed write latches: later calls, flush and aclose raise it.

The failure is real: ``RLIMIT_FSIZE`` makes the kernel refuse to grow the
file (EFBIG; CPython ignores SIGXFSZ). It runs in a subprocess so the limit
cannot touch pytest's own files.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow, PersistenceError, Session
from sessionwal.aio import AsyncSessionWriter

from conftest import read_lines

SCRIPT = r"""
import asyncio, errno, json, resource, sys
from sessionwal import ChunkRow, Session
from sessionwal.aio import AsyncSessionWriter

path, sync, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
report = {}

async def main():
    writer = AsyncSessionWriter(Session(id="s"), path=path, sync=sync, max_queued_chunks=4)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    accepted = 0
    failure = None
    for i in range(10_000):
        try:
            await writer.awrite_chunk(i, ChunkRow("user", {"i": i, "pad": "x" * 200}))
        except OSError as exc:
            failure = exc
            break
        accepted += 1
    report["accepted"] = accepted
    report["first"] = [type(failure).__name__, failure.errno, str(failure.filename)]
    later = []
    for attempt in (
        lambda: writer.awrite_chunk(10_001, ChunkRow("user", {})),
        lambda: writer.awrite_chunks([(10_002, ChunkRow("user", {}))]),
        writer.flush,
    ):
        try:
            await attempt()
        except OSError as exc:
            later.append(exc.errno)
    report["later"] = later
    try:
        await writer.aclose()
    except OSError as exc:
        report["aclose"] = exc.errno
    await writer.aclose()  # reported once; then idempotent
    try:
        writer.awrite_chunk(10_003, ChunkRow("user", {}))
    except RuntimeError as exc:
        report["after_close"] = str(exc)
    report["chunks_written"] = writer.chunks_written

asyncio.run(main())
print(json.dumps(report))
"""


@pytest.mark.parametrize("sync", ["never", "always"])
def test_a_failed_write_latches_and_leaves_whole_records(tmp_path: Path, sync: str):
    target = tmp_path / "s.jsonl"
    limit = 4096
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target), sync, str(limit)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    report = json.loads(out)
    partial = tmp_path / "s.jsonl.__partial__"
    assert report["first"] == ["OSError", errno.EFBIG, str(partial)]
    assert report["later"] == [errno.EFBIG] * 3
    assert report["aclose"] == errno.EFBIG
    assert "is closed; cannot append more chunks" in report["after_close"]

    # No trailer, no rename; what is there is whole lines, chunks in order from 0.
    assert not target.exists()
    assert partial.stat().st_size <= limit
    lines = read_lines(partial)
    assert all(line.endswith("\n") for line in lines)
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["record_type"] == "header"
    indexes = [r["index"] for r in parsed[1:]]
    assert indexes == list(range(len(indexes)))
    assert len(indexes) == report["chunks_written"]
    if sync == "always":
        # Each awaited chunk was written before it returned, so exactly those landed.
        assert report["accepted"] == len(indexes)
    else:
        assert report["accepted"] >= len(indexes)


FORK_SCRIPT = r"""
import asyncio, os, sys
from sessionwal import ChunkRow, PersistenceError, Session
from sessionwal.aio import AsyncSessionWriter

async def main():
    writer = AsyncSessionWriter(Session(id="s"), path=sys.argv[1])
    await writer.awrite_chunk(0, ChunkRow("user", {"from": "parent"}))
    await writer.flush()
    pid = os.fork()
    if pid == 0:
        try:
            writer.awrite_chunk(1, ChunkRow("user", {"from": "child"}))
            code = 1
        except PersistenceError as exc:
            code = 0 if "forked" in str(exc) else 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    await writer.awrite_chunk(1, ChunkRow("user", {"from": "parent"}))
    await writer.aclose()
    print(os.waitstatus_to_exitcode(status))

asyncio.run(main())
"""


def test_a_forked_child_cannot_write_through_the_parents_writer(tmp_path: Path):
    target = tmp_path / "s.jsonl"
    out = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(target)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "0"
    payloads = [json.loads(line)["payload"] for line in read_lines(target)[1:-1]]
    assert payloads == [{"from": "parent"}, {"from": "parent"}]


def test_a_writer_dropped_without_closing_writes_its_queue_and_releases_the_file(tmp_path):
    target = tmp_path / "s.jsonl"

    async def forget() -> None:
        writer = AsyncSessionWriter(Session(id="s"), path=target)
        for i in range(100):
            await writer.awrite_chunk(i, ChunkRow("user", {"i": i}))

    # Released like an unclosed file: with a ResourceWarning, while the
    # engine writes its queue and abandons it.
    with pytest.warns(ResourceWarning, match="unclosed AsyncSessionWriter"):
        asyncio.run(forget())
        gc.collect()
    for _ in range(5000):  # the engine finishes it on its own once the writer is gone
        try:
            again = sessionwal.SessionWriter(Session(id="s"), path=target)
        except PersistenceError:
            time.sleep(0.002)
            continue
        again.abandon()
        break
    else:
        raise AssertionError("the dropped writer never released its lock")
    kinds = [
        json.loads(line)["record_type"]
        for line in read_lines(target.with_name(target.name + ".__partial__"))
    ]
    assert kinds == ["header"] + ["chunk"] * 100 + ["header"]
    assert not target.exists()
