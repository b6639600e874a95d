"""A failed write of the asyncio writer latches: later calls, flush and aclose raise it.

The failure is real: ``RLIMIT_FSIZE`` makes the kernel refuse to grow the
file (EFBIG; CPython ignores SIGXFSZ). It runs in a subprocess so the limit
cannot touch pytest's own files.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

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
