"""Replication to object storage (docs/replication.md): what a restore gives back,
what the store holds, and how the replicator and its CLI behave.

Every store test runs against file:// and a real S3 endpoint on loopback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from replicate_fixtures import (
    SECRET,
    complete_prefix,
    moto_endpoint,
    s3_url,
    sessionwal_cli,
    sessionwal_popen,
    store_url,
    wait_until,
)

from sessionwal import ChunkRow, Session, SessionWriter
from sessionwal.repair import repair_session
from sessionwal.replicate import (
    ObjectStoreClient,
    Replicator,
    RestoreError,
    Shipped,
    list_remote,
    restore,
)

__all__ = ["moto_endpoint", "s3_url", "store_url"]  # fixtures, re-exported for pytest

_KEY = re.compile(
    r"(?P<id>[^/]+)/g(?P<gen>\d{6})/(?:live/(?P<start>\d{20})-(?P<end>\d{20})-[0-9a-f]{16}"
    r"|closed-[0-9a-f]{16})\.jsonl"
)


def chunk(i: int) -> ChunkRow:
    return ChunkRow(kind="text", payload={"i": i, "text": f"chunk {i} é 漢字 " + "x" * (i % 50)})


def open_writer(directory: Path, session_id: str, chunks: int = 0, first: int = 0) -> SessionWriter:
    writer = SessionWriter(Session(id=session_id), path=directory / f"{session_id}.jsonl")
    for i in range(first, first + chunks):
        writer.write_chunk(i, chunk(i))
    return writer


def layout(url: str) -> dict[str, dict[int, list[tuple[int, int] | str]]]:
    """id -> generation -> its objects ((start, end) per live segment, "closed"), from a listing."""
    found: dict[str, dict[int, list[tuple[int, int] | str]]] = {}
    for meta in ObjectStoreClient(url).list():
        match = _KEY.fullmatch(meta["path"])
        assert match, f"unexpected key {meta['path']}"
        objects = found.setdefault(match["id"], {}).setdefault(int(match["gen"]), [])
        if match["start"] is None:
            objects.append("closed")
        else:
            objects.append((int(match["start"]), int(match["end"])))
    for generations in found.values():
        for objects in generations.values():
            objects.sort(key=str)
    return found


def assert_no_gap_no_duplicate(url: str) -> None:
    """Each generation is one closed object, or live segments chaining from 0 exactly."""
    for session_id, generations in layout(url).items():
        for number, objects in generations.items():
            if "closed" in objects:
                assert objects == ["closed"], (session_id, number, objects)
                continue
            spans = sorted(objects)  # type: ignore[type-var]
            end = 0
            for start, stop in spans:  # type: ignore[misc]
                assert start == end, f"{session_id} g{number}: gap or overlap at {start}"
                end = stop


def restored_bytes(url: str, directory: Path) -> dict[str, bytes]:
    restore(url, None, directory)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ---------------------------------------------------------------- restore gives the host's bytes


def test_restore_gives_back_closed_in_flight_and_crashed_sessions(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "closed", 20).close()
    in_flight = open_writer(sessions, "in-flight", 7)
    crashed = open_writer(sessions, "crashed", 5)
    crashed.abandon()
    with open(sessions / "crashed.jsonl.__partial__", "ab") as f:
        f.write(b'{"record_type": "chunk", "index": 5, "ki')  # the torn tail of a crash

    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok

    got = restored_bytes(store_url, tmp_path / "restored")
    assert got == {
        "closed.jsonl": (sessions / "closed.jsonl").read_bytes(),
        "crashed.jsonl.__partial__": complete_prefix(
            (sessions / "crashed.jsonl.__partial__").read_bytes()
        ),
        "in-flight.jsonl.__partial__": (sessions / "in-flight.jsonl.__partial__").read_bytes(),
    }
    assert got["crashed.jsonl.__partial__"].endswith(b"\n")
    in_flight.close()
    assert_no_gap_no_duplicate(store_url)


def test_kill9_writer_restores_every_complete_line(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from sessionwal import ChunkRow, Session, SessionWriter\n"
            "w = SessionWriter(Session(id='victim'), path=Path(sys.argv[1]) / 'victim.jsonl')\n"
            "i = 0\n"
            "while True:\n"
            "    row = ChunkRow(kind='text', payload={'i': i, 'pad': 'y' * (i % 997)})\n"
            "    w.write_chunk(i, row)\n"
            "    i += 1\n",
            str(sessions),
        ]
    )
    partial = sessions / "victim.jsonl.__partial__"
    replicator = Replicator(store_url, sessions)
    try:
        wait_until(lambda: partial.exists() and partial.stat().st_size > 50_000)
        assert replicator.run_pass().ok  # ships while the writer writes
        time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert replicator.run_pass().ok
    got = restored_bytes(store_url, tmp_path / "restored")
    assert got == {"victim.jsonl.__partial__": complete_prefix(partial.read_bytes())}
    assert_no_gap_no_duplicate(store_url)


def test_reopened_session_keeps_replicating(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    first = open_writer(sessions, "again", 3)
    first.abandon()
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    second = open_writer(sessions, "again", 4, first=3)  # a second header, same id
    assert replicator.run_pass().ok
    data = (sessions / "again.jsonl.__partial__").read_bytes()
    assert data.count(b'"record_type": "header"') == 2
    assert restored_bytes(store_url, tmp_path / "r1") == {"again.jsonl.__partial__": data}
    second.close()
    assert replicator.run_pass().ok
    assert restored_bytes(store_url, tmp_path / "r2") == {
        "again.jsonl": (sessions / "again.jsonl").read_bytes()
    }
    assert list(layout(store_url)["again"]) == [1]  # one generation throughout
    assert_no_gap_no_duplicate(store_url)


def test_closed_session_reopened_restores_both_files(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "twice", 2).close()
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    reopened = open_writer(sessions, "twice", 3)  # a fresh partial beside the final file
    assert replicator.run_pass().ok
    assert replicator.run_pass().objects == 0
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "twice.jsonl": (sessions / "twice.jsonl").read_bytes(),
        "twice.jsonl.__partial__": (sessions / "twice.jsonl.__partial__").read_bytes(),
    }
    reopened.close()


# ---------------------------------------------------------------- what the store holds


def test_live_segments_then_one_closed_object(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    writer = open_writer(sessions, "s", 3)
    replicator = Replicator(store_url, sessions)
    sizes = []
    for round_ in range(3):
        assert replicator.run_pass().ok
        sizes.append((sessions / "s.jsonl.__partial__").stat().st_size)
        writer.write_chunk(3 + round_, chunk(3 + round_))
    assert replicator.run_pass().ok
    sizes.append((sessions / "s.jsonl.__partial__").stat().st_size)
    starts = [0, *sizes[:-1]]
    assert layout(store_url) == {"s": {1: sorted(zip(starts, sizes, strict=True))}}
    writer.close()
    assert replicator.run_pass().ok
    assert layout(store_url) == {"s": {1: ["closed"]}}  # the pieces were cleaned up
    assert replicator.stats.deleted_objects == 4
    [info] = list_remote(store_url)
    assert (info.session_id, info.state, info.size) == (
        "s",
        "closed",
        (sessions / "s.jsonl").stat().st_size,
    )


def test_torn_tail_is_never_shipped(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    partial = sessions / "t.jsonl.__partial__"
    partial.write_bytes(b'{"record_type": "header", "id": "t"}\n{"record_type": "ch')
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    assert layout(store_url) == {"t": {1: [(0, 37)]}}
    with open(partial, "ab") as f:
        f.write(b'unk"}\n')
    assert replicator.run_pass().ok
    assert layout(store_url) == {"t": {1: [(0, 37), (37, 37 + 25)]}}


def test_two_passes_over_unchanged_files_upload_nothing(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "a", 5).close()
    writer = open_writer(sessions, "b", 5)
    assert Replicator(store_url, sessions).run_pass().objects == 2
    before = ObjectStoreClient(store_url).list()
    # A second pass, and a fresh replicator (state from the listing), ship nothing.
    fresh = Replicator(store_url, sessions)
    assert fresh.run_pass().objects == 0
    assert fresh.run_pass().objects == 0
    assert fresh.stats.live_bytes == fresh.stats.closed_bytes == 0
    assert ObjectStoreClient(store_url).list() == before
    writer.close()


def test_no_file_stays_open_between_passes(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    writer = open_writer(sessions, "open", 3)
    replicator = Replicator((tmp_path / "store").as_uri(), sessions)
    assert replicator.run_pass().ok
    ours = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            ours.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    # Only the writer's own descriptor is on the file.
    assert ours.count(str(sessions / "open.jsonl.__partial__")) == 1
    writer.close()


# ---------------------------------------------------------------- generations


def test_a_file_cut_and_regrown_past_the_shipped_offset_gets_a_new_generation(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    partial = sessions / "cut.jsonl.__partial__"
    header = b'{"record_type": "header", "id": "cut"}\n'
    partial.write_bytes(header + b'{"record_type": "chunk", "n": 1}\n' * 40)
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    shipped = partial.stat().st_size
    # A power loss kept the first records; the writer reopened and wrote past the old end.
    regrown = header + b'{"record_type": "chunk", "n": 1}\n' * 2
    regrown += b'{"record_type": "chunk", "n": 2}\n' * 60
    assert len(regrown) > shipped
    partial.write_bytes(regrown)
    assert replicator.run_pass().ok
    assert sorted(layout(store_url)["cut"]) == [1, 2]  # the old bytes stay as generation 1
    assert restored_bytes(store_url, tmp_path / "restored") == {"cut.jsonl.__partial__": regrown}


def test_a_replaced_file_of_the_same_size_is_told_apart_by_its_bytes(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    partial = sessions / "same.jsonl.__partial__"
    partial.write_bytes(
        b'{"record_type": "header", "id": "same"}\n{"record_type": "chunk", "v": "aaaa"}\n'
    )
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    partial.write_bytes(
        b'{"record_type": "header", "id": "same"}\n{"record_type": "chunk", "v": "bbbb"}\n'
    )
    # Same size, and a fresh replicator that knows only the listing.
    assert Replicator(store_url, sessions).run_pass().ok
    assert sorted(layout(store_url)["same"]) == [1, 2]
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "same.jsonl.__partial__": partial.read_bytes()
    }


def test_repair_after_shipping_consolidates_into_the_same_generation(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    crashed = open_writer(sessions, "fixme", 6)
    crashed.abandon()
    with open(sessions / "fixme.jsonl.__partial__", "ab") as f:
        f.write(b'{"record_type": "chunk", "ind')
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    result = repair_session(sessions / "fixme.jsonl.__partial__")
    assert replicator.run_pass().ok
    assert layout(store_url)["fixme"] == {1: ["closed"]}
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "fixme.jsonl": result.path.read_bytes()
    }


# ---------------------------------------------------------------- many sessions, continuous mode


def test_many_sessions_at_once(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    writers = [open_writer(sessions, f"s{n:03d}", n % 7 + 1) for n in range(120)]
    for writer in writers[::3]:
        writer.close()
    replicator = Replicator(store_url, sessions, workers=8)
    assert replicator.run_pass().ok
    got = restored_bytes(store_url, tmp_path / "restored")
    assert got == {p.name: p.read_bytes() for p in sorted(sessions.iterdir())}
    assert len(got) == 120
    for writer in writers:
        writer.close()


def test_continuous_mode_ships_new_lines_within_its_interval(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    events: list[tuple[float, Shipped]] = []
    replicator = Replicator(
        store_url,
        sessions,
        interval=0.2,
        on_shipped=lambda s: events.append((time.monotonic(), s)),
    )
    thread = replicator.start()
    try:
        writer = open_writer(sessions, "live", 1)
        lags = []
        for i in range(1, 6):
            writer.write_chunk(i, chunk(i))
            written = time.monotonic()
            end = (sessions / "live.jsonl.__partial__").stat().st_size
            wait_until(lambda end=end: any(s.end >= end for _, s in events), timeout=10)
            lags.append(next(t for t, s in events if s.end >= end) - written)
        writer.close()
        wait_until(lambda: any(s.kind == "closed" for _, s in events), timeout=10)
    finally:
        replicator.stop(timeout=10)
    assert not thread.is_alive()
    # Bounded lag (the benchmark measures it; here only "well within a few seconds").
    assert max(lags) < 5.0, lags
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "live.jsonl": (sessions / "live.jsonl").read_bytes()
    }


# ---------------------------------------------------------------- the command line


def test_cli_once_restore_and_ls(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "done", 4).close()
    writer = open_writer(sessions, "going", 2)
    run = sessionwal_cli("replicate", store_url, "--dir", str(sessions), "--once")
    assert run.returncode == 0, run.stderr
    assert "shipped 1 live segment(s)" in run.stdout
    listing = sessionwal_cli("ls", store_url)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split()[:2] for line in listing.stdout.splitlines()]
    assert rows == [["ID", "STATE"], ["done", "closed"], ["going", "open"]]
    target = tmp_path / "restored"
    back = sessionwal_cli("restore", store_url, "going", "--dir", str(target))
    assert back.returncode == 0, back.stderr
    assert [p.name for p in target.iterdir()] == ["going.jsonl.__partial__"]
    again = sessionwal_cli("restore", store_url, "going", "--dir", str(target))
    assert again.returncode == 2
    assert "exists; not overwritten" in again.stderr
    writer.close()


def test_restore_of_an_unknown_id_fails_naming_it(tmp_path: Path) -> None:
    url = (tmp_path / "store").as_uri()
    with pytest.raises(RestoreError, match="nobody: not in the store"):
        restore(url, ["nobody"], tmp_path / "restored")


def test_once_gives_up_after_its_timeout_naming_what_was_not_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("moto.server", reason="moto[server] not installed")
    sessions = tmp_path / "sessions"
    open_writer(sessions, "stranded", 2).close()
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    started = time.monotonic()
    run = sessionwal_cli(
        "replicate", "s3://bucket/x", "--dir", str(sessions), "--once", "--timeout", "2"
    )
    assert run.returncode == 1, run.stderr
    assert time.monotonic() - started < 30
    assert "not shipped after 2 s: 1 session(s): stranded; last error: " in run.stderr
    assert SECRET not in run.stderr + run.stdout


def test_missing_bucket_is_one_line_and_exit_2(s3_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "x", 1).close()
    missing = "s3://no-such-bucket-here/p"
    run = sessionwal_cli("replicate", missing, "--dir", str(sessions), "--once")
    assert run.returncode == 2, run.stderr
    [line] = run.stderr.splitlines()[-1:]
    assert "NoSuchBucket" in line or "not found" in line.lower(), run.stderr
    assert len(run.stderr.strip().splitlines()) <= 2  # the start line, then the error
    assert SECRET not in run.stderr + run.stdout
    listing = sessionwal_cli("ls", missing)
    assert listing.returncode == 2
    assert len(listing.stderr.strip().splitlines()) == 1


def test_sigterm_finishes_and_exits_0(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    writer = open_writer(sessions, "term", 3)
    proc = sessionwal_popen("replicate", store_url, "--dir", str(sessions), "--interval", "0.1")
    try:
        wait_until(lambda: "term" in layout(store_url))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert SECRET not in err
    writer.close()


def test_without_obstore_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)
    with pytest.raises(ImportError, match=r"pip install 'sessionwal\[replicate\]'"):
        Replicator((tmp_path / "store").as_uri(), tmp_path)


def test_an_id_that_is_not_a_plain_name_round_trips(store_url: str, tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "chat with Zoë: 漢字 #1", 2).close()
    assert Replicator(store_url, sessions).run_pass().ok
    [key] = [meta["path"] for meta in ObjectStoreClient(store_url).list()]
    assert key.startswith("~" + "chat with Zoë: 漢字 #1".encode().hex() + "/g000001/closed-")
    assert [info.session_id for info in list_remote(store_url)] == ["chat with Zoë: 漢字 #1"]
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "chat with Zoë: 漢字 #1.jsonl": (sessions / "chat with Zoë: 漢字 #1.jsonl").read_bytes()
    }


def test_ls_refuses_a_directory_for_a_url(tmp_path: Path) -> None:
    run = sessionwal_cli("ls", str(tmp_path))
    assert run.returncode == 2
    assert "for a directory of sessions use --dir" in run.stderr


def test_a_running_replicator_never_makes_a_writer_open_fail(tmp_path: Path) -> None:
    """The replicator reads without the writer's lock: reopening the same id while
    passes run back to back is never refused."""
    sessions = tmp_path / "sessions"
    replicator = Replicator((tmp_path / "store").as_uri(), sessions, interval=0.001)
    replicator.start()
    try:
        for i in range(200):
            writer = open_writer(sessions, "busy", 1, first=i)  # raises if refused
            writer.abandon()
    finally:
        replicator.stop(timeout=10)
    assert Replicator((tmp_path / "store").as_uri(), sessions).run_pass().ok  # a rerun
    assert restored_bytes((tmp_path / "store").as_uri(), tmp_path / "restored") == {
        "busy.jsonl.__partial__": (sessions / "busy.jsonl.__partial__").read_bytes()
    }


def test_a_new_host_restores_then_replicates_without_reshipping(
    store_url: str, tmp_path: Path
) -> None:
    """The host-replacement path: restore onto a fresh disk, resume the sidecar there;
    what came from the store is not sent again, and new lines carry on its generation."""
    old_host = tmp_path / "old"
    open_writer(old_host, "done", 3).close()
    crashed = open_writer(old_host, "resume", 3)
    crashed.abandon()
    assert Replicator(store_url, old_host).run_pass().ok
    new_host = tmp_path / "new"
    restore(store_url, None, new_host)
    replicator = Replicator(store_url, new_host)
    assert replicator.run_pass().objects == 0
    resumed = open_writer(new_host, "resume", 2, first=3)  # the runtime reopens it
    assert replicator.run_pass().objects == 1
    resumed.close()
    assert replicator.run_pass().ok
    assert {sid: sorted(gens) for sid, gens in layout(store_url).items()} == {
        "done": [1],
        "resume": [1],
    }
    assert restored_bytes(store_url, tmp_path / "again") == {
        p.name: p.read_bytes() for p in sorted(new_host.iterdir())
    }


def test_large_sessions_split_into_segments_and_close_as_multipart(
    store_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    writer = open_writer(sessions, "big")
    for i in range(150):  # ~9.4 MiB: more than one 8 MiB segment, a multipart close
        writer.write_chunk(i, ChunkRow(kind="tool", payload={"i": i, "out": "z" * 65536}))
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok
    segments = layout(store_url)["big"][1]
    assert len(segments) == 2
    assert segments[0][1] <= 8 * 1024 * 1024  # type: ignore[index]
    writer.close()
    assert replicator.run_pass().ok
    assert layout(store_url)["big"] == {1: ["closed"]}
    assert restored_bytes(store_url, tmp_path / "restored") == {
        "big.jsonl": (sessions / "big.jsonl").read_bytes()
    }


def test_the_sessions_directory_replaced_under_a_running_replicator(tmp_path: Path) -> None:
    """inotify's watch dies with the directory: the replicator falls back to polling."""
    sessions = tmp_path / "sessions"
    url = (tmp_path / "store").as_uri()
    events: list[Shipped] = []
    replicator = Replicator(url, sessions, interval=0.05, on_shipped=events.append)
    replicator.start()
    try:
        open_writer(sessions, "before", 1).close()
        wait_until(lambda: any(s.session_id == "before" for s in events))
        (sessions / "before.jsonl").unlink()
        sessions.rmdir()
        open_writer(sessions, "after", 1).close()  # the writer makes the directory again
        wait_until(lambda: any(s.session_id == "after" for s in events), timeout=10)
    finally:
        replicator.stop(timeout=10)


def test_a_link_at_a_session_name_is_refused_and_named(tmp_path: Path) -> None:
    """The session-file layer's rule: a link is never followed, here as in every reader."""
    sessions = tmp_path / "sessions"
    open_writer(sessions, "real", 1).close()
    secret = tmp_path / "elsewhere.txt"
    secret.write_bytes(b"not a session\n")
    (sessions / "planted.jsonl").symlink_to(secret)
    url = (tmp_path / "store").as_uri()
    run = sessionwal_cli("replicate", url, "--dir", str(sessions), "--once")
    assert run.returncode == 1, run.stderr
    assert "not shipped: 1 session(s): planted; cannot read:" in run.stderr
    assert sorted(layout(url)) == ["real"]  # the others still went


def test_a_power_loss_hole_is_never_shipped_and_the_reopened_session_continues(
    store_url: str, tmp_path: Path
) -> None:
    # What a power cut can leave (docs/durability.md, "After power loss"):
    # durable records, a NUL run where data never landed, then later records.
    sessions = tmp_path / "sessions"
    writer = open_writer(sessions, "p", 3)
    writer.abandon()
    partial = sessions / "p.jsonl.__partial__"
    durable = partial.read_bytes()
    replicator = Replicator(store_url, sessions)
    assert replicator.run_pass().ok  # header + 3 chunks shipped
    later = open_writer(tmp_path / "elsewhere", "p", 2, first=7)
    later.abandon()
    beyond = (tmp_path / "elsewhere" / "p.jsonl.__partial__").read_bytes().split(b"\n", 1)[1]
    with open(partial, "ab") as f:
        f.write(b"\0" * 5000 + beyond)
    assert replicator.run_pass().ok
    assert restored_bytes(store_url, tmp_path / "r1") == {"p.jsonl.__partial__": durable}

    # The runtime resumes: the reopen cuts the crash tail, appends, closes.
    resumed = open_writer(sessions, "p", 2, first=3)
    resumed.close()
    assert replicator.run_pass().ok
    got = restored_bytes(store_url, tmp_path / "r2")
    assert got == {"p.jsonl": (sessions / "p.jsonl").read_bytes()}
    assert got["p.jsonl"].startswith(durable) and b"\0" not in got["p.jsonl"]
    assert_no_gap_no_duplicate(store_url)
