"""The system calls the native writer makes, in order, seen by strace.

The open carries O_APPEND|O_CLOEXEC|O_NOFOLLOW and mode 0600 (no chmod
afterwards) and is relative to the directory's descriptor, the final name is
installed with RENAME_NOREPLACE, the flock comes before the header, and each
sync mode makes exactly its fdatasync/fsync calls (docs/durability.md): the
ordering that makes "closed" survive power loss is trailer, fdatasync,
rename, fsync(dir).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TRACED = (
    "openat,flock,write,fdatasync,fsync,rename,renameat,renameat2,ftruncate,chmod,fchmod,fchmodat"
)

CHILD = """
import sys, time
from sessionwal import ChunkRow, Session, SessionWriter

path, sync, interval, pause = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
options = {} if sync == "default" else {"sync": sync, "sync_interval": interval}
writer = SessionWriter(Session(id="s"), path=path, **options)
writer.write_chunk(0, ChunkRow("user", {"n": 0}))
time.sleep(pause)  # idle: lets a sync="interval" writer's thread run
writer.write_chunk(1, ChunkRow("user", {"n": 1}))
writer.close()
"""

STRACE = ["strace", "-f", "-qq", "-e", f"trace={TRACED}", "-e", "signal=none", "-s", "40"]
LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$")


@functools.cache
def strace_usable() -> str | None:
    """None when strace works here, else why not."""
    if shutil.which("strace") is None:
        return "strace is not installed (.ci/run installs it from Debian)"
    probe = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace denied?): {probe.stderr.strip()}"
    return None


@pytest.fixture(autouse=True)
def _needs_strace() -> None:
    reason = strace_usable()
    if reason:
        pytest.skip(reason)


@dataclass
class Event:
    tid: int
    what: str
    detail: str = ""


def trace(tmp_path: Path, sync: str, interval: float = 3600.0, pause: float = 0.0) -> list[Event]:
    """Runs the child under strace; returns the calls on the session's files."""
    path = tmp_path / "s.jsonl"
    out = tmp_path / "strace.out"
    args = [str(path), sync, str(interval), str(pause)]
    done = subprocess.run(
        [*STRACE, "-o", str(out), sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return interesting(out.read_text(), path)


def at(fd_paths: dict[str, str], dirfd: str, name: str) -> str:
    """The quoted path an ``*at`` call names: ``name`` relative to ``dirfd``."""
    base = fd_paths.get(dirfd)
    if name.startswith('"/') or base is None:
        return name
    return f'"{base.strip(chr(34))}/{name.strip(chr(34))}"'


def interesting(text: str, path: Path) -> list[Event]:
    partial = f'"{path}.__partial__"'
    directory = f'"{path.parent}"'
    fd_paths: dict[str, str] = {}
    events: list[Event] = []
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        tid, call, args, ret, _ = match.groups()
        first, _, rest = args.partition(", ")
        if call == "openat":
            name, _, flags = rest.partition(", ")
            name = at(fd_paths, first, name)
            fd_paths[ret] = name
            if name == partial:
                events.append(Event(int(tid), "open", flags))
            continue
        target = fd_paths.get(first)
        if call in ("renameat", "renameat2"):
            from_dir, from_name, _to_dir, _to_name, *flags = args.split(", ")
            if at(fd_paths, from_dir, from_name) == partial:
                events.append(Event(int(tid), "rename", ", ".join(flags)))
        elif call == "rename" and partial in args:
            events.append(Event(int(tid), "rename"))
        elif call.startswith(("chmod", "fchmod")) and (partial in args or target == partial):
            events.append(Event(int(tid), "chmod"))
        elif target == partial and call == "write":
            kind = re.match(r'"\{\\"record_type\\": \\"(\w+)', rest)
            events.append(Event(int(tid), f"write {kind.group(1) if kind else '?'}"))
        elif target == partial and call in ("flock", "fdatasync", "fsync", "ftruncate"):
            events.append(Event(int(tid), call, rest))
        elif target == directory and call == "fsync":
            events.append(Event(int(tid), "fsync(dir)"))
    return events


def names(events: list[Event]) -> list[str]:
    return [e.what for e in events]


def test_open_flags_mode_and_the_close_sequence(tmp_path):
    events = trace(tmp_path, "close")
    opened = events[0]
    assert opened.what == "open"
    flags, _, mode = opened.detail.partition(", ")
    assert {"O_APPEND", "O_CLOEXEC", "O_NOFOLLOW", "O_CREAT"} <= set(flags.split("|"))
    assert not {"O_EXCL", "O_TRUNC"} & set(flags.split("|"))
    assert mode == "0600", "created 0600 by the open itself"
    assert "chmod" not in names(events), "no chmod window"
    assert events[1].what == "flock" and events[1].detail == "LOCK_EX|LOCK_NB"
    assert names(events)[2:] == [
        "write header",
        "write chunk",
        "write chunk",
        "write trailer",
        "fdatasync",
        "rename",
        "fsync(dir)",
        "flock",  # LOCK_UN: the lock is held across the rename
    ]
    assert events[-1].detail == "LOCK_UN"
    assert events[-3].detail == "RENAME_NOREPLACE", "close never replaces a file"


RECORDS = ["write header", "write chunk", "write chunk", "write trailer"]
EXPECTED = {
    "never": [*RECORDS, "rename"],
    "close": [*RECORDS, "fdatasync", "rename", "fsync(dir)"],
    "always": [
        "fsync(dir)",
        *(call for record in RECORDS for call in (record, "fdatasync")),
        "rename",
        "fsync(dir)",
    ],
    # An interval longer than the run: only close syncs.
    "interval": ["fsync(dir)", *RECORDS, "fdatasync", "rename", "fsync(dir)"],
}
EXPECTED["default"] = EXPECTED["close"]


@pytest.mark.parametrize("sync", sorted(EXPECTED))
def test_each_sync_mode_makes_exactly_its_syncs(tmp_path, sync):
    events = [e for e in trace(tmp_path, sync) if e.what not in ("open", "flock")]
    assert names(events) == EXPECTED[sync]


def test_interval_syncs_in_the_background_once_per_dirty_period(tmp_path):
    # 10 ms interval, 1 s idle after chunk 0: the syncer thread runs about a
    # hundred times but has something to sync only once.
    events = trace(tmp_path, "interval", interval=0.01, pause=1.0)
    main = events[0].tid
    seq = names(events)
    idle = seq[
        seq.index("write chunk") + 1 : seq.index("write chunk", seq.index("write chunk") + 1)
    ]
    # Once for chunk 0; twice only if the syncer woke between chunk 0's
    # write and its dirty mark (then it synced the header alone first).
    assert idle in (["fdatasync"], ["fdatasync", "fdatasync"]), seq
    background = [e for e in events if e.what == "fdatasync" and e.tid != main]
    assert background, "the idle-period sync did not come from the syncer thread"
    assert seq[-4:] == ["fdatasync", "rename", "fsync(dir)", "flock"]


EFBIG_CHILD = """
import os, resource, sys
from sessionwal import ChunkRow, Session, SessionWriter
writer = SessionWriter(Session(id="s"), path=sys.argv[1], sync="never")
size = os.path.getsize(writer.partial_path)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, size + 1000))
try:
    writer.write_chunk(0, ChunkRow("user", {"text": "x" * 5000}))
except OSError:
    pass
writer.abandon()
"""


def test_a_write_failing_part_way_is_cut_back_with_ftruncate(tmp_path):
    path = tmp_path / "s.jsonl"
    out = tmp_path / "strace.out"
    done = subprocess.run(
        [*STRACE, "-o", str(out), sys.executable, "-c", EFBIG_CHILD, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    raw = out.read_text()
    events = interesting(raw, path)
    header_size = path.with_name(path.name + ".__partial__").stat().st_size
    assert names(events)[:3] == ["open", "flock", "write header"]
    assert names(events)[3:5] == ["write chunk", "write ?"], "a short write, then the rest"
    assert events[5].what == "ftruncate" and events[5].detail == str(header_size)
    assert re.search(r"write\(\d+, .*\) = -1 EFBIG", raw)
