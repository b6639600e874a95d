"""The loader: what both writers write reads back; every reader stops at the last valid record."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import sessionwal
from sessionwal import (
    ChunkKind,
    ChunkRow,
    PersistenceError,
    SessionFormatError,
    Usage,
    delete_session,
    iter_records,
    list_sessions,
    load_session,
    prune_sessions,
)
from sessionwal.scan import summarize

from conftest import FIXED_CLOSED_AT, FIXED_CREATED_AT, make_session

ROWS = [
    ChunkRow(ChunkKind.USER, {"content": 'hi "there"\n\t\\ é 世 😀'}),
    ChunkRow(ChunkKind.ASSISTANT, {"content": "ok", "tool_calls": [{"id": "c1", "args": {}}]}),
    ChunkRow("custom-kind", {"n": [1, 2.5, None, True], "nested": {"deep": [[{}]]}}),
    ChunkRow(ChunkKind.TOOL_RESULT, {"output": "x" * 5000}),
]

HEADER = json.dumps(sessionwal.build_header(make_session("s")))
CHUNK = '{"record_type": "chunk", "index": 0, "kind": "user", "payload": {"a": 1}}'
TRAILER = (
    '{"record_type": "trailer", "closed_at": "2026-01-02T04:05:06+00:00", '
    '"final_chunk_count": 1, "cumulative_usage": null}'
)


def session(session_id: str = "session-1", **fields) -> sessionwal.Session:
    """make_session, with created_at overridable."""
    return sessionwal.Session(id=session_id, **{"created_at": FIXED_CREATED_AT, **fields})


def write_session(writer_cls, path: Path | None, rows=ROWS, *, close=True, **session_fields):
    writer = writer_cls(session(**session_fields), path=path)
    for i, row in enumerate(rows):
        writer.write_chunk(i, row)
    if close:
        writer.close()
    else:
        writer.abandon()
    return writer


def write_lines(path: Path, *lines: str, tail: bytes = b"") -> Path:
    path.write_bytes("".join(line + "\n" for line in lines).encode() + tail)
    return path


# ------------------------------------------------------------------ reading back


def test_both_writers_read_back(writer_cls, tmp_path, fixed_clock):
    session = make_session(usage=Usage(prompt_tokens=2, completion_tokens=3))
    writer = writer_cls(session, path=tmp_path / "s.jsonl", sandbox_handle_id="box")
    for i, row in enumerate(ROWS):
        writer.write_chunk(i * 10, row)
    writer.close()
    loaded = load_session(path=tmp_path / "s.jsonl")
    assert loaded.path == tmp_path / "s.jsonl"
    assert loaded.header == sessionwal.build_header(session, sandbox_handle_id="box")
    assert loaded.chunks == tuple(ROWS)
    assert loaded.chunks[0].kind is ChunkKind.USER
    assert loaded.chunks[2].kind == "custom-kind"
    assert loaded.chunk_indices == (0, 10, 20, 30)
    assert loaded.trailer == {
        "record_type": "trailer",
        "closed_at": FIXED_CLOSED_AT.isoformat(),
        "final_chunk_count": 4,
        "cumulative_usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    }
    assert loaded.closed and not loaded.partial and not loaded.recovered
    assert loaded.id == "session-1" and loaded.torn_bytes == 0
    assert list(iter_records(loaded.path)) == [
        json.loads(line) for line in loaded.path.read_text().splitlines()
    ]


def test_load_by_id_falls_back_to_the_partial_file(writer_cls):
    writer = write_session(writer_cls, None, close=False, session_id="abc")
    loaded = load_session("abc")
    assert loaded.path == sessionwal.session_partial_file("abc")
    assert writer.partial_path == loaded.path.resolve()
    assert loaded.chunks == tuple(ROWS)
    assert loaded.trailer is None and not loaded.closed and loaded.partial


def test_explicit_final_path_falls_back_to_its_partial_file(writer_cls, tmp_path):
    write_session(writer_cls, tmp_path / "s.jsonl", close=False)
    loaded = load_session(path=tmp_path / "s.jsonl")
    assert loaded.path == tmp_path / "s.jsonl.__partial__"
    assert len(loaded.chunks) == len(ROWS)


def test_final_file_wins_over_a_partial_one(writer_cls, tmp_path):
    write_session(writer_cls, tmp_path / "s.jsonl", rows=ROWS[:1])
    write_session(writer_cls, tmp_path / "s.jsonl", rows=ROWS[:2], close=False)
    loaded = load_session(path=tmp_path / "s.jsonl")
    assert loaded.closed and len(loaded.chunks) == 1


def test_a_live_session_reads_while_its_writer_writes(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.write_chunk(0, ROWS[0])
    assert load_session(path=tmp_path / "s.jsonl").chunks == (ROWS[0],)
    writer.write_chunk(1, ROWS[1])
    assert load_session(path=tmp_path / "s.jsonl").chunks == (ROWS[0], ROWS[1])
    writer.close()


def test_trailer_in_a_partial_file_is_not_closed(writer_cls, tmp_path):
    # A crash between the trailer and the rename: complete, but not advertised as closed.
    write_session(writer_cls, tmp_path / "s.jsonl")
    os.rename(tmp_path / "s.jsonl", tmp_path / "s.jsonl.__partial__")
    loaded = load_session(path=tmp_path / "s.jsonl")
    assert loaded.trailer is not None and not loaded.closed


@pytest.mark.parametrize("tail", [b"{", b'{"record_type": "chunk", "index": 4, "kind"', b"x" * 9])
def test_torn_last_line_is_skipped(writer_cls, tmp_path, tail):
    writer = write_session(writer_cls, tmp_path / "s.jsonl", close=False)
    with open(writer.partial_path, "ab") as file:
        file.write(tail)
    loaded = load_session(path=writer.partial_path)
    assert loaded.chunks == tuple(ROWS)
    assert loaded.torn_bytes == len(tail)
    assert [r["record_type"] for r in iter_records(writer.partial_path)] == ["header"] + [
        "chunk"
    ] * len(ROWS)


def test_missing_session(tmp_path):
    with pytest.raises(FileNotFoundError, match="no session file") as info:
        load_session("nope")
    assert info.value.filename == str(sessionwal.session_file("nope"))
    with pytest.raises(FileNotFoundError):
        load_session(path=tmp_path / "x.jsonl")
    with pytest.raises(TypeError, match="either"):
        load_session()
    with pytest.raises(TypeError, match="either"):
        load_session("a", path=tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match="invalid session id"):
        load_session("../escape")


# ------------------------------------------------------------------ the recovery rule

OTHER_HEADER = json.dumps(sessionwal.build_header(make_session("other")))

# (lines, how many of them are the valid log, the kind of what follows): the
# log ends at the first line that is not a valid record in sequence.
TAILS = {
    "invalid json": ([HEADER, '{"record_type": "chunk", "index": }'], 1, "garbage"),
    "invalid json in an unknown shape": ([HEADER, "{nope"], 1, "garbage"),
    "invalid utf-8": ([HEADER, CHUNK[:-3] + '"\udce9"}}'], 1, "garbage"),
    "not an object": ([HEADER, "[1, 2]"], 1, "garbage"),
    "a string record": ([HEADER, '"chunk"'], 1, "garbage"),
    "chunk before header": ([CHUNK, HEADER], 0, "out of sequence"),
    "trailer before header": ([TRAILER], 0, "out of sequence"),
    "header of another session": ([HEADER, CHUNK, OTHER_HEADER, CHUNK], 2, "out of sequence"),
    "unknown record_type": (
        [HEADER, '{"record_type": "checkpoint", "index": 0}'],
        1,
        "unrecognized record",
    ),
    "no record_type": ([HEADER, '{"index": 0}'], 1, "unrecognized record"),
    "record after the trailer": ([HEADER, CHUNK, TRAILER, CHUNK], 3, "out of sequence"),
    "reopened after the trailer": ([HEADER, CHUNK, TRAILER, HEADER, CHUNK], 5, None),
    "valid records after garbage": ([HEADER, CHUNK, "junk", CHUNK, TRAILER], 2, "garbage"),
    "NUL run then records": ([HEADER, CHUNK, "\0" * 5000 + CHUNK, CHUNK], 2, "hole"),
    "empty file": ([], 0, None),
}


def tailed_file(tmp_path: Path, case: str) -> tuple[Path, int, str | None]:
    """The case as a crashed partial file; returns (path, bytes of its valid log, tail kind)."""
    lines, kept, kind = TAILS[case]
    path = tmp_path / "bad.jsonl.__partial__"
    encoded = [(line + "\n").encode("utf-8", "surrogateescape") for line in lines]
    path.write_bytes(b"".join(encoded))
    return path, sum(map(len, encoded[:kept])), kind


@pytest.mark.parametrize("case", sorted(TAILS))
def test_readers_stop_at_the_last_valid_record(tmp_path, case):
    path, log_bytes, kind = tailed_file(tmp_path, case)
    lines, kept, _ = TAILS[case]
    size = path.stat().st_size
    if kept == 0:
        # No header in the log: nothing to load, and the error says so at line 1.
        with pytest.raises(
            SessionFormatError, match=r"bad\.jsonl\.__partial__:1: no complete header"
        ):
            load_session(path=path)
        assert summarize(path).header == {}
        return
    loaded = load_session(path=path)
    expected_chunks = sum(1 for line in lines[:kept] if line == CHUNK)
    assert (len(loaded.chunks), loaded.torn_bytes, loaded.tail) == (
        expected_chunks,
        size - log_bytes,
        kind,
    )
    assert loaded.tail_line == (kept + 1 if kind else None)
    assert len(list(iter_records(path))) == kept
    # The native summary (ls, verify) finds the same end.
    summary = summarize(path)
    assert (summary.chunk_count, summary.torn_bytes, summary.tail, summary.tail_line) == (
        expected_chunks,
        size - log_bytes,
        kind,
        kept + 1 if kind else None,
    )
    assert (loaded.trailer, summary.trailer) == (None, None) or lines[kept - 1] == TRAILER


def test_a_line_longer_than_the_maximum_is_an_error_not_a_tail(tmp_path, monkeypatch):
    long = '{"record_type": "chunk", "payload": "' + "x" * 400 + '"}'
    path = write_lines(tmp_path / "s.jsonl.__partial__", HEADER, CHUNK, long, CHUNK)
    with pytest.raises(
        SessionFormatError, match=r"s\.jsonl\.__partial__:3: line is longer than 300"
    ):
        sessionwal.records.valid_log(path, max_line=300)
    # Within the maximum it is a record.
    assert sessionwal.records.valid_log(path, max_line=439).chunks == 3
    # Every reader takes the limit from the environment, and says the same.
    monkeypatch.setenv("SESSIONWAL_MAX_LINE_BYTES", "300")
    with pytest.raises(SessionFormatError, match=r":3: line is longer than 300 bytes"):
        load_session(path=path)
    verdict = sessionwal.files.state_of(path)
    assert verdict.state is sessionwal.SessionState.CORRUPT and verdict.exit_code == 2
    # A NUL in it makes it a crash tail: no record holds one.
    path.write_bytes(path.read_bytes().replace(b"xxxx", b"x\0xx", 1))
    assert load_session(path=path).tail == "hole"


def test_a_corrupt_chunk_payload_ends_the_log_for_every_reader(tmp_path):
    # Every line is checked natively, so ls sees what load_session sees.
    path, *_ = tailed_file(tmp_path, "invalid json")
    assert summarize(path).chunk_count == len(load_session(path=path).chunks) == 0


def test_reopened_abandoned_session_reads_as_one_session(writer_cls, tmp_path):
    # Writers append a second header when an abandoned id is reopened (as the
    # seed does, and runtimes rely on it): the loader reads both segments.
    write_session(writer_cls, tmp_path / "s.jsonl", rows=ROWS[:1], close=False)
    write_session(writer_cls, tmp_path / "s.jsonl", rows=ROWS[:2])
    loaded = load_session(path=tmp_path / "s.jsonl")
    assert loaded.closed
    assert [c.payload for c in loaded.chunks] == [ROWS[0].payload, *(r.payload for r in ROWS[:2])]
    assert loaded.header["id"] == "session-1"
    assert loaded.trailer["final_chunk_count"] == 2


# ------------------------------------------------------------------ listing


def test_list_sessions_sorted_with_states(writer_cls, sessionwal_home):
    newest = FIXED_CREATED_AT + timedelta(hours=2)
    oldest = FIXED_CREATED_AT - timedelta(hours=2)
    write_session(writer_cls, None, session_id="closed", created_at=newest)
    crashed = write_session(writer_cls, None, rows=ROWS[:2], close=False, session_id="crashed")
    with open(crashed.partial_path, "ab") as file:
        file.write(b'{"record_type": "ch')
    live = writer_cls(session("live", created_at=oldest))
    live.write_chunk(0, ROWS[0])
    (sessionwal.sessions_dir() / "notes.txt").write_text("not a session")
    (sessionwal.sessions_dir() / "x.jsonl.__partial__.bak").write_text("a backup")
    infos = list_sessions()
    assert [(i.id, i.state, i.closed, i.chunk_count) for i in infos] == [
        ("live", "in_flight", False, 1),
        ("crashed", "crashed", False, 2),
        ("closed", "closed", True, len(ROWS)),
    ]
    for info in infos:
        assert info.size == info.path.stat().st_size
    assert infos[0].created_at == oldest and infos[2].created_at == newest
    assert infos[1].torn_bytes == len(b'{"record_type": "ch')
    assert infos[1].path == sessionwal.session_partial_file("crashed")
    live.close()
    assert [i.state for i in list_sessions()] == ["closed", "crashed", "closed"]


def test_list_sessions_skips_unreadable_files_with_a_warning(tmp_path, caplog):
    write_session(sessionwal.SessionWriter, tmp_path / "session-1.jsonl")
    write_lines(tmp_path / "bad.jsonl", HEADER, "[]")
    write_lines(tmp_path / "s.jsonl", HEADER, CHUNK)  # final name, no trailer
    (tmp_path / "dir.jsonl").mkdir()
    with caplog.at_level(logging.WARNING, logger="sessionwal.loader"):
        infos = list_sessions(tmp_path)
    assert [i.path.name for i in infos] == ["session-1.jsonl"]
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        f"skipping session file {tmp_path / 'bad.jsonl'}: {tmp_path / 'bad.jsonl'}: "
        "the header's session id 's' does not match the file name (which names 'bad')",
        f"skipping session file {tmp_path / 's.jsonl'}: "
        f"{tmp_path / 's.jsonl'}: no trailer, but only a closed session has the final name",
    ]
    seen = []
    list_sessions(tmp_path, on_error=lambda path, exc: seen.append(path.name))
    assert sorted(seen) == ["bad.jsonl", "s.jsonl"]


def test_list_sessions_of_a_missing_directory_is_empty(tmp_path):
    assert list_sessions(tmp_path / "none") == []
    assert list_sessions() == []


def test_list_sessions_reads_other_record_shapes(writer_cls, tmp_path):
    # A subclass whose chunk builder puts the keys in another order: the prefix
    # does not match, so every chunk line is parsed, and still counted right.
    class Reordered(writer_cls):
        build_chunk_record = staticmethod(
            lambda index, row: {"index": index, "record_type": "chunk", "payload": row.payload}
        )

    write_session(Reordered, tmp_path / "session-1.jsonl")
    (info,) = list_sessions(tmp_path)
    assert (info.chunk_count, info.state) == (len(ROWS), "closed")
    assert load_session(path=info.path).chunks == tuple(ChunkRow(None, row.payload) for row in ROWS)


def test_naive_created_at_is_read_as_utc(writer_cls, tmp_path):
    write_session(
        writer_cls, tmp_path / "s.jsonl", session_id="s", created_at=datetime(2026, 1, 1, 12)
    )
    write_session(writer_cls, tmp_path / "t.jsonl", session_id="t", created_at=FIXED_CREATED_AT)
    infos = list_sessions(tmp_path)
    assert [i.created_at for i in infos] == [
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        FIXED_CREATED_AT,
    ]


# ------------------------------------------------------------------ deleting


def test_delete_session_removes_every_file(writer_cls, sessionwal_home):
    write_session(writer_cls, None, session_id="d")
    write_session(writer_cls, None, close=False, session_id="d")
    backup = Path(f"{sessionwal.session_partial_file('d')}.bak")
    backup.write_text("old bytes")
    removed = delete_session("d")
    assert sorted(removed) == sorted(
        [sessionwal.session_file("d"), sessionwal.session_partial_file("d"), backup]
    )
    assert list(sessionwal.sessions_dir().iterdir()) == []
    with pytest.raises(FileNotFoundError):
        delete_session("d")
    assert delete_session("d", missing_ok=True) == []


def test_delete_session_removes_the_earlier_sessions_closes_kept(sessionwal_home):
    # The native writer keeps an earlier closed session of a reopened id as
    # <id>.jsonl.~N~: deleting the id must not leave that data behind.
    for _ in range(3):
        write_session(sessionwal.SessionWriter, None, session_id="d")
    final = sessionwal.session_file("d")
    earlier = [final.with_name(f"d.jsonl.~{n}~") for n in (1, 2)]
    assert sessionwal.files.earlier_sessions_of(final) == earlier
    others = [final.with_name(name) for name in ("d.jsonl.~01~", "d.jsonl.~1~x", "dd.jsonl.~1~")]
    for other in others:
        other.write_bytes(b"")
    assert sorted(delete_session("d")) == sorted([final, *earlier])
    assert sorted(sessionwal.sessions_dir().iterdir()) == sorted(others)


def test_prune_removes_a_closed_sessions_earlier_sessions(sessionwal_home):
    now = FIXED_CREATED_AT + timedelta(days=30)
    for _ in range(2):
        write_session(sessionwal.SessionWriter, None, session_id="old")
    gone = [sessionwal.session_file("old"), Path(f"{sessionwal.session_file('old')}.~1~")]
    assert sorted(prune_sessions(timedelta(days=7), now=now, dry_run=True)) == sorted(gone)
    assert sorted(prune_sessions(timedelta(days=7), now=now)) == sorted(gone)
    assert list(sessionwal.sessions_dir().iterdir()) == []


def test_delete_session_refuses_a_session_in_flight(writer_cls, tmp_path):
    write_session(writer_cls, tmp_path / "s.jsonl")
    live = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    with pytest.raises(PersistenceError, match="in flight"):
        delete_session(path=tmp_path / "s.jsonl")
    assert (tmp_path / "s.jsonl").exists() and live.partial_path.exists()
    live.abandon()
    assert len(delete_session(path=live.partial_path)) == 2


def test_delete_holds_the_lock_while_unlinking(tmp_path):
    # delete_session locks the file it removes; a lock held elsewhere stops it.
    path = write_lines(tmp_path / "s.jsonl.__partial__", HEADER)
    with open(path, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(PersistenceError, match="in flight"):
            delete_session(path=path)
    assert delete_session(path=path) == [path]


def test_prune_sessions(writer_cls, sessionwal_home):
    now = FIXED_CREATED_AT + timedelta(days=30)
    write_session(writer_cls, None, session_id="old", created_at=FIXED_CREATED_AT)
    write_session(writer_cls, None, close=False, session_id="old-crash")
    live = writer_cls(make_session("old-live"))
    write_session(writer_cls, None, session_id="new", created_at=now - timedelta(days=1))
    old_files = [sessionwal.session_file("old"), sessionwal.session_partial_file("old-crash")]
    assert sorted(prune_sessions(timedelta(days=7), now=now, dry_run=True)) == sorted(old_files)
    assert len(list_sessions()) == 4
    assert sorted(prune_sessions(timedelta(days=7), now=now)) == sorted(old_files)
    assert sorted(i.id for i in list_sessions()) == ["new", "old-live"]
    live.close()


def test_prune_and_delete_go_on_past_a_directory_under_a_backups_name(sessionwal_home, caplog):
    # A close moves whatever is at the final name aside, a planted directory
    # included; neither it nor one under a repair backup's name stops a prune.
    now = FIXED_CREATED_AT + timedelta(days=30)
    for session_id in ("a", "b"):
        write_session(sessionwal.SessionWriter, None, session_id=session_id)
    planted = [
        Path(f"{sessionwal.session_file('a')}.~1~"),
        Path(f"{sessionwal.session_partial_file('b')}.bak"),
    ]
    for directory in planted:
        directory.mkdir()
    assert sorted(prune_sessions(timedelta(days=7), now=now)) == sorted(
        [sessionwal.session_file("a"), sessionwal.session_file("b")]
    )
    assert sorted(sessionwal.sessions_dir().iterdir()) == sorted(planted)
    assert caplog.text.count("not removing") == 2
