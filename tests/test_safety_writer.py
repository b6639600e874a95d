"""What the native writers (sync and asyncio, one file layer) refuse and keep,
on the default path and with ``path=``: a link planted at either name is
never followed, closing never replaces a file, directories they create are
private, and a sessions directory others can write to is refused or warned
about (docs/safety.md)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

import sessionwal
from sessionwal import ChunkRow, PersistenceError
from sessionwal.aio import AsyncSessionWriter
from sessionwal.errors import InsecureDirectoryWarning

from conftest import make_session

PRECIOUS = b"root:precious\n"


def write_session(kind: str, session_id: str, chunks: int, path: Path | None = None) -> Path:
    """Opens, writes ``chunks`` chunks and closes; returns the final path."""
    rows = [(i, ChunkRow("user", {"i": i})) for i in range(chunks)]
    if kind == "sync":
        with sessionwal.SessionWriter(make_session(session_id), path=path) as writer:
            writer.write_chunks(rows)
        return writer.path

    async def main() -> Path:
        async with AsyncSessionWriter(make_session(session_id), path=path) as writer:
            await writer.awrite_chunks(rows)
        return writer.path

    return asyncio.run(main())


def open_writer(kind: str, session_id: str, path: Path | None = None) -> None:
    """Opens a writer and abandons it (the open is what a planted link attacks)."""
    if kind == "sync":
        sessionwal.SessionWriter(make_session(session_id), path=path).abandon()
        return

    async def main() -> None:
        await AsyncSessionWriter(make_session(session_id), path=path).abandon()

    asyncio.run(main())


def chunk_count(path: Path) -> int:
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    return sum(1 for record in lines if record["record_type"] == "chunk")


@pytest.fixture(params=["sync", "aio"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["default", "path="])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Path | None]:
    """How the test names the session: the default sessions dir, or ``path=``."""
    if request.param == "default":
        sessionwal.ensure_sessions_dir()
        return lambda session_id: None
    directory = tmp_path / "explicit"
    directory.mkdir(mode=0o700)
    return lambda session_id: directory / f"{session_id}.jsonl"


def final_of(session_id: str, path: Path | None) -> Path:
    return path if path is not None else sessionwal.session_file(session_id)


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_at_the_partial_name_is_refused(kind, where, tmp_path, dangling):
    target = tmp_path / "app.conf"
    if not dangling:
        target.write_bytes(PRECIOUS)
    path = where("p")
    partial = Path(str(final_of("p", path)) + ".__partial__")
    partial.symlink_to(target)
    with pytest.raises(OSError) as info:
        open_writer(kind, "p", path)
    assert info.value.errno == errno.ELOOP
    if dangling:
        assert not target.exists(), "the link was followed to create its target"
    else:
        assert target.read_bytes() == PRECIOUS
    assert partial.is_symlink()
    assert not final_of("p", path).exists()


def test_a_link_at_the_final_name_is_kept_aside_not_replaced_through(kind, where, tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(PRECIOUS)
    target.chmod(0o400)
    path = where("f")
    final = final_of("f", path)
    final.symlink_to(target)
    assert write_session(kind, "f", 2, path) == final
    assert target.read_bytes() == PRECIOUS
    assert stat.S_IMODE(target.stat().st_mode) == 0o400
    assert not final.is_symlink()
    assert chunk_count(final) == 2
    kept = final.with_name("f.jsonl.~1~")
    assert kept.is_symlink() and kept.readlink() == target


def test_closing_an_id_again_keeps_the_earlier_session(kind, where):
    path = where("again")
    first = write_session(kind, "again", 3, path)
    earlier = first.read_bytes()
    second = write_session(kind, "again", 1, path)
    assert second == first
    assert chunk_count(second) == 1
    assert first.with_name("again.jsonl.~1~").read_bytes() == earlier
    write_session(kind, "again", 2, path)
    assert chunk_count(first.with_name("again.jsonl.~2~")) == 1
    assert chunk_count(first) == 2


def test_another_owners_read_only_file_at_the_final_name_is_kept(kind, tmp_path):
    path = tmp_path / "ro.jsonl"
    path.write_bytes(PRECIOUS)
    path.chmod(0o400)
    write_session(kind, "ro", 1, path)
    assert path.with_name("ro.jsonl.~1~").read_bytes() == PRECIOUS
    assert chunk_count(path) == 1


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_directories_the_writer_creates_are_private_whatever_the_umask(
    kind, tmp_path, sessionwal_home
):
    write_session(kind, "d", 1)
    assert mode_of(sessionwal_home) == mode_of(sessionwal_home / "sessions") == 0o700
    deep = tmp_path / "a" / "b" / "c"
    write_session(kind, "e", 1, deep / "e.jsonl")
    for directory in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert mode_of(directory) == 0o700, directory
    assert mode_of(deep / "e.jsonl") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_hook_subdirectories_are_private(tmp_path, sessionwal_home):
    class Nested(sessionwal.SessionWriter):
        @staticmethod
        def session_partial_file(session_id):
            return sessionwal.sessions_dir() / "inflight" / f"{session_id}.jsonl.__partial__"

    with Nested(make_session("h")) as writer:
        pass
    assert mode_of(sessionwal_home / "sessions" / "inflight") == 0o700
    assert writer.path.exists()


def test_a_default_sessions_dir_others_can_write_is_refused(kind, sessionwal_home):
    sessions = sessionwal_home / "sessions"
    sessions.mkdir(parents=True, mode=0o700)
    sessions.chmod(0o2770)
    with pytest.raises(PersistenceError, match="writable by group or others"):
        open_writer(kind, "g")
    assert list(sessions.iterdir()) == []


def test_path_in_a_directory_others_can_write_warns_and_still_refuses_links(kind, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.warns(InsecureDirectoryWarning, match="writable by group or others"):
        write_session(kind, "w", 1, shared / "w.jsonl")
    assert chunk_count(shared / "w.jsonl") == 1


def test_a_sessions_dir_reached_through_a_link_is_used(tmp_path, monkeypatch):
    real = tmp_path / "real-home"
    real.mkdir(mode=0o700)
    (tmp_path / "link-home").symlink_to(real)
    monkeypatch.setenv("SESSIONWAL_HOME", str(tmp_path / "link-home"))
    final = write_session("sync", "l", 1)
    assert final == real / "sessions" / "l.jsonl"
    assert chunk_count(real / "sessions" / "l.jsonl") == 1
