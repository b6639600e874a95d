"""The ``sync=`` argument itself: validation, and the interval syncer's
thread living exactly as long as its writer (what each mode syncs is
checked by strace in ``test_crash_strace.py`` and by the Rust tests)."""

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


@pytest.mark.parametrize("release", ["close", "abandon", "drop"])
def test_the_interval_syncer_thread_stops_with_its_writer(tmp_path, release):
    assert threading.active_count() == 1, "this check needs no other Python threads"
    before = os_threads()
    writer = sessionwal.SessionWriter(
        make_session(), path=tmp_path / "s.jsonl", sync="interval", sync_interval=0.001
    )
    assert os_threads() == before + 1
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    if release == "drop":
        del writer
    else:
        getattr(writer, release)()
    assert os_threads() == before, "the syncer thread outlived its writer"


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
