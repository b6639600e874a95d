"""Who may write to a session file: one writer per file across processes and
threads, never a forked child, never through a planted symlink or FIFO,
never after the path was swapped under it, never outside the sessions
directory; and threads sharing one writer never interleave records."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from crash_helpers import popen_python, run_python, split_wal, tree

import sessionwal
from sessionwal import ChunkRow, PersistenceError

from conftest import WRITERS, make_session

RACER = """
import sys
from sessionwal import ChunkRow, PersistenceError, Session
{import_writer}
path, tag = sys.argv[1], sys.argv[2]
sys.stdin.readline()  # the start gate: every racer is up
try:
    writer = SessionWriter(Session(id="race"), path=path)
except PersistenceError:
    writer = None
print("lost" if writer is None else "won", flush=True)
sys.stdin.readline()  # every racer has tried
if writer is None:
    sys.exit(0)
for i in range(40):
    writer.write_chunk(i, ChunkRow("user", {{"tag": tag, "i": i, "pad": tag * (50 * i)}}))
writer.close()
"""


def test_processes_racing_for_one_id_exactly_one_wins(tmp_path):
    path = tmp_path / "s.jsonl"
    kinds = ["native", "pure", "native", "pure", "native", "native"]
    racers = []
    for n, kind in enumerate(kinds):
        imports = {
            "native": "from sessionwal import SessionWriter",
            "pure": "from sessionwal.pure import SessionWriter",
        }
        code = RACER.format(import_writer=imports[kind])
        racers.append(
            popen_python(
                code,
                str(path),
                f"{kind}{n}",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for racer in racers:
        racer.stdin.write("\n")
        racer.stdin.flush()
    results = [racer.stdout.readline().strip() for racer in racers]
    assert sorted(results) == ["lost"] * (len(kinds) - 1) + ["won"], results
    for racer in racers:
        racer.stdin.write("\n")
        racer.stdin.flush()
    for racer in racers:
        _, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
    winner = f"{kinds[results.index('won')]}{results.index('won')}"
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header"] + ["chunk"] * 40 + ["trailer"]
    assert {r["payload"]["tag"] for r in records[1:-1]} == {winner}
    assert [r["payload"]["i"] for r in records[1:-1]] == list(range(40))


def test_threads_racing_for_one_id_exactly_one_wins(tmp_path):
    path = tmp_path / "s.jsonl"
    classes = [WRITERS["native"], WRITERS["pure"]] * 4
    barrier = threading.Barrier(len(classes))
    outcomes: list[object] = [None] * len(classes)

    def race(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = classes[n](make_session(), path=path)
        except PersistenceError as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(classes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if not isinstance(o, PersistenceError)]
    assert len(winners) == 1, outcomes
    winners[0].write_chunk(0, ChunkRow("user", {"n": 0}))
    winners[0].close()
    records, _ = split_wal(path.read_bytes())
    assert [r["record_type"] for r in records] == ["header", "chunk", "trailer"]


@pytest.mark.parametrize("dangling", [False, True])
def test_symlink_at_the_partial_path_is_refused(tmp_path, dangling):
    target = tmp_path / "elsewhere" / "target"
    target.parent.mkdir()
    if not dangling:
        target.write_bytes(b"precious\n")
    path = tmp_path / "sessions" / "s.jsonl"
    path.parent.mkdir()
    path.with_name("s.jsonl.__partial__").symlink_to(target)
    with pytest.raises(OSError) as info:
        sessionwal.SessionWriter(make_session(), path=path)
    assert info.value.errno == errno.ELOOP
    if dangling:
        assert not target.exists(), "the symlink was followed to create its target"
    else:
        assert target.read_bytes() == b"precious\n"
    assert not path.exists()


def test_fifo_at_the_partial_path_is_refused_without_blocking(tmp_path):
    path = tmp_path / "s.jsonl"
    os.mkfifo(path.with_name("s.jsonl.__partial__"))
    with pytest.raises(PersistenceError, match="not a regular file"):
        sessionwal.SessionWriter(make_session(), path=path)


BAD_IDS = ["", ".", "..", "../escape", "../../escape", "a/b", "/abs", "x\0y", "..\0"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_path_traversal_ids_are_refused_with_nothing_created(
    writer_cls, tmp_path, sessionwal_home, bad_id
):
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="invalid session id"):
        writer_cls(make_session(bad_id))
    assert tree(tmp_path) == before
    for helper in (sessionwal.session_file, sessionwal.session_partial_file):
        with pytest.raises(ValueError, match="invalid session id"):
            helper(bad_id)


FORK = """
import gc, json, os, sys
from sessionwal import ChunkRow, PersistenceError, Session, SessionWriter

path, sync = sys.argv[1], sys.argv[2]
writer = SessionWriter(Session(id="fork"), path=path, sync=sync, sync_interval=0.001)
writer.write_chunk(0, ChunkRow("user", {"who": "parent"}))
pid = os.fork()
if pid == 0:
    outcome = {}
    calls = {
        "write_chunk": lambda: writer.write_chunk(1, ChunkRow("user", {"who": "child"})),
        "write_chunks": lambda: writer.write_chunks([(1, ChunkRow("user", {"who": "child"}))]),
        "close": writer.close,
    }
    for name, call in calls.items():
        try:
            call()
            outcome[name] = "written"
        except PersistenceError as exc:
            outcome[name] = str(exc)
    print(json.dumps(outcome), flush=True)
    writer.abandon()
    del writer
    gc.collect()
    sys.exit(0)  # a normal interpreter exit: destructors run in the child
_, status = os.waitpid(pid, 0)
writer.write_chunk(1, ChunkRow("user", {"who": "parent"}))
writer.close()
print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status)}))
"""


@pytest.mark.parametrize("sync", ["close", "interval", "always"])
def test_forked_child_cannot_write_and_the_file_holds_only_the_parents_records(tmp_path, sync):
    path = tmp_path / "s.jsonl"
    done = run_python(FORK, str(path), sync)
    assert done.returncode == 0, done.stderr
    child, parent = (json.loads(line) for line in done.stdout.splitlines())
    for call, outcome in child.items():
        assert "forked process" in outcome, (call, outcome)
    assert parent == {"child_exit": 0}, done.stderr
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header", "chunk", "chunk", "trailer"]
    assert [r["payload"] for r in records[1:3]] == [{"who": "parent"}] * 2
    assert not path.with_name("s.jsonl.__partial__").exists()


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_path_swapped_under_a_locked_writer_is_refused_at_close(tmp_path, how):
    path = tmp_path / "s.jsonl"
    ours = sessionwal.SessionWriter(make_session("ours"), path=path)
    ours.write_chunk(0, ChunkRow("user", {"who": "ours"}))
    if how == "rename":
        ours.partial_path.rename(tmp_path / "moved-away")
    else:
        ours.partial_path.unlink()
    theirs = sessionwal.SessionWriter(make_session("theirs"), path=path)
    theirs.write_chunk(0, ChunkRow("user", {"who": "theirs"}))
    their_bytes = theirs.partial_path.read_bytes()
    with pytest.raises(PersistenceError, match="was replaced or removed"):
        ours.close()
    assert not path.exists(), "renamed over the other writer's file"
    assert theirs.partial_path.read_bytes() == their_bytes
    theirs.close()
    records, _ = split_wal(path.read_bytes())
    assert records[0]["id"] == "theirs"
    assert [r["record_type"] for r in records] == ["header", "chunk", "trailer"]


def test_close_after_the_partial_was_removed_is_silent_like_the_seed(writer_cls, tmp_path):
    path = tmp_path / "s.jsonl"
    writer = writer_cls(make_session(), path=path)
    writer.partial_path.unlink()
    writer.close()
    assert not path.exists()
    assert not writer.partial_path.exists()


def test_reopen_after_a_crash_cuts_the_torn_record(tmp_path):
    path = tmp_path / "s.jsonl"
    first = sessionwal.SessionWriter(make_session(), path=path)
    first.write_chunk(0, ChunkRow("user", {"n": 0}))
    first.abandon()
    intact = first.partial_path.read_bytes()
    with first.partial_path.open("ab") as crashed:
        crashed.write(b'{"record_type": "chunk", "index": 1, "kind": "us')
    second = sessionwal.SessionWriter(make_session(), path=path)
    second.write_chunk(1, ChunkRow("user", {"n": 1}))
    second.close()
    data = path.read_bytes()
    assert data.startswith(intact)
    records, tail = split_wal(data)
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header", "chunk", "header", "chunk", "trailer"]


def test_threads_sharing_a_writer_never_interleave_records(tmp_path):
    path = tmp_path / "s.jsonl"
    writer = sessionwal.SessionWriter(make_session(), path=path, sync="never")
    per_thread = 60

    def work(t: int) -> None:
        for i in range(per_thread):
            row = ChunkRow(
                "assistant", {"t": t, "i": i, "pad": "p" * ((t * 7919 + i * 104729) % 150_000)}
            )
            if i % 3:
                writer.write_chunk(t * 1000 + i, row)
            else:
                writer.write_chunks([(t * 1000 + i, row)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    chunks = records[1:-1]
    assert len(chunks) == 6 * per_thread == writer.chunks_written
    for t in range(6):
        mine = [c["payload"]["i"] for c in chunks if c["payload"]["t"] == t]
        assert mine == list(range(per_thread)), "a thread's records out of order or lost"


def test_the_gil_is_released_while_the_kernel_writes(tmp_path):
    """With a huge switch interval, the only way the main thread can run
    while another thread is inside ``write_chunk`` is if the native code
    released the GIL around its write and fdatasync."""
    writer = sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl", sync="always")
    big = ChunkRow("tool_result", {"output": "o" * (4 << 20)})
    state = {"inside": False, "seen_inside": False}

    def write() -> None:
        for i in range(8):
            state["inside"] = True
            writer.write_chunk(i, big)
            state["inside"] = False

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=write)
        thread.start()
        while thread.is_alive():
            # Sleeping releases the GIL so the writer can run; waking needs it back.
            time.sleep(0.0005)
            if state["inside"]:
                state["seen_inside"] = True
        thread.join()
    finally:
        sys.setswitchinterval(old)
    writer.close()
    assert state["seen_inside"], "the main thread never ran while a write was in progress"


def test_created_with_0600_even_under_umask_0_and_appends_keep_it(writer_cls, tmp_path):
    old = os.umask(0)
    try:
        writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
        mode = Path(writer.partial_path).stat().st_mode & 0o777
        writer.abandon()
        again = writer_cls(make_session(), path=tmp_path / "s.jsonl")
        again.close()
    finally:
        os.umask(old)
    assert mode == 0o600
    assert (tmp_path / "s.jsonl").stat().st_mode & 0o777 == 0o600
