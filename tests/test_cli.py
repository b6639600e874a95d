"""The sessionwal CLI, run as a subprocess of the installed package: output and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sessionwal
import sessionwal.bench
import sessionwal.pure
from sessionwal import ChunkKind, ChunkRow, cli
from sessionwal.follow import Follower

from conftest import FIXED_CLOSED_AT, FIXED_CREATED_AT, make_session, run_cli

ROWS = [
    ChunkRow(ChunkKind.USER, {"content": "hello é 世"}),
    ChunkRow(ChunkKind.ASSISTANT, {"content": "hi", "tool_calls": []}),
    ChunkRow(ChunkKind.TOOL_RESULT, {"output": "ok\n"}),
]
TORN = b'{"record_type": "chunk", "index": 3, "ki'


def popen(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sessionwal", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env={**os.environ, "PYTHONUTF8": "1"},
    )


def closed_session(writer_cls, session_id: str, rows=ROWS) -> Path:
    with writer_cls(make_session(session_id)) as writer:
        for i, row in enumerate(rows):
            writer.write_chunk(i, row)
    return sessionwal.session_file(session_id)


def crashed_session(writer_cls, session_id: str, rows=ROWS, tail=TORN) -> Path:
    writer = writer_cls(make_session(session_id))
    for i, row in enumerate(rows):
        writer.write_chunk(i, row)
    writer.abandon()
    with open(writer.partial_path, "ab") as file:
        file.write(tail)
    return sessionwal.session_partial_file(session_id)


# ------------------------------------------------------------------ wiring


def test_help_lists_every_command_and_version():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("ls", "show", "verify", "repair", "tail", "bench"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command
    version = run_cli("--version")
    assert (version.returncode, version.stdout) == (0, f"sessionwal {sessionwal_version()}\n")


def sessionwal_version() -> str:
    from importlib.metadata import version

    return version("sessionwal")


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "sessionwal"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("sessionwal ")


@pytest.mark.parametrize("args", [[], ["verify"], ["tail", "x", "-n", "-1"], ["frobnicate"]])
def test_usage_errors_exit_2(args):
    result = run_cli(*args)
    assert result.returncode == 2 and "usage: sessionwal" in result.stderr


@pytest.mark.parametrize("setting", ["1e6", "0", "256M"])
def test_a_bad_line_limit_setting_exits_2_not_1(writer_cls, monkeypatch, setting):
    # verify's 1 means "in flight or crashed": a traceback's 1 would say that.
    path = closed_session(writer_cls, "s")
    monkeypatch.setenv("SESSIONWAL_MAX_LINE_BYTES", setting)
    result = run_cli("verify", path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "sessionwal: SESSIONWAL_MAX_LINE_BYTES must be a positive number of bytes, "
        f"not '{setting}'\n"
    )


def test_bench_hands_its_arguments_to_the_benchmark(monkeypatch):
    seen = []
    monkeypatch.setattr(sessionwal.bench, "main", lambda argv: seen.append(argv) or 3)
    assert cli.main(["bench", "--quick", "--plot", "out.png"]) == 3
    assert seen == [["--quick", "--plot", "out.png"]]


def test_bench_help_runs_as_a_subprocess():
    result = run_cli("bench", "--help")
    assert result.returncode == 0
    assert "--quick" in result.stdout and "--plot" in result.stdout


# ------------------------------------------------------------------ ls


def test_ls_table_and_json(writer_cls):
    closed = closed_session(writer_cls, "a-closed")
    crashed = crashed_session(writer_cls, "b-crashed", rows=ROWS[:2])
    live = writer_cls(make_session("c-live"))
    live.write_chunk(0, ROWS[0])
    result = run_cli("ls")
    assert result.returncode == 0 and result.stderr == ""
    rows = [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()]
    created = FIXED_CREATED_AT.isoformat(sep=" ", timespec="seconds")
    live_path = sessionwal.session_partial_file("c-live")
    assert rows == [
        ["ID", "CREATED", "CHUNKS", "STATE", "SIZE"],
        ["a-closed", created, "3", "closed", f"{closed.stat().st_size} B"],
        ["b-crashed", created, "2", "crashed", f"{crashed.stat().st_size} B"],
        ["c-live", created, "1", "in flight", f"{live_path.stat().st_size} B"],
    ]
    as_json = [json.loads(line) for line in run_cli("ls", "--json").stdout.splitlines()]
    assert as_json[1] == {
        "id": "b-crashed",
        "path": str(crashed),
        "created_at": FIXED_CREATED_AT.isoformat(),
        "chunk_count": 2,
        "state": "crashed",
        "closed": False,
        "size": crashed.stat().st_size,
        "torn_bytes": len(TORN),
        "tail": "torn",
        "recovered": False,
    }
    assert [s["state"] for s in as_json] == ["closed", "crashed", "in_flight"]
    live.close()


def test_ls_of_an_empty_or_missing_directory(tmp_path):
    result = run_cli("ls", "--dir", tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"no sessions in '{tmp_path}'\n"
    missing = run_cli("ls", "--dir", tmp_path / "nope")
    assert missing.returncode == 2
    assert missing.stderr == f"sessionwal: '{tmp_path / 'nope'}' is not a directory\n"


def test_ls_reports_skipped_files_on_stderr(tmp_path):
    closed_session(sessionwal.SessionWriter, "good")
    bad = sessionwal.sessions_dir() / "bad.jsonl"
    bad.write_text(
        '{"record_type": "header", "id": "bad", "created_at": "2026-01-01T00:00:00"}\n[1]\n'
    )
    result = run_cli("ls")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["ID", "good"]
    assert result.stderr == (
        f"sessionwal: skipped '{bad}': {bad}: a crash tail of 4 bytes from line 2 (a line that "
        "is not a JSON object) after the last valid record, but a closed session ends with its "
        "trailer (see `sessionwal verify`)\n"
    )


# ------------------------------------------------------------------ show


def test_show_json_reproduces_the_file(writer_cls):
    path = closed_session(writer_cls, "s")
    for target in ("s", path):
        result = run_cli("show", target, "--json")
        assert result.returncode == 0
        assert result.stdout.encode() == path.read_bytes()


def test_show_human_readable(writer_cls, fixed_clock):
    closed_session(writer_cls, "s")
    result = run_cli("show", "s")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"path: {sessionwal.session_file('s')}",
        "state: closed",
        f"session s created {FIXED_CREATED_AT.isoformat()}",
        '#0 user: {"content": "hello é 世"}',
        '#1 assistant: {"content": "hi", "tool_calls": []}',
        '#2 tool_result: {"output": "ok\\n"}',
        f"trailer: closed {FIXED_CLOSED_AT.isoformat()}, 3 chunks",
    ]


def test_show_a_crashed_session(writer_cls):
    partial = crashed_session(writer_cls, "s")
    result = run_cli("show", "s")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"path: {partial}", "state: crashed"]
    assert lines[-1] == (
        f"a crash tail of {len(TORN)} bytes from line 5 (a record cut short), "
        "after the last valid record"
    )
    as_json = run_cli("show", "s", "--json")
    assert as_json.stdout.encode() == partial.read_bytes()[: -len(TORN)]


def test_show_errors_exit_2(tmp_path):
    missing = run_cli("show", "nope")
    assert missing.returncode == 2
    assert missing.stderr.startswith("sessionwal: no session file for 'nope'")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"record_type": "header", "id": "bad"}\n{"record_type": "chunk", "index": }\n')
    corrupt = run_cli("show", bad)
    assert corrupt.returncode == 2
    assert corrupt.stdout.splitlines()[1] == (
        f"state: corrupt: {bad}: a crash tail of 36 bytes from line 2 (a line that is not a "
        "JSON object) after the last valid record, but a closed session ends with its trailer"
    )


def test_show_stops_quietly_when_the_reader_goes_away(writer_cls):
    closed_session(writer_cls, "big", rows=[ChunkRow("user", {"t": "x" * 500})] * 400)
    with popen("show", "big") as proc:
        proc.stdout.close()  # the reader of `sessionwal show big | head` exits
        stderr = proc.stderr.read()
    assert proc.returncode == 1
    assert stderr == ""


# ------------------------------------------------------------------ verify


def test_verify_exit_codes_and_lines(writer_cls, tmp_path):
    closed = closed_session(writer_cls, "closed")
    crashed = crashed_session(writer_cls, "crashed")
    live = writer_cls(make_session("live"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"record_type": "header", "id": "bad"}\n{"record_type": "chunk", "x": nul}\n')
    missing = tmp_path / "missing.jsonl"

    def verify(*paths: Path) -> tuple[int, list[str]]:
        result = run_cli("verify", *paths)
        return result.returncode, result.stdout.splitlines()

    assert verify(closed) == (0, [f"{closed}: ok: closed, 3 chunks"])
    assert verify(live.partial_path) == (
        1,
        [f"{live.partial_path}: in flight: 0 chunks so far; a writer holds the lock"],
    )
    assert verify(crashed) == (
        1,
        [
            f"{crashed}: crashed: 3 chunks complete, then a crash tail of {len(TORN)} bytes "
            "from line 5 (a record cut short); `sessionwal repair` closes it"
        ],
    )
    assert verify(bad) == (
        2,
        [
            f"{bad}: corrupt: {bad}: a crash tail of 35 bytes from line 2 (a line that is not a "
            "JSON object) after the last valid record, but a closed session ends with its trailer"
        ],
    )
    code, lines = verify(missing)
    assert code == 2 and lines[0].startswith(f"{missing}: unreadable: [Errno 2]")
    code, lines = verify(closed, crashed, live.partial_path, bad)
    assert code == 2 and [line.split(": ")[1] for line in lines] == [
        "ok",
        "crashed",
        "in flight",
        "corrupt",
    ]
    assert verify(closed, crashed)[0] == 1
    live.abandon()


def test_verify_judges_backups_by_what_they_copy():
    # `verify ~/.sessionwal/sessions/*.jsonl*` (the README) also names the
    # backups the library makes; none of them is corrupt.
    crashed_session(sessionwal.SessionWriter, "b")
    assert run_cli("repair", "b").returncode == 0
    closed_session(sessionwal.SessionWriter, "b", rows=ROWS[:1])  # the repaired one kept as ~1~
    final = sessionwal.session_file("b")
    result = run_cli("verify", final, f"{final}.~1~", f"{final}.__partial__.bak")
    assert result.stdout.splitlines() == [
        f"{final}: ok: closed, 1 chunk",
        f"{final}.~1~: ok: closed, 3 chunks, recovered by repair; "
        "an earlier session, kept aside when b.jsonl was closed again",
        f"{final}.__partial__.bak: crashed: 3 chunks complete, then a crash tail of "
        f"{len(TORN)} bytes from line 5 (a record cut short); the original bytes "
        "`sessionwal repair` kept of b.jsonl.__partial__",
    ]
    assert result.returncode == 1


def test_verify_rejects_final_files_that_did_not_close(writer_cls):
    unterminated = crashed_session(writer_cls, "u", tail=b"")
    final = unterminated.with_name("u.jsonl")
    unterminated.rename(final)
    code = run_cli("verify", final)
    assert code.returncode == 2
    assert code.stdout == (
        f"{final}: corrupt: {final}: no trailer, but only a closed session has the final name\n"
    )
    closed = closed_session(writer_cls, "c")
    lines = closed.read_bytes().splitlines(keepends=True)
    closed.write_bytes(b"".join(lines[:1] + lines[2:]))  # drop one chunk: the count is off
    mismatch = run_cli("verify", closed)
    assert mismatch.returncode == 2
    assert "the trailer says final_chunk_count=3 but its writer wrote 2 chunk records" in (
        mismatch.stdout
    )


# ------------------------------------------------------------------ repair


def test_repair_a_crashed_session(writer_cls):
    partial = crashed_session(writer_cls, "s")
    original = partial.read_bytes()
    result = run_cli("repair", "s")
    final = sessionwal.session_file("s")
    assert result.returncode == 0
    assert result.stdout == (
        f"repaired '{final}': kept 3 chunks, cut a crash tail of {len(TORN)} bytes "
        "(a record cut short), "
        f"appended a recovered trailer; original bytes in '{partial}.bak'\n"
    )
    assert Path(f"{partial}.bak").read_bytes() == original
    assert (
        run_cli("verify", final).stdout == f"{final}: ok: closed, 3 chunks, recovered by repair\n"
    )
    listed = json.loads(run_cli("ls", "--json").stdout)
    assert (listed["state"], listed["recovered"]) == ("closed", True)


def test_repair_refusals(writer_cls, tmp_path):
    live = writer_cls(make_session("live"))
    in_flight = run_cli("repair", live.partial_path)
    assert in_flight.returncode == 1
    assert in_flight.stderr == (
        f"sessionwal: repair refused: '{live.partial_path}' is in flight: a writer holds its lock\n"
    )
    live.close()
    not_partial = run_cli("repair", live.path)
    assert not_partial.returncode == 2 and "is not a .__partial__ file" in not_partial.stderr
    bad = tmp_path / "bad.jsonl.__partial__"
    bad.write_text('{"record_type": "nope"}\n{"record_type": "header"}\n')
    corrupt = run_cli("repair", bad)
    assert corrupt.returncode == 2
    assert corrupt.stderr == (
        f"sessionwal: repair refused: not repairing a corrupt file: "
        f"{bad}:1: no complete header record\n"
    )
    assert run_cli("repair", "nobody").returncode == 2


# ------------------------------------------------------------------ tail


def test_tail_prints_the_last_chunks(writer_cls, fixed_clock):
    closed_session(writer_cls, "s")
    result = run_cli("tail", "s", "-n", "1")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"session s created {FIXED_CREATED_AT.isoformat()}",
        '#2 tool_result: {"output": "ok\\n"}',
        f"trailer: closed {FIXED_CLOSED_AT.isoformat()}, 3 chunks",
    ]
    none = run_cli("tail", "s", "-n", "0", "--json")
    assert [json.loads(line)["record_type"] for line in none.stdout.splitlines()] == [
        "header",
        "trailer",
    ]
    # Following a closed session ends at once: it is already closed.
    follow = run_cli("tail", "-f", "s", "--json")
    assert follow.returncode == 0 and len(follow.stdout.splitlines()) == 5
    assert follow.stderr == "sessionwal: session closed after 3 chunks\n"


def test_tail_follows_a_live_session_through_the_rename(writer_cls):
    writer = writer_cls(make_session("live"))
    writer.write_chunk(0, ROWS[0])
    with popen("tail", "-f", "live", "--json", "--poll", "0.02", "--timeout", "60") as proc:
        assert json.loads(proc.stdout.readline())["record_type"] == "header"
        assert json.loads(proc.stdout.readline())["payload"] == ROWS[0].payload
        for i, row in enumerate(ROWS[1:], 1):
            writer.write_chunk(i, row)
            line = json.loads(proc.stdout.readline())
            assert (line["index"], line["payload"]) == (i, row.payload)
        writer.close()
        trailer = json.loads(proc.stdout.readline())
        assert (trailer["record_type"], trailer["final_chunk_count"]) == ("trailer", 3)
        assert proc.stdout.read() == ""
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == "sessionwal: session closed after 3 chunks\n"
    assert writer.path.exists()


def test_tail_follows_a_reopened_id_not_its_earlier_closed_session(writer_cls):
    closed_session(writer_cls, "again", rows=ROWS[:1])
    writer = writer_cls(make_session("again"))  # the id reopened: a new partial file
    writer.write_chunk(0, ROWS[2])
    with popen("tail", "-f", "again", "--json", "--poll", "0.02", "--timeout", "60") as proc:
        assert json.loads(proc.stdout.readline())["record_type"] == "header"
        assert json.loads(proc.stdout.readline())["payload"] == ROWS[2].payload
        writer.write_chunk(1, ROWS[1])
        assert json.loads(proc.stdout.readline())["payload"] == ROWS[1].payload
        writer.close()
        assert json.loads(proc.stdout.readline())["final_chunk_count"] == 2
        assert proc.wait(timeout=60) == 0
    assert run_cli("tail", "again", "--json").stdout.count('"record_type": "chunk"') == 2


def test_tail_stops_when_the_writer_lets_go(writer_cls):
    writer = writer_cls(make_session("gone"))
    with popen("tail", "-f", "gone", "--json", "--poll", "0.02", "--timeout", "60") as proc:
        assert json.loads(proc.stdout.readline())["record_type"] == "header"
        writer.write_chunk(0, ROWS[0])
        assert json.loads(proc.stdout.readline())["index"] == 0
        writer.write_chunk(1, ROWS[1])
        writer.abandon()
        # The last chunk is read before giving up: nothing written is missed.
        assert json.loads(proc.stdout.readline())["index"] == 1
        assert proc.wait(timeout=60) == 1
        assert proc.stderr.read() == (
            f"sessionwal: the writer let go of '{sessionwal.session_partial_file('gone')}' "
            "without closing it\n"
        )


def test_tail_timeout(writer_cls):
    writer = writer_cls(make_session("idle"))
    result = run_cli("tail", "-f", "idle", "--timeout", "0.2", "--poll", "0.05")
    assert result.returncode == 1
    assert result.stderr == "sessionwal: stopped following after 0.2 s; the session is open\n"
    assert result.stdout == f"session idle created {FIXED_CREATED_AT.isoformat()}\n"
    writer.close()


def test_tail_of_a_missing_session_exits_2():
    result = run_cli("tail", "-f", "nobody", "--timeout", "1")
    assert result.returncode == 2 and "no session file for 'nobody'" in result.stderr


class FakeTime:
    """A clock that moves only when the follower sleeps: no real waiting, no timing."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_follower_gives_the_rename_a_grace_period_after_the_trailer(writer_cls, tmp_path):
    # The pure writer unlocks just before it renames: a trailer in a partial file
    # nobody holds is "closed" once the rename lands, "crashed" if it never does.
    with writer_cls(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, ROWS[0])
    os.rename(writer.path, writer.partial_path)
    fake = FakeTime()
    options = {"poll_interval": 0.5, "rename_grace": 2.0, "clock": fake.clock, "sleep": fake.sleep}
    with Follower(writer.partial_path, **options) as follower:
        assert [t for t, _ in follower.read()] == ["header", "chunk", "trailer"]
        assert follower.wait() and follower.wait()
        os.rename(writer.partial_path, writer.path)
        assert not follower.wait()
        assert follower.outcome == "closed"
    os.rename(writer.path, writer.partial_path)
    with Follower(writer.partial_path, **options) as follower:
        follower.read()
        polls = 0
        while follower.wait():
            polls += 1
        assert (follower.outcome, polls) == ("crashed", 4)


def test_follower_times_out_on_a_session_that_never_goes_idle(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    fake = FakeTime()
    with Follower(writer.partial_path, timeout=1.0, clock=fake.clock, sleep=fake.sleep) as follower:
        for i in range(2):
            writer.write_chunk(i, ROWS[0])
            assert len(follower.read()) == 1 + (i == 0)
            assert not follower.timed_out()
            fake.now += 0.5
        assert follower.timed_out() and follower.outcome == "timeout"
    writer.abandon()
