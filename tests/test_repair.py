"""repair_session: a crashed partial file is closed, complete records kept, bytes backed up."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionwal
import sessionwal.pure
from sessionwal import ChunkKind, ChunkRow, load_session
from sessionwal.files import state_of
from sessionwal.repair import RepairRefused, repair_session

from conftest import FIXED_CLOSED_AT, make_session

ROWS = [
    ChunkRow(ChunkKind.USER, {"content": "line one\nline two é"}),
    ChunkRow(ChunkKind.ASSISTANT, {"content": "世界 😀", "n": [1.5, None]}),
    ChunkRow(ChunkKind.TOOL_RESULT, {"output": "x" * 300}),
]

RECOVERED_TRAILER = (
    '{"record_type": "trailer", "closed_at": "%s", "final_chunk_count": %d, '
    '"cumulative_usage": null, "recovered": true}\n'
)


def crashed(writer_cls, path: Path, rows=ROWS, tail: bytes = b"") -> Path:
    writer = writer_cls(make_session(), path=path)
    for i, row in enumerate(rows):
        writer.write_chunk(i, row)
    writer.abandon()
    with open(writer.partial_path, "ab") as file:
        file.write(tail)
    return writer.partial_path


def test_repair_cuts_the_torn_tail_and_appends_a_recovered_trailer(
    writer_cls, tmp_path, fixed_clock
):
    partial = crashed(
        writer_cls, tmp_path / "session-1.jsonl", tail=b'{"record_type": "chunk", "in'
    )
    original = partial.read_bytes()
    result = repair_session(partial)
    final = tmp_path / "session-1.jsonl"
    assert result.path == final and result.backup == Path(f"{partial}.bak")
    assert (result.chunk_count, result.torn_bytes, result.trailer_added) == (3, 28, True)
    assert not partial.exists()
    assert result.backup.read_bytes() == original
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    kept = original[: original.rfind(b"\n") + 1]
    trailer = RECOVERED_TRAILER % (FIXED_CLOSED_AT.isoformat(), 3)
    assert final.read_bytes() == kept + trailer.encode()
    loaded = load_session(path=final)
    assert loaded.chunks == tuple(ROWS)
    assert loaded.closed and loaded.recovered and loaded.torn_bytes == 0
    assert state_of(final).status == "ok"


def test_repair_without_a_torn_tail_only_appends_the_trailer(writer_cls, tmp_path):
    partial = crashed(writer_cls, tmp_path / "s.jsonl")
    original = partial.read_bytes()
    result = repair_session(partial)
    assert (result.torn_bytes, result.trailer_added) == (0, True)
    assert result.path.read_bytes().startswith(original)
    assert json.loads(result.path.read_bytes()[len(original) :])["final_chunk_count"] == 3


def test_a_partial_file_with_its_trailer_is_only_renamed(writer_cls, tmp_path):
    # The writer crashed between the trailer and the rename.
    with writer_cls(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, ROWS[0])
    os.rename(writer.path, writer.partial_path)
    original = writer.partial_path.read_bytes()
    result = repair_session(writer.partial_path)
    assert (result.trailer_added, result.chunk_count) == (False, 1)
    assert writer.path.read_bytes() == original == result.backup.read_bytes()
    assert load_session(path=writer.path).closed


def test_repair_refuses_while_a_writer_holds_the_lock(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.write_chunk(0, ROWS[0])
    before = writer.partial_path.read_bytes()
    with pytest.raises(RepairRefused, match="in flight: a writer holds its lock") as info:
        repair_session(writer.partial_path)
    assert info.value.in_flight
    assert writer.partial_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl.__partial__"]
    writer.write_chunk(1, ROWS[1])  # the writer is unharmed
    writer.close()


def test_repair_holds_the_lock_so_no_writer_can_reopen_meanwhile(tmp_path, monkeypatch):
    partial = crashed(sessionwal.SessionWriter, tmp_path / "s.jsonl")
    seen = []
    real_write_backup = sessionwal.repair._write_backup

    def write_backup_then_try_a_writer(path, fd, size):
        with pytest.raises(sessionwal.PersistenceError, match="another process"):
            sessionwal.SessionWriter(make_session(), path=tmp_path / "s.jsonl")
        seen.append(path)
        return real_write_backup(path, fd, size)

    monkeypatch.setattr(sessionwal.repair, "_write_backup", write_backup_then_try_a_writer)
    repair_session(partial)
    assert seen == [partial]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"s\.jsonl\.__partial__:1: no complete header record"),
        (b'{"record_type": "header", "id"', r"s\.jsonl\.__partial__:1: no complete header"),
        (b"\0" * 4096 + b'{"record_type": "header"}\n', r"__partial__:1: no complete header"),
        (b'[1]\n{"record_type": "header"}\n', r"s\.jsonl\.__partial__:1: no complete header"),
    ],
)
def test_repair_refuses_a_corrupt_or_headerless_file(tmp_path, content, message):
    partial = tmp_path / "s.jsonl.__partial__"
    partial.write_bytes(content)
    with pytest.raises(RepairRefused, match="not repairing a corrupt file: .*" + message) as info:
        repair_session(partial)
    assert not info.value.in_flight
    assert partial.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == [partial.name]


def test_repair_refuses_a_final_file_and_keeps_an_earlier_closed_session(writer_cls, tmp_path):
    with writer_cls(make_session(), path=tmp_path / "session-1.jsonl") as writer:
        pass
    with pytest.raises(RepairRefused, match=r"is not a \.__partial__ file"):
        repair_session(writer.path)
    earlier = writer.path.read_bytes()
    # The id is reopened and crashes: verify says repair closes it, and it does,
    # keeping the earlier closed session aside as a writer's close would.
    partial = crashed(writer_cls, tmp_path / "session-1.jsonl")
    result = repair_session(partial)
    assert result.earlier == tmp_path / "session-1.jsonl.~1~"
    assert result.earlier.read_bytes() == earlier
    assert result.path == writer.path and not partial.exists()
    assert state_of(result.path).status == "ok"
    assert state_of(result.earlier).status == "ok"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == [
        "session-1.jsonl",
        "session-1.jsonl.__partial__.bak",
        "session-1.jsonl.~1~",
    ]


def test_repair_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        repair_session(tmp_path / "s.jsonl.__partial__")


def test_backups_are_never_overwritten(writer_cls, tmp_path):
    backups = []
    for attempt in range(3):
        partial = crashed(writer_cls, tmp_path / "s.jsonl", rows=ROWS[:attempt], tail=b"{")
        result = repair_session(partial)
        backups.append(result.backup.name)
        assert result.backup.read_bytes().count(b"\n") == 1 + attempt
        result.path.unlink()
    assert backups == [
        "s.jsonl.__partial__.bak",
        "s.jsonl.__partial__.bak.1",
        "s.jsonl.__partial__.bak.2",
    ]


# ------------------------------------------------------------------ no complete record is lost


def _closed_file(writer_cls) -> bytes:
    rows = [
        ChunkRow(ChunkKind.ASSISTANT, {"delta": 'é世😀\n"q"' * (i % 4), "i": i}) for i in range(8)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        with writer_cls(make_session(), path=Path(tmp) / "s.jsonl") as writer:
            for i, row in enumerate(rows):
                writer.write_chunk(i, row)
        return (Path(tmp) / "s.jsonl").read_bytes()


FILES = {
    "pure": _closed_file(sessionwal.pure.SessionWriter),
    "native": _closed_file(sessionwal.SessionWriter),
}


# Each example fsyncs four times: 400 keep the file well under its time budget.
@settings(max_examples=400)
@given(st.sampled_from(sorted(FILES)), st.data())
def test_repair_keeps_every_complete_record_at_any_truncation_point(writer, data):
    original = FILES[writer]
    cut = data.draw(st.integers(0, len(original)), label="cut")
    truncated = original[:cut]
    complete_lines = truncated.split(b"\n")[:-1]
    with tempfile.TemporaryDirectory() as tmp:
        partial = Path(tmp) / "session-1.jsonl.__partial__"
        partial.write_bytes(truncated)
        if not complete_lines:
            with pytest.raises(RepairRefused, match="no complete header"):
                repair_session(partial)
            assert partial.read_bytes() == truncated
            return
        result = repair_session(partial)
        repaired = result.path.read_bytes()
        assert result.backup.read_bytes() == truncated
        # Every complete line survives byte for byte, in order, and nothing else but a trailer.
        kept = b"".join(line + b"\n" for line in complete_lines)
        assert repaired.startswith(kept)
        records = [json.loads(line) for line in complete_lines]
        chunks = [r for r in records if r["record_type"] == "chunk"]
        loaded = load_session(path=result.path)
        assert [row.payload for row in loaded.chunks] == [c["payload"] for c in chunks]
        assert loaded.chunk_indices == tuple(c["index"] for c in chunks)
        assert loaded.closed and loaded.trailer is not None
        if records[-1]["record_type"] == "trailer":
            assert repaired == kept and not result.trailer_added
        else:
            assert loaded.recovered and loaded.trailer["final_chunk_count"] == len(chunks)
        assert state_of(result.path).status == "ok"
