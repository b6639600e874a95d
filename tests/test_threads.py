"""Threads: a shared native writer never interleaves records and counts exactly.

Records are large enough (up to 256 KiB) that a write split into pieces, or
two writes racing on one offset, would show up as a line that does not parse.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest

import sessionwal
from sessionwal import ChunkRow

from conftest import make_session, read_lines

SIZES = [10, 3000, 70_000, 1, 262_144, 500]


def payload(thread: int, seq: int) -> dict:
    size = SIZES[(thread + seq) % len(SIZES)]
    return {"t": thread, "seq": seq, "body": chr(0x41 + thread % 26) * size + "é世😀\n"}


def run_threads(n: int, target) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def body(t: int) -> None:
        try:
            start.wait()
            target(t)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def check_records(lines: list[str], threads: int, per_thread: int) -> None:
    seen: dict[int, list[int]] = defaultdict(list)
    for line in lines:
        record = json.loads(line)  # a torn or interleaved line fails here
        if record["record_type"] != "chunk":
            continue
        body = record["payload"]
        assert body == payload(body["t"], body["seq"])
        seen[body["t"]].append(body["seq"])
    # Each thread's own records land in the order it wrote them, none lost or doubled.
    assert {t: seq for t, seq in seen.items()} == {
        t: list(range(per_thread)) for t in range(threads)
    }


@pytest.mark.parametrize("sync", ["never", "always"])
def test_shared_writer_never_interleaves_and_counts_exactly(tmp_path, sync):
    threads, per_thread = 8, 120 if sync == "never" else 30
    writer = sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl", sync=sync)

    def work(t: int) -> None:
        for seq in range(per_thread):
            writer.write_chunk(seq, ChunkRow("tool_result", payload(t, seq)))

    run_threads(threads, work)
    assert writer.chunks_written == threads * per_thread
    writer.close()
    lines = read_lines(writer.path)
    assert len(lines) == threads * per_thread + 2
    assert json.loads(lines[-1])["final_chunk_count"] == threads * per_thread
    check_records(lines, threads, per_thread)


def test_shared_writer_batches_from_threads_stay_whole(tmp_path):
    threads, batches, batch = 6, 15, 8
    writer = sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl")

    def work(t: int) -> None:
        for b in range(batches):
            seqs = range(b * batch, (b + 1) * batch)
            writer.write_chunks((seq, ChunkRow("tool_result", payload(t, seq))) for seq in seqs)

    run_threads(threads, work)
    writer.close()
    lines = read_lines(writer.path)
    assert writer.chunks_written == threads * batches * batch
    check_records(lines, threads, batches * batch)
    # A batch is one write: its records are adjacent in the file.
    owners = [json.loads(line)["payload"]["t"] for line in lines[1:-1]]
    for start in range(0, len(owners), batch):
        assert len(set(owners[start : start + batch])) == 1


def test_threads_with_their_own_writers(tmp_path):
    threads, per_thread = 6, 60
    writers = [
        sessionwal.SessionWriter(make_session(f"s{t}"), path=tmp_path / f"s{t}.jsonl")
        for t in range(threads)
    ]

    def work(t: int) -> None:
        for seq in range(per_thread):
            writers[t].write_chunk(seq, ChunkRow("tool_result", payload(t, seq)))
        writers[t].close()

    run_threads(threads, work)
    for t, writer in enumerate(writers):
        assert writer.chunks_written == per_thread
        lines = read_lines(writer.path)
        seqs = [json.loads(line)["payload"]["seq"] for line in lines[1:-1]]
        assert seqs == list(range(per_thread))
        assert {json.loads(line)["payload"]["t"] for line in lines[1:-1]} == {t}


def test_close_racing_writers_leaves_whole_records(tmp_path):
    writer = sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl")
    stop = threading.Event()
    results: dict[int, int] = {}

    def work(t: int) -> None:
        written = 0
        try:
            while not stop.is_set():
                writer.write_chunk(written, ChunkRow("user", payload(t, written)))
                written += 1
        except RuntimeError as exc:
            assert "closed" in str(exc)
        results[t] = written

    def closer(t: int) -> None:
        if t == 0:
            while writer.chunks_written < 200:
                pass
            writer.close()
            stop.set()
        else:
            work(t)

    run_threads(5, closer)
    lines = read_lines(writer.path)
    trailer = json.loads(lines[-1])
    assert trailer["record_type"] == "trailer"
    assert trailer["final_chunk_count"] == len(lines) - 2 == sum(results.values())
