"""Hostile directories: another user planting links for root's writer, an
unprivileged writer's own files, arbitrary directory contents thrown at every
reader (hypothesis), and an allocation the OS refuses (docs/safety.md)."""

from __future__ import annotations

import errno
import io
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from crash_helpers import run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionwal
from sessionwal import PersistenceError, cli, files
from sessionwal.errors import InsecureDirectoryWarning
from sessionwal.files import SessionState
from sessionwal.follow import Follower

from conftest import make_session

PROBE_USER = "sessionwal-probe"


@pytest.fixture(scope="module")
def probe_user() -> Iterator[pwd.struct_passwd]:
    """An unprivileged user made for these tests (removed after, if we made it)."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    created = False
    try:
        user = pwd.getpwnam(PROBE_USER)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PROBE_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"useradd failed: {done.stderr.strip()}")
        created = True
        user = pwd.getpwnam(PROBE_USER)
    yield user
    if created:
        subprocess.run(["userdel", PROBE_USER], capture_output=True, check=False)


def as_user(user: pwd.struct_passwd, action: Callable[[], None]) -> None:
    """Runs ``action`` in a forked child that dropped root for ``user`` (no exec:
    the child keeps the imported package, wherever the venv lives)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            action()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child failed (see stderr)"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A sticky world-writable directory any user can reach, like /tmp itself."""
    path = Path(tempfile.mkdtemp(prefix="sessionwal-shared-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def test_another_users_links_never_lead_roots_writer_to_roots_files(
    probe_user, shared_dir, tmp_path
):
    precious = tmp_path / "private" / "app.conf"  # in a 0700 dir the user cannot read
    precious.parent.mkdir(mode=0o700)
    precious.write_bytes(b"root only\n")
    precious.chmod(0o600)

    def plant() -> None:
        (shared_dir / "p.jsonl.__partial__").symlink_to(precious)
        (shared_dir / "f.jsonl").symlink_to(precious)

    as_user(probe_user, plant)
    with pytest.warns(InsecureDirectoryWarning), pytest.raises(OSError) as info:
        sessionwal.SessionWriter(make_session("p"), path=shared_dir / "p.jsonl")
    # ELOOP from O_NOFOLLOW, or EACCES where the kernel refuses an open of
    # another user's link in a sticky directory first: never followed.
    assert info.value.errno in (errno.ELOOP, errno.EACCES)
    with pytest.warns(InsecureDirectoryWarning):
        with sessionwal.SessionWriter(make_session("f"), path=shared_dir / "f.jsonl"):
            pass
    assert precious.read_bytes() == b"root only\n"
    assert stat.S_IMODE(precious.stat().st_mode) == 0o600
    assert (shared_dir / "f.jsonl.~1~").is_symlink(), "the planted link kept aside"
    assert not (shared_dir / "f.jsonl").is_symlink()


def test_an_unprivileged_writer_gets_private_dirs_and_refuses_a_shared_default(
    probe_user, shared_dir
):
    home = shared_dir / "home"
    other = shared_dir / "other"

    def write() -> None:
        os.umask(0)
        os.environ["SESSIONWAL_HOME"] = str(home)
        with sessionwal.SessionWriter(make_session("u")) as writer:
            writer.write_chunk(0, sessionwal.ChunkRow("user", {}))
        os.environ["SESSIONWAL_HOME"] = str(other)
        (other / "sessions").mkdir(parents=True)
        (other / "sessions").chmod(0o777)
        try:
            sessionwal.SessionWriter(make_session("v"))
        except PersistenceError as exc:
            assert "writable by group or others" in str(exc)
        else:
            raise AssertionError("a world-writable default sessions dir was used")

    as_user(probe_user, write)
    for directory in (home, home / "sessions"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert directory.stat().st_uid == probe_user.pw_uid
    final = home / "sessions" / "u.jsonl"
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert files.state_of(final).state is SessionState.CLOSED
    assert list((other / "sessions").iterdir()) == []


# ------------------------------------------------------------------ any directory contents

LIMIT = 4096
SECRET_ID = "secret"


def secret_file(root: Path) -> Path:
    """A valid closed session outside the directory: a reader that follows a
    link to it would list it."""
    path = root / "outside" / f"{SECRET_ID}.jsonl"
    path.parent.mkdir(exist_ok=True)
    if not path.exists():
        with sessionwal.SessionWriter(make_session(SECRET_ID), path=path):
            pass
    return path


ids = st.one_of(
    st.sampled_from(["a", "b", SECRET_ID, "x.jsonl", "y.jsonl.__partial__.bak"]),
    st.text(
        st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=20,
    ).filter(lambda s: s not in (".", "..")),
    st.integers(200, 236).map(lambda n: "L" * n),
)
kinds = st.sampled_from(
    ["closed", "lines", "link", "dangling", "link-dir", "fifo", "dir", "newlines", "long"]
)
lines = st.lists(
    st.one_of(
        st.just(b""),
        st.just(b'{"record_type": "chunk", "index": 0}'),
        st.just(b'{"record_type": "trailer", "final_chunk_count": 0}'),
        st.binary(max_size=40).filter(lambda b: b"\n" not in b),
        st.integers(LIMIT - 2, LIMIT + 2).map(lambda n: b"[" + b"1" * (n - 2) + b"]"),
    ),
    max_size=6,
)
entries = st.lists(st.tuples(ids, st.booleans(), kinds, lines, st.binary(max_size=50)), max_size=6)


def plant(root: Path, directory: Path, entry: tuple) -> None:
    session_id, partial, kind, body, tail = entry
    name = session_id + (".jsonl.__partial__" if partial else ".jsonl")
    path = directory / name
    if len(name.encode()) > 255 or os.path.lexists(path):
        return
    head = json.dumps(sessionwal.build_header(make_session(session_id))).encode() + b"\n"
    if kind == "closed":
        path.write_bytes((root / "outside" / f"{SECRET_ID}.jsonl").read_bytes())
    elif kind == "lines":
        path.write_bytes(head + b"".join(line + b"\n" for line in body) + tail)
    elif kind == "newlines":
        path.write_bytes(head + b"\n" * 5000)
    elif kind == "long":
        path.write_bytes(head + b"z" * (3 * LIMIT) + b"\n")
    elif kind == "link":
        path.symlink_to(secret_file(root))
    elif kind == "dangling":
        path.symlink_to(root / "outside" / "missing")
    elif kind == "link-dir":
        path.symlink_to(root / "outside")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang("a reader blocked")


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries)
def test_readers_never_follow_hang_or_grow_on_hostile_contents(tmp_path, monkeypatch, contents):
    monkeypatch.setenv("SESSIONWAL_MAX_LINE_BYTES", str(LIMIT))
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    directory = root / "sessions"
    directory.mkdir()
    secret = secret_file(root)
    for entry in contents:
        plant(root, directory, entry)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        listed = sessionwal.list_sessions(directory, on_error=lambda path, exc: None)
        for info in listed:
            assert info.path.parent == directory
            assert not info.path.is_symlink() and stat.S_ISREG(os.lstat(info.path).st_mode)
            assert files.session_id_of(info.path) == info.id
        for path in sorted(directory.iterdir()):
            verdict = files.state_of(path)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                assert verdict.state is SessionState.UNREADABLE, (path, verdict)
            try:
                sessionwal.load_session(path=path)
                with Follower(path) as follower:
                    follower.read()
            except (OSError, PersistenceError) as exc:
                if "line is longer" in str(exc):
                    assert f":{exc.line}:" in str(exc)  # type: ignore[attr-defined]
        out = _cli_ls(directory)
        assert not files.CONTROL_CHARACTERS.search(out.replace("\n", ""))
        sessionwal.prune_sessions(timedelta(0), directory=directory)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert secret.exists() and files.state_of(secret).state is SessionState.CLOSED
    shutil.rmtree(root)


def _cli_ls(directory: Path) -> str:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        cli.main(["ls", "--dir", str(directory)])
    return out.getvalue() + err.getvalue()


# ------------------------------------------------------------------ allocation failure

UNDER_A_LIMIT = """
import resource, sys
from sessionwal import files
path = sys.argv[1]
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/status") as status:
    size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (96 << 20), hard))
print(files.state_of(path).state.value)
"""


def test_an_allocation_the_os_refuses_is_an_error_not_an_abort(tmp_path):
    # A 200 MiB line, under the default 256 MiB limit, in a process allowed
    # 96 MiB more address space: the scanner's buffer cannot grow enough.
    path = tmp_path / "big.jsonl.__partial__"
    path.write_bytes(json.dumps(sessionwal.build_header(make_session("big"))).encode() + b"\n")
    os.truncate(path, 200 << 20)
    with open(path, "ab") as file:
        file.write(b"\n")
    env = {k: v for k, v in os.environ.items() if k != "SESSIONWAL_MAX_LINE_BYTES"}
    done = run_python(UNDER_A_LIMIT, str(path), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unreadable"


def test_a_session_the_user_may_not_see_is_named_as_such_not_missing(probe_user, tmp_path):
    # A 0700 sessions dir of root's: the user's `show` must say why it cannot
    # look (EACCES), not that there is no such session.
    sessions = tmp_path / "private"
    sessions.mkdir(mode=0o700)
    with sessionwal.SessionWriter(make_session("r"), path=sessions / "r.jsonl"):
        pass
    tmp_path.chmod(0o755)
    cli.build_parser()  # its lazy imports, while the interpreter's files are readable

    def show() -> None:
        err = io.StringIO()
        sys.stderr = err
        try:
            code = cli.main(["show", "r", "--dir", str(sessions)])
        finally:
            sys.stderr = sys.__stderr__
        assert code == 2 and "Permission denied" in err.getvalue(), err.getvalue()

    as_user(probe_user, show)
