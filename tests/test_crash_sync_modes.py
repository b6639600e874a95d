"""The ``sync=`` argument itself: validation, and the interval syncer's
threads, shared by every interval writer of the process (what each mode
syncs, and that a released writer is synced no more, is checked by strace in
``test_crash_strace.py`` and by the Rust tests)."""

from __future__ import annotations

import os
import threading

import pytest

import sessionwal
from sessionwal import ChunkRow

from conftest import make_session


def os_threads() -> int:
    """Threads of this process, Python's and native ones alike."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sync": "sometimes"}, "sync must be one of"),
        ({"sync": "ALWAYS"}, "sync must be one of"),
        ({"sync": "interval", "sync_interval": 0}, "sync_interval must be a positive"),
        ({"sync": "interval", "sync_interval": -1.0}, "sync_interval must be a positive"),
        ({"sync": "interval", "sync_interval": float("nan")}, "sync_interval must be a positive"),
    ],
)
def test_invalid_sync_options_are_refused_before_touching_the_disk(
    writer_cls, tmp_path, options, message
):
    with pytest.raises(ValueError, match=message):
        writer_cls(make_session(), path=tmp_path / "s.jsonl", **options)
    assert list(tmp_path.iterdir()) == []


# The most threads the shared interval syncer runs (rust/syncer.rs): its
# timer thread and up to SYNC_THREADS fdatasync threads started on demand.
INTERVAL_SYNC_THREADS = 1 + 8


@pytest.mark.parametrize("release", ["close", "abandon", "drop"])
def test_interval_writers_share_a_bounded_set_of_sync_threads(tmp_path, release):
    # Issue 17: a thread per interval writer made threads grow with sessions.
    assert threading.active_count() == 1, "this check needs no other Python threads"
    before = os_threads()
    for _round in range(3):  # open, write and release 40 writers, three times over
        writers = [
            sessionwal.SessionWriter(
                make_session(f"s{n}"),
                path=tmp_path / f"s{n}.jsonl",
                sync="interval",
                sync_interval=0.001,
            )
            for n in range(40)
        ]
        for writer in writers:
            writer.write_chunk(0, ChunkRow("user", {"n": 0}))
        assert os_threads() <= before + INTERVAL_SYNC_THREADS
        for writer in writers:
            if release != "drop":
                getattr(writer, release)()
        del writers, writer
        for path in tmp_path.iterdir():
            path.unlink()
    assert os_threads() <= before + INTERVAL_SYNC_THREADS


@pytest.mark.parametrize("sync", ["never", "close", "always"])
def test_other_modes_start_no_thread(tmp_path, sync):
    before = os_threads()
    writer = sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl", sync=sync)
    assert os_threads() == before
    writer.close()


@pytest.mark.parametrize("sync", ["never", "close", "interval", "always"])
def test_every_mode_writes_the_same_bytes(tmp_path, fixed_clock, sync):
    files = {}
    for name in ("never", sync):
        path = tmp_path / f"{name}-{sync}.jsonl"
        with sessionwal.SessionWriter(make_session(), path=path, sync=name) as writer:
            writer.write_chunk(0, ChunkRow("user", {"n": 0}))
            writer.write_chunks([(1, ChunkRow("user", {"n": 1})), (2, ChunkRow("user", {}))])
        files[name] = path.read_bytes()
    assert files[sync] == files["never"]
