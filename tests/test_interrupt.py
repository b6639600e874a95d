"""Ctrl-C during write_chunks: raised means nothing of the batch was written.

A caller that catches KeyboardInterrupt around ``write_chunks`` retries the
batch; if the interrupt surfaced only after the batch was written, the retry
duplicated it. The native writer checks for signals while it encodes the
batch, before the one write. Tested with a real SIGINT sent to a subprocess
while it encodes a batch of 100,000 records (about 0.3 s of encoding here),
20 ms after the first row told the parent that encoding is under way.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from crash_helpers import split_wal

SCRIPT = r"""
import json, sys
from sessionwal import ChunkRow, Session, SessionWriter

path, count = sys.argv[1], int(sys.argv[2])


class Marker:
    '''The batch's first row: reading its kind means encoding has begun.'''

    payload = {"first": True}

    @property
    def kind(self):
        print("encoding", flush=True)
        return "user"


# Plain rows after the marker: no Python code runs while they are encoded, so
# only the writer's own check can notice the signal before the write.
row = ChunkRow("user", {"text": "some text " * 20, "n": [1.5, 2.25, 3.125, 1e-7, 123456.789] * 6})
items = [(0, Marker())] + [(i, row) for i in range(1, count)]
writer = SessionWriter(Session(id="interrupted"), path=path)
print("ready", flush=True)
sys.stdin.readline()
try:
    writer.write_chunks(items)
    outcome = "returned"
except KeyboardInterrupt:
    outcome = "interrupted"
print(json.dumps({"outcome": outcome, "chunks_written": writer.chunks_written}), flush=True)
writer.abandon()
"""

COUNT = 100_000


def test_sigint_while_encoding_a_batch_raises_and_writes_none_of_it(tmp_path: Path):
    path = tmp_path / "s.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path), str(COUNT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "encoding\n"
        # Past the marker's own Python code (where the interpreter would raise
        # the interrupt by itself), well inside the plain rows' encoding.
        time.sleep(0.02)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert json.loads(out) == {"outcome": "interrupted", "chunks_written": 0}
    records, tail = split_wal(path.with_name("s.jsonl.__partial__").read_bytes())
    assert ([r["record_type"] for r in records], tail) == (["header"], b"")
