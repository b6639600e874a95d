"""The seed's contract, run against both writers (see conftest.writer_cls)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkKind, ChunkRow, PersistenceError, Usage

from conftest import FIXED_CLOSED_AT, FIXED_CREATED_AT, make_session, read_lines


def row(i: int = 0) -> ChunkRow:
    return ChunkRow(ChunkKind.ASSISTANT, {"content": f"chunk {i} é世😀", "n": i})


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path)]


def test_header_is_on_disk_before_the_first_chunk(writer_cls, tmp_path):
    session = make_session(parent_session_ids=["p1"], lineage_extras={"k": "v"})
    writer = writer_cls(session, path=tmp_path / "s.jsonl", sandbox_handle_id="sbx-1")
    (header,) = records(writer.partial_path)
    assert header == {
        "record_type": "header",
        "schema_version": 1,
        "id": "session-1",
        "created_at": FIXED_CREATED_AT.isoformat(),
        "parent_session_ids": ["p1"],
        "lineage_operator": None,
        "lineage_kind": None,
        "lineage_extras": [["k", "v"]],
        "sandbox_backend": None,
        "sandbox_spec": None,
        "sandbox_handle_id": "sbx-1",
    }
    assert list(header) == list(sessionwal.build_header(session, sandbox_handle_id="sbx-1"))
    writer.abandon()


def test_each_write_chunk_reaches_the_file_before_returning(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    sizes = [writer.partial_path.stat().st_size]
    for i in range(3):
        writer.write_chunk(i, row(i))
        sizes.append(writer.partial_path.stat().st_size)
        assert records(writer.partial_path)[-1] == {
            "record_type": "chunk",
            "index": i,
            "kind": "assistant",
            "payload": {"content": f"chunk {i} é世😀", "n": i},
        }
    assert sizes == sorted(set(sizes))
    assert writer.chunks_written == 3
    writer.close()


def test_close_writes_trailer_and_renames(writer_cls, tmp_path, fixed_clock):
    session = make_session(usage=Usage(prompt_tokens=3, completion_tokens=4))
    writer = writer_cls(session, path=tmp_path / "s.jsonl")
    for i in range(5):
        writer.write_chunk(i, row(i))
    writer.close()
    assert not writer.partial_path.exists()
    assert writer.path == (tmp_path / "s.jsonl").resolve()
    *_, trailer = records(writer.path)
    assert trailer == {
        "record_type": "trailer",
        "closed_at": FIXED_CLOSED_AT.isoformat(),
        "final_chunk_count": 5,
        "cumulative_usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def test_close_with_zero_chunks_gives_header_and_trailer(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.close()
    kinds = [r["record_type"] for r in records(writer.path)]
    assert kinds == ["header", "trailer"]
    assert records(writer.path)[1]["final_chunk_count"] == 0


def test_close_is_idempotent(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.write_chunk(0, row())
    writer.close()
    writer.close()
    writer.abandon()
    assert [r["record_type"] for r in records(writer.path)] == ["header", "chunk", "trailer"]


def test_abandon_leaves_partial_without_trailer(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.write_chunk(0, row())
    writer.abandon()
    assert not writer.path.exists()
    assert [r["record_type"] for r in records(writer.partial_path)] == ["header", "chunk"]


@pytest.mark.parametrize("after", ["close", "abandon"])
def test_write_after_close_or_abandon_raises(writer_cls, tmp_path, after):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    getattr(writer, after)()
    with pytest.raises(RuntimeError, match="closed") as info:
        writer.write_chunk(0, row())
    assert str(info.value) == (f"SessionWriter({writer.path}) is closed; cannot append more chunks")
    assert not isinstance(info.value, PersistenceError)


def test_context_manager_closes_on_success(writer_cls, tmp_path):
    with writer_cls(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, row())
    assert writer.path.exists() and not writer.partial_path.exists()


def test_context_manager_abandons_on_exception(writer_cls, tmp_path):
    with pytest.raises(KeyError), writer_cls(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, row())
        raise KeyError("boom")
    assert not writer.path.exists()
    assert [r["record_type"] for r in records(writer.partial_path)] == ["header", "chunk"]


def test_default_path_is_under_sessionwal_home(writer_cls, sessionwal_home):
    writer = writer_cls(make_session("abc"))
    assert writer.partial_path == (sessionwal_home / "sessions" / "abc.jsonl.__partial__").resolve()
    assert writer.partial_path.exists()
    writer.close()
    assert writer.path == (sessionwal_home / "sessions" / "abc.jsonl").resolve()
    assert writer.path.exists()
    assert sessionwal.session_file("abc") == sessionwal_home / "sessions" / "abc.jsonl"


def test_explicit_path_puts_partial_beside_it(writer_cls, tmp_path):
    target = tmp_path / "deep" / "er" / "x.jsonl"
    writer = writer_cls(make_session(), path=target)
    assert writer.partial_path == target.with_name("x.jsonl.__partial__")
    writer.close()
    assert target.exists()


def test_second_writer_on_same_id_raises(writer_cls, tmp_path):
    first = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    for second_cls in (sessionwal.SessionWriter, sessionwal.pure.SessionWriter):
        with pytest.raises(PersistenceError, match="another process") as info:
            second_cls(make_session(), path=tmp_path / "s.jsonl")
        assert str(info.value) == (
            f"another process is already writing to '{first.partial_path}'; "
            "refusing to interleave appends"
        )
    first.write_chunk(0, row())
    first.close()
    assert [r["record_type"] for r in records(first.path)] == ["header", "chunk", "trailer"]


def test_second_writer_in_another_process_raises(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    code = (
        "import sys, sessionwal\n"
        "try:\n"
        "    sessionwal.SessionWriter(sessionwal.Session(id='x'), path=sys.argv[1])\n"
        "except sessionwal.PersistenceError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("refused: another process is already writing to")
    writer.abandon()


@pytest.mark.parametrize("release", ["close", "abandon"])
def test_lock_is_released(writer_cls, tmp_path, release):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    getattr(writer, release)()
    again = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    again.abandon()


def test_reopening_an_abandoned_id_appends(writer_cls, tmp_path):
    first = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    first.write_chunk(0, row())
    first.abandon()
    second = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    second.write_chunk(1, row(1))
    second.close()
    kinds = [r["record_type"] for r in records(second.path)]
    assert kinds == ["header", "chunk", "header", "chunk", "trailer"]


def test_two_ids_do_not_collide(writer_cls):
    a = writer_cls(make_session("a"))
    b = writer_cls(make_session("b"))
    a.write_chunk(0, row(0))
    b.write_chunk(0, row(1))
    a.close()
    b.close()
    assert records(a.path)[1]["payload"]["n"] == 0
    assert records(b.path)[1]["payload"]["n"] == 1


def test_file_mode_is_0600(writer_cls, tmp_path):
    old = os.umask(0)
    try:
        writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    finally:
        os.umask(old)
    assert stat.S_IMODE(writer.partial_path.stat().st_mode) == 0o600
    writer.close()
    assert stat.S_IMODE(writer.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("bad_id", ["", ".", "..", "../escape", "a/b", "nul\0id"])
def test_ids_escaping_the_sessions_dir_are_refused(writer_cls, sessionwal_home, bad_id):
    with pytest.raises(ValueError, match="invalid session id"):
        writer_cls(make_session(bad_id))
    assert not (sessionwal_home.parent / "escape.jsonl.__partial__").exists()
    assert not (sessionwal_home / "sessions").exists() or not any(
        (sessionwal_home / "sessions").iterdir()
    )


def test_duck_typed_session(writer_cls, tmp_path):
    class Minimal:
        id = "duck"

    writer = writer_cls(Minimal(), path=tmp_path / "s.jsonl")
    writer.close()
    header, trailer = records(writer.path)
    assert header["id"] == "duck" and header["parent_session_ids"] == []
    assert trailer["cumulative_usage"] is None


def test_both_writers_write_identical_files(tmp_path, fixed_clock):
    rows = [
        ChunkRow(ChunkKind.USER, {"content": 'hi "there"\n\t\\ é 世 😀 \x00\x1f\x7f'}),
        ChunkRow("assistant", {"a": [1, 2.5, None, True, False, 1e16, 1e-05, -0.0]}),
        ChunkRow(ChunkKind.TOOL_RESULT, {1: "int key", 2.5: "float key", None: "n", False: "f"}),
        ChunkRow(ChunkKind.SYSTEM, {"nan": float("nan"), "inf": float("-inf"), "big": 2**80}),
    ]
    outputs = []
    for name, cls in (("p", sessionwal.pure.SessionWriter), ("n", sessionwal.SessionWriter)):
        with cls(make_session(), path=tmp_path / f"{name}.jsonl") as writer:
            for i, r in enumerate(rows):
                writer.write_chunk(i, r)
        outputs.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def test_an_os_error_names_its_file_as_a_str_like_the_seed(writer_cls, tmp_path):
    # The seed's open() puts a str in OSError.filename; a Path there prints
    # as PosixPath('...') in every message a runtime logs.
    (tmp_path / "s.jsonl.__partial__").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        writer_cls(make_session("s"), path=tmp_path / "s.jsonl")
    assert info.value.filename == str(tmp_path / "s.jsonl.__partial__")
    assert str(info.value).endswith(f": '{tmp_path / 's.jsonl.__partial__'}'")
