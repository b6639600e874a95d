"""Readers never make a writer's open fail; a second writer is still refused (issue: drop-in
hardening). Deterministic: the reader's probe is held on purpose while a writer opens."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow, PersistenceError, files

from conftest import make_session


def crashed_partial(writer_cls, session_id: str) -> Path:
    writer = writer_cls(make_session(session_id))
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    writer.abandon()
    return sessionwal.session_partial_file(session_id)


def hold_reader_probe(path: Path, seconds: float) -> list[float]:
    """A reader probing ``path``'s lock (as when no writer holds it) for ``seconds``;
    the list gets the ``time.monotonic()`` at which it let go."""
    holding = threading.Event()
    released_at: list[float] = []

    def probe() -> None:
        with files.lock_unless_written(path) as held:
            assert held is True
            holding.set()
            time.sleep(seconds)
            released_at.append(time.monotonic())

    threading.Thread(target=probe, daemon=True).start()
    assert holding.wait(5)
    return released_at


def test_a_writer_opening_while_a_reader_probes_waits_for_it(writer_cls):
    # Only an open that began while the probe still held the lock proves
    # anything (on a busy host this thread may run after it let go): retry.
    for attempt in range(20):
        session_id = f"s{attempt}"
        partial = crashed_partial(writer_cls, session_id)
        # Far longer than any real probe (microseconds), well inside the writer's patience.
        released_at = hold_reader_probe(partial, files.WRITER_LOCK_PATIENCE / 5)
        opened_at = time.monotonic()
        with writer_cls(make_session(session_id)) as writer:
            writer.write_chunk(1, ChunkRow("user", {"n": 1}))
        assert sessionwal.load_session(session_id).closed
        if opened_at < released_at[0]:
            return
    pytest.fail("the writer never opened while the probe held the lock")


def test_a_lock_held_past_the_patience_still_refuses_the_writer(writer_cls):
    partial = crashed_partial(writer_cls, "s")
    hold_reader_probe(partial, files.WRITER_LOCK_PATIENCE * 6)
    started = time.monotonic()
    with pytest.raises(PersistenceError, match="already writing"):
        writer_cls(make_session("s"))
    assert time.monotonic() - started >= files.WRITER_LOCK_PATIENCE * 0.9


def test_a_second_writer_is_refused(writer_cls):
    with writer_cls(make_session("s")):
        for other in (sessionwal.SessionWriter, sessionwal.pure.SessionWriter):
            with pytest.raises(PersistenceError, match="already writing"):
                other(make_session("s"))


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks (Linux)")
def test_readers_of_a_live_session_never_touch_its_lock(writer_cls, monkeypatch):
    probes: list[object] = []
    real_try_lock = files._try_lock
    with writer_cls(make_session("s")) as writer:
        writer.write_chunk(0, ChunkRow("user", {"n": 0}))
        # From here on, every flock attempt in the package is a reader's.
        monkeypatch.setattr(files, "_try_lock", lambda fd: probes.append(fd) or real_try_lock(fd))
        assert files.writer_holds_lock(writer.partial_path)
        assert files.state_of(writer.partial_path).state == "in_flight"
        assert [info.state for info in sessionwal.list_sessions()] == ["in_flight"]
        assert sessionwal.load_session("s").verdict().state == "in_flight"
        with open(writer.partial_path, "rb") as reader:
            assert files.writer_holds_lock(reader.fileno())
        assert probes == []


@pytest.mark.parametrize("tool", ["repair renames it", "delete unlinks it"])
def test_a_writer_that_waited_on_a_tool_writes_its_own_file(writer_cls, tool):
    # repair and delete_session hold the lock, then rename or remove the
    # file. A writer that opened it meanwhile and waited for the lock must
    # not write into what was renamed (the repaired final file) or removed.
    partial = crashed_partial(writer_cls, "s")
    elsewhere = partial.with_name("moved-by-the-tool")
    holding = threading.Event()

    def hold_then_move() -> None:
        with files.lock_unless_written(partial) as held:
            assert held is True
            holding.set()
            time.sleep(files.WRITER_LOCK_PATIENCE / 5)
            if tool == "repair renames it":
                partial.rename(elsewhere)
            else:
                partial.unlink()

    tool_thread = threading.Thread(target=hold_then_move)
    tool_thread.start()
    assert holding.wait(5)
    with writer_cls(make_session("s")) as writer:
        writer.write_chunk(7, ChunkRow("user", {"n": 7}))
    tool_thread.join()
    loaded = sessionwal.load_session("s")
    assert (loaded.closed, loaded.chunk_indices) == (True, (7,))
    if tool == "repair renames it":
        assert [r["record_type"] for r in sessionwal.iter_records(elsewhere)] == ["header", "chunk"]
