"""A fork() child and the parent's sync writer, while a parent thread is writing through it.

The writer's mutex may be held by the parent's writing thread at the fork;
that thread does not exist in the child, so the child must not take the
mutex: the fork is checked first, and the child gets PersistenceError at once
instead of hanging. The child can still open writers of its own. Run in a
subprocess: forking pytest itself (with its threads) would be unsafe.
"""

from __future__ import annotations

import json
from pathlib import Path

from crash_helpers import run_python, split_wal

SCRIPT = r"""
import json, os, select, sys, threading, time, warnings

warnings.simplefilter("error")
# 3.12+ warns on fork() with threads running; that is exactly this test's point.
warnings.filterwarnings(
    "ignore", message=r".*is multi-threaded, use of fork\(\)", category=DeprecationWarning
)

from sessionwal import ChunkRow, PersistenceError, Session, SessionWriter

directory, forks = sys.argv[1], int(sys.argv[2])
writer = SessionWriter(Session(id="parent"), path=os.path.join(directory, "parent.jsonl"))
blob = "x" * (4 << 20)
writing = threading.Event()
stop = threading.Event()


def write_big_records():
    index = 0
    while not stop.is_set():
        writing.wait()
        writer.write_chunk(index, ChunkRow("user", {"blob": blob}))
        index += 1


def child(number):
    started = time.monotonic()
    outcome = {}
    try:
        writer.write_chunk(10**6, ChunkRow("user", {"who": "child"}))
        outcome["inherited"] = "written"
    except PersistenceError as exc:
        outcome["inherited"] = str(exc)
    outcome["inherited_seconds"] = time.monotonic() - started
    own_path = os.path.join(directory, f"child-{number}.jsonl")
    own = SessionWriter(Session(id=f"child-{number}"), path=own_path)
    own.write_chunk(0, ChunkRow("user", {"who": "child"}))
    own.close()
    outcome["own"] = "closed"
    return outcome


thread = threading.Thread(target=write_big_records, daemon=True)
thread.start()
hung = 0
for number in range(forks):
    writing.set()
    time.sleep(0.002)  # let the thread get into a 4 MiB write
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, json.dumps(child(number)).encode())
        os._exit(0)
    writing.clear()
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 10.0)
    if not ready:
        hung += 1
        os.kill(pid, 9)
        print(json.dumps({"hung": number}), flush=True)
    else:
        print(os.read(read_end, 65536).decode(), flush=True)
    os.waitpid(pid, 0)
    os.close(read_end)
stop.set()
writing.set()
thread.join()
writer.close()
"""

FORKS = 8


def test_a_child_gets_persistence_error_at_once_and_can_open_its_own_writers(tmp_path: Path):
    done = run_python(SCRIPT, str(tmp_path), str(FORKS))
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(outcomes) == FORKS, done.stdout
    for outcome in outcomes:
        assert "hung" not in outcome, outcome
        assert "forked process" in outcome["inherited"], outcome
        assert outcome["inherited_seconds"] < 1.0, outcome
        assert outcome["own"] == "closed", outcome
    for number in range(FORKS):
        records, tail = split_wal((tmp_path / f"child-{number}.jsonl").read_bytes())
        assert [r["record_type"] for r in records] == ["header", "chunk", "trailer"]
    # The parent's file holds only the parent's records, whole.
    parent = (tmp_path / "parent.jsonl").read_bytes()
    assert b'"child"' not in parent
    records, tail = split_wal(parent)
    assert tail == b""
    assert [r["record_type"] for r in records[:1] + records[-1:]] == ["header", "trailer"]
    assert records[-1]["final_chunk_count"] == len(records) - 2
