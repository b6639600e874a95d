"""kill -9 of a writing child at random points: nothing acknowledged is lost.

The child acknowledges each chunk on stdout after ``write_chunk`` (or
``write_chunks``) returns. After the kill, every acknowledged chunk must be
on disk, indices contiguous from 0, payloads intact, every line but the last
a whole record, and the last one at most a torn prefix of the next record.

SESSIONWAL_KILL_ITERATIONS sets the number of kills per writer and test
(default 24) for longer runs.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from crash_helpers import WRITER_IMPORTS, check_segment, payload, popen_python, split_wal

from sessionwal import ChunkRow
from sessionwal.records import build_chunk_record

ITERATIONS = int(os.environ.get("SESSIONWAL_KILL_ITERATIONS", "24"))
TESTS_DIR = str(Path(__file__).resolve().parent)
SYNC_MODES = ["never", "close", "interval", "always"]

CHILD = """
import os, random, sys
sys.path.insert(0, sys.argv[1])
{import_writer}
from crash_helpers import payload
from sessionwal import ChunkRow, Session

path, seed, sync, close_after = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rng = random.Random(seed)
writer = SessionWriter(Session(id="kill"), path=path, sync=sync, sync_interval=0.01)
os.write(1, b"open\\n")
limit = close_after if close_after >= 0 else 3000  # the parent kills long before
i = 0
while i < limit:
    if rng.random() < 0.2:
        n = min(rng.randint(1, 8), limit - i)
        batch = [(i + k, ChunkRow("assistant", payload(seed, i + k))) for k in range(n)]
        writer.write_chunks(batch)
        i += n
    else:
        writer.write_chunk(i, ChunkRow("assistant", payload(seed, i)))
        i += 1
    os.write(1, b"%d\\n" % i)
writer.close()
os.write(1, b"closed\\n")
"""


def chunk_line(seed: int, index: int) -> bytes:
    record = build_chunk_record(index, ChunkRow("assistant", payload(seed, index)))
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def kill_while_writing(writer: str, path: Path, seed: int, close_after: int) -> tuple[int, bool]:
    """Starts the child, kills it at a random ack; returns (chunks acked, close acked)."""
    rng = random.Random(seed)
    sync = rng.choice(SYNC_MODES)
    child = popen_python(
        CHILD.format(import_writer=WRITER_IMPORTS[writer]),
        TESTS_DIR,
        str(path),
        str(seed),
        sync,
        str(close_after),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    try:
        assert child.stdout.readline() == b"open\n", child.stderr.read().decode()
        target = rng.randint(0, close_after + 1 if close_after >= 0 else 40)
        acks: list[bytes] = []
        while len(acks) < target:
            line = child.stdout.readline()
            if not line:
                break
            acks.append(line)
        # Jitter, so the kill lands anywhere in the next write, not just between writes.
        time.sleep(rng.random() * 0.002)
    finally:
        child.kill()
        child.wait()
    acks += child.stdout.read().splitlines(keepends=True)
    err = child.stderr.read().decode()
    child.stdout.close()
    child.stderr.close()
    assert "Traceback" not in err, err
    counts = [int(a) for a in acks if a != b"closed\n"]
    return max(counts, default=0), b"closed\n" in acks


def check_survivors(path: Path, seed: int, acked: int, close_acked: bool, close_after: int) -> None:
    partial = path.with_name(path.name + ".__partial__")
    if path.exists():
        # The rename happened, so the trailer and every chunk came before it.
        records, tail = split_wal(path.read_bytes())
        assert tail == b""
        assert check_segment(records, seed) == close_after
        assert records[-1]["record_type"] == "trailer"
        assert not partial.exists()
        return
    assert not close_acked, "close() returned but the file was not renamed"
    records, tail = split_wal(partial.read_bytes())
    written = check_segment(records, seed)
    assert written >= acked, f"{acked} chunks acknowledged, {written} on disk"
    if tail and not tail.startswith(b'{"record_type": "trailer"'):
        assert chunk_line(seed, written).startswith(tail), "the torn tail is not a torn record"


@pytest.mark.parametrize("writer", sorted(WRITER_IMPORTS))
@pytest.mark.parametrize("seed", range(ITERATIONS))
def test_kill_mid_stream_loses_nothing_acknowledged(tmp_path, writer, seed):
    path = tmp_path / "s.jsonl"
    acked, _ = kill_while_writing(writer, path, seed, close_after=-1)
    check_survivors(path, seed, acked, False, -1)


@pytest.mark.parametrize("writer", sorted(WRITER_IMPORTS))
@pytest.mark.parametrize("seed", range(ITERATIONS // 2))
def test_kill_around_close_leaves_a_whole_file_under_one_name(tmp_path, writer, seed):
    path = tmp_path / "s.jsonl"
    close_after = random.Random(-seed).randint(0, 12)
    acked, close_acked = kill_while_writing(writer, path, 1000 + seed, close_after)
    check_survivors(path, 1000 + seed, acked, close_acked, close_after)
