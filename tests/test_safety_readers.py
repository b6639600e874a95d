"""Readers on hostile files: memory bounded by the line limit whatever the
file holds, links and FIFOs refused without being followed or waited on,
repair's backup complete or absent, ids and headers that cannot pass as
another session, and CLI output that cannot drive the terminal
(docs/safety.md)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from crash_helpers import run_python

import sessionwal
from sessionwal import PersistenceError, cli, files
from sessionwal.files import SessionState
from sessionwal.repair import repair_session

from conftest import make_session

MIB = 1 << 20
#: The line limit the memory tests run under, and what a reader may use on
#: top of it (the interpreter's own churn, the scanner's read buffer).
LIMIT = MIB
SLACK = 24 * MIB


def header(session_id: str) -> bytes:
    return json.dumps(sessionwal.build_header(make_session(session_id))).encode() + b"\n"


PEAK = """
import json, resource, sys
import sessionwal
from sessionwal import files, loader
from sessionwal.follow import Follower
from sessionwal.repair import repair_session

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

what, path = sys.argv[1], sys.argv[2]
outcome = None
before = peak()
try:
    if what == "ls":
        outcome = [str(i.path) for i in loader.list_sessions(path)]
    elif what == "verify":
        outcome = str(files.state_of(path))
    elif what == "load":
        outcome = len(sessionwal.load_session(path=path).chunks)
    elif what == "tail":
        with Follower(path) as follower:
            outcome = len(follower.read())
    elif what == "repair":
        outcome = str(repair_session(path).backup)
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"grew": peak() - before, "outcome": outcome}))
"""


def run_reader(what: str, path: Path) -> tuple[int, object]:
    """Runs one reader in a fresh process under the test line limit; returns
    how much its peak memory grew, and its result or error."""
    env = {**os.environ, "SESSIONWAL_MAX_LINE_BYTES": str(LIMIT)}
    done = run_python(PEAK, what, str(path), env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report["grew"], report["outcome"]


def test_a_header_and_ten_mib_of_newlines_stay_within_the_bound(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_bytes(header("n") + b"\n" * (10 * MIB))
    for what in ("ls", "verify", "load", "tail"):
        grew, outcome = run_reader(what, path if what != "ls" else tmp_path)
        assert grew < LIMIT + SLACK, (what, grew)
        if what == "ls":
            assert outcome == [], "a corrupt file is not listed"
        elif what == "verify":
            # An empty line ends the valid log (the recovery rule): a final
            # name with a crash tail is corrupt.
            assert "corrupt" in outcome and "from line 2" in outcome, outcome
        else:
            assert outcome == (0 if what == "load" else 1), (what, outcome)  # the header


def test_a_torn_tail_is_counted_not_buffered(tmp_path):
    path = tmp_path / "t.jsonl.__partial__"
    path.write_bytes(header("t") + b'{"record_type": "chunk", "x": "')
    os.truncate(path, 64 * MIB)  # a 64 MiB torn tail, sparse on disk
    grew, outcome = run_reader("verify", path)
    assert grew < LIMIT + SLACK, grew
    tail = 64 * MIB - len(header("t"))
    assert "crashed" in outcome and f"a crash tail of {tail} bytes from line 2" in outcome
    grew, outcome = run_reader("load", path)
    assert grew < LIMIT + SLACK and outcome == 0


def test_a_line_longer_than_the_limit_is_an_error_naming_path_and_line(tmp_path):
    path = tmp_path / "l.jsonl"
    long_line = b'{"record_type": "chunk", "payload": "' + b"x" * (2 * LIMIT) + b'"}\n'
    path.write_bytes(header("l") + long_line + b"more\n")
    for what in ("verify", "load", "tail"):
        grew, outcome = run_reader(what, path)
        assert grew < LIMIT + SLACK, (what, grew)
        assert f"{path}:2: line is longer than {LIMIT} bytes" in str(outcome), (what, outcome)


def test_the_limit_is_configurable_and_the_default_fits_big_records(tmp_path, monkeypatch):
    path = tmp_path / "b.jsonl"
    with sessionwal.SessionWriter(make_session("b"), path=path) as writer:
        writer.write_chunk(0, sessionwal.ChunkRow("user", {"blob": "y" * (3 * MIB)}))
    assert files.state_of(path).state is SessionState.CLOSED
    monkeypatch.setenv("SESSIONWAL_MAX_LINE_BYTES", str(MIB))
    verdict = files.state_of(path)
    assert verdict.state is SessionState.CORRUPT and ":2: line is longer" in verdict.detail
    monkeypatch.setenv("SESSIONWAL_MAX_LINE_BYTES", "lots")
    with pytest.raises(ValueError, match="SESSIONWAL_MAX_LINE_BYTES must be a positive number"):
        files.state_of(path)


def test_repair_copies_a_sparse_file_sparsely_and_within_the_bound(tmp_path):
    path = tmp_path / "s.jsonl.__partial__"
    path.write_bytes(header("s"))
    os.truncate(path, 64 * MIB)
    grew, outcome = run_reader("repair", path)
    assert grew < LIMIT + SLACK, grew
    backup = Path(outcome)
    assert backup.name == "s.jsonl.__partial__.bak"
    assert backup.stat().st_size == 64 * MIB
    assert backup.stat().st_blocks * 512 < MIB, "the hole was written out"
    assert (tmp_path / "s.jsonl").exists()


def test_repair_leaves_no_backup_when_writing_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "s.jsonl.__partial__"
    original = header("s") + b'{"record_type": "chunk", "to'
    path.write_bytes(original)

    def disk_full(src, dst, size):
        os.pwrite(dst, b"half", 0)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sessionwal.repair, "_copy_sparse", disk_full)
    with pytest.raises(OSError, match="No space"):
        repair_session(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl.__partial__"]
    assert path.read_bytes() == original


def test_repair_never_replaces_a_final_name_that_appears_meanwhile(tmp_path, monkeypatch):
    # It is kept aside as <final>.~N~, as a writer's close keeps an earlier session.
    path = tmp_path / "s.jsonl.__partial__"
    path.write_bytes(header("s"))
    final = tmp_path / "s.jsonl"
    real_write_backup = sessionwal.repair._write_backup

    def then_someone_creates_the_final_name(partial, fd, size):
        backup = real_write_backup(partial, fd, size)
        final.write_bytes(b"theirs\n")
        return backup

    monkeypatch.setattr(sessionwal.repair, "_write_backup", then_someone_creates_the_final_name)
    result = repair_session(path)
    assert result.earlier == tmp_path / "s.jsonl.~1~"
    assert result.earlier.read_bytes() == b"theirs\n"
    assert final.read_bytes().startswith(header("s"))
    assert not path.exists()


# ------------------------------------------------------------------ links and FIFOs

SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "shadow"
    path.write_bytes(header("x") + SECRET)
    path.chmod(0o600)
    return path


def hostile_dir(tmp_path: Path, secret: Path) -> Path:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    (sessions / "link.jsonl").symlink_to(secret)
    (sessions / "x.jsonl.__partial__").symlink_to(secret)
    os.mkfifo(sessions / "fifo.jsonl")
    os.mkfifo(sessions / "pipe.jsonl.__partial__")
    with sessionwal.SessionWriter(make_session("good"), path=sessions / "good.jsonl"):
        pass
    return sessions


# A FIFO wait would hang: the whole test fails by timeout instead.
@pytest.mark.timeout(30)
def test_links_and_fifos_are_refused_never_followed_or_waited_on(tmp_path, secret, capsys):
    sessions = hostile_dir(tmp_path, secret)
    skipped: list[str] = []
    infos = sessionwal.list_sessions(sessions, on_error=lambda p, e: skipped.append(p.name))
    assert [i.id for i in infos] == ["good"]
    assert sorted(skipped) == sorted(
        ["link.jsonl", "x.jsonl.__partial__", "fifo.jsonl", "pipe.jsonl.__partial__"]
    )
    for name in ("link.jsonl", "fifo.jsonl", "x.jsonl.__partial__", "pipe.jsonl.__partial__"):
        verdict = files.state_of(sessions / name)
        assert verdict.state is SessionState.UNREADABLE, (name, verdict)
    with pytest.raises(OSError):
        sessionwal.load_session(path=sessions / "link.jsonl")
    with pytest.raises(PersistenceError, match="not a regular file"):
        sessionwal.load_session(path=sessions / "fifo.jsonl")
    assert cli.main(["show", str(sessions / "link.jsonl")]) == 2
    assert cli.main(["tail", str(sessions / "fifo.jsonl")]) == 2
    assert cli.main(["ls", "--dir", str(sessions)]) == 0
    out, err = capsys.readouterr()
    assert "secret-hash" not in out + err
    assert cli.main(["verify", str(sessions / "fifo.jsonl"), str(sessions / "good.jsonl")]) == 2
    assert "good.jsonl: ok" in capsys.readouterr().out
    # delete_session on a FIFO removes the name without opening it for a read.
    assert sessionwal.delete_session(path=sessions / "fifo.jsonl") == [sessions / "fifo.jsonl"]
    assert secret.read_bytes() == header("x") + SECRET


@pytest.mark.timeout(30)
def test_prune_goes_on_past_links_and_fifos(tmp_path, secret):
    sessions = hostile_dir(tmp_path, secret)
    from datetime import timedelta

    removed = sessionwal.prune_sessions(timedelta(0), directory=sessions)
    assert removed == [sessions / "good.jsonl"]
    assert secret.exists() and (sessions / "link.jsonl").is_symlink()


# ------------------------------------------------------------------ ids and headers


@pytest.mark.parametrize(
    ("bad_id", "rule"),
    [
        ("a\x1b]0;pwned\x07", "control and bidirectional"),
        ("row\nforged", "control and bidirectional"),
        ("evil\u202etxt.exe", "control and bidirectional"),
        ("c1\x9bcontrol", "control and bidirectional"),
        ("lone\ud800", "control and bidirectional"),
        ("x" * (files.MAX_SESSION_ID_BYTES + 1), "at most 229 UTF-8 bytes"),
        ("é" * 115, "at most 229 UTF-8 bytes"),  # 230 bytes, 115 characters
    ],
)
def test_ids_that_cannot_round_trip_are_refused_naming_the_rule(bad_id, rule):
    with pytest.raises(ValueError, match=rule):
        sessionwal.SessionWriter(make_session(bad_id))
    with pytest.raises(ValueError, match=rule):
        files.validate_session_id(bad_id)


def test_the_longest_id_writes_crashes_and_repairs(tmp_path):
    longest = "i" * files.MAX_SESSION_ID_BYTES
    writer = sessionwal.SessionWriter(make_session(longest))
    writer.write_chunk(0, sessionwal.ChunkRow("user", {}))
    writer.abandon()
    for _ in range(2):  # .bak, then .bak.1
        result = repair_session(writer.partial_path)
        assert result.path == writer.path
        assert files.state_of(result.path).state is SessionState.CLOSED
        os.rename(result.path, writer.partial_path)
    assert files.backups_of(writer.partial_path)[-1].name == longest + ".jsonl.__partial__.bak.1"


def test_a_header_naming_another_session_is_corrupt_and_not_listed(tmp_path):
    with sessionwal.SessionWriter(make_session("victim"), path=tmp_path / "victim.jsonl"):
        pass
    impostor = tmp_path / "impostor.jsonl"
    impostor.write_bytes((tmp_path / "victim.jsonl").read_bytes())
    skipped: list[tuple[str, str]] = []
    infos = sessionwal.list_sessions(
        tmp_path, on_error=lambda p, e: skipped.append((p.name, str(e)))
    )
    assert [i.id for i in infos] == ["victim"]
    ((name, reason),) = skipped
    assert name == "impostor.jsonl" and "'victim' does not match the file name" in reason
    verdict = files.state_of(impostor)
    assert verdict.state is SessionState.CORRUPT


# ------------------------------------------------------------------ terminal output

HOSTILE_ID = "t\x1b]0;title\x07\x1b[2K\nfake  2026  9  closed\u202e\x9b"


def test_the_cli_quotes_controls_in_everything_it_prints(tmp_path, capsys):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    # Written by hand: the writer refuses such an id; an attacker's file need not.
    record = sessionwal.build_header(make_session("x")) | {"id": HOSTILE_ID}
    chunk = {"record_type": "chunk", "index": "\x1b[31m", "kind": "\x07", "payload": "\u202e\x85"}
    body = [json.dumps(record, ensure_ascii=False), json.dumps(chunk, ensure_ascii=False)]
    path = sessions / f"{HOSTILE_ID}.jsonl.__partial__"
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    outputs = []
    for argv in (
        ["ls", "--dir", str(sessions)],
        ["show", str(path)],
        ["tail", str(path)],
        ["verify", str(path)],
    ):
        cli.main(argv)
        out, err = capsys.readouterr()
        outputs.append(out + err)
    text = "".join(outputs)
    assert not files.CONTROL_CHARACTERS.search(text.replace("\n", "")), repr(text)
    assert "\\x1b]0;title\\x07" in text and "\\u202e" in text and "\\x9b" in text
    ls_rows = outputs[0].splitlines()
    assert len(ls_rows) == 2, "a newline in an id cannot forge a row"
    assert cli.quote_controls("plain é 世") == "plain é 世"


def test_writers_refuse_ids_the_cli_would_have_to_quote(tmp_path):
    with pytest.raises(ValueError):
        sessionwal.SessionWriter(make_session(HOSTILE_ID))
    assert not any(tmp_path.rglob("*.jsonl*"))


def test_a_partial_file_mode_stays_private(tmp_path):
    with sessionwal.SessionWriter(make_session("m"), path=tmp_path / "m.jsonl") as writer:
        assert stat.S_IMODE(writer.partial_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "m.jsonl").stat().st_mode) == 0o600


def test_delete_removes_a_link_under_the_sessions_name_never_its_target(tmp_path, secret):
    with sessionwal.SessionWriter(make_session("d"), path=tmp_path / "d.jsonl"):
        pass
    (tmp_path / "d.jsonl.__partial__").symlink_to(secret)
    removed = sessionwal.delete_session(path=tmp_path / "d.jsonl")
    assert sorted(p.name for p in removed) == ["d.jsonl", "d.jsonl.__partial__"]
    assert secret.read_bytes() == header("x") + SECRET
    assert not os.path.lexists(tmp_path / "d.jsonl.__partial__")


@pytest.mark.timeout(30)
def test_every_command_gives_one_reason_for_a_link_or_fifo(tmp_path, secret, capsys):
    sessions = hostile_dir(tmp_path, secret)
    for name, reason in (("link", os.strerror(errno.ELOOP)), ("fifo", "is not a regular file")):
        assert cli.main(["verify", str(sessions / f"{name}.jsonl")]) == 2
        assert cli.main(["show", name, "--dir", str(sessions)]) == 2
        assert cli.main(["tail", name, "--dir", str(sessions)]) == 2
        out, err = capsys.readouterr()
        assert (out + err).count(reason) == 3, out + err
        # Paths are quoted as the user typed them, not as a Python repr.
        assert "PosixPath" not in out + err
