"""The session-file layer: every rule about a session's files lives here, once.

- **Names.** A session ``<id>`` is ``<dir>/<id>.jsonl`` once closed and
  ``<dir>/<id>.jsonl.__partial__`` while in flight; ``repair`` keeps the
  original bytes of a partial file in ``<partial>.bak`` (then ``.bak.1``,
  ``.bak.2``, ...); a writer's close that finds ``<id>.jsonl`` taken keeps
  the earlier session as ``<id>.jsonl.~N~`` (rust/file.rs, ``keep_earlier``).
  :class:`SessionsDir` names them; :func:`final_of`, :func:`partial_of` and
  :func:`session_id_of` map between them.
- **Finding a session.** :func:`candidates` is the one resolver (an id in a
  directory, or a path), :func:`open_first` opens the first that exists.
- **The lock.** A writer holds ``flock(LOCK_EX)`` on its partial file for
  its whole life. Readers ask :func:`writer_holds_lock`, which never makes a
  writer's open fail (see its doc); tools that change a file (``repair``,
  ``delete_session``) take the lock themselves with :func:`lock_unless_written`.
- **The verdict.** :func:`judge` turns what a reader found in a file
  (:class:`~sessionwal.records.FileSummary`) into one :class:`SessionState`;
  :func:`state_of` scans and judges. ``ls``, ``show``, ``verify``, ``tail``,
  the loader and ``prune`` all use it, so they agree on every file.

``fcntl`` is imported here and nowhere else in the package.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import os
import re
import stat
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sessionwal.errors import InsecureDirectoryWarning, PersistenceError, SessionFormatError
from sessionwal.records import FileSummary, describe_tail
from sessionwal.scan import summarize

__all__ = [
    "BACKUP_SUFFIX",
    "CONTROL_CHARACTERS",
    "FINAL_SUFFIX",
    "MAX_SESSION_ID_BYTES",
    "PARTIAL_SUFFIX",
    "SESSIONWAL_HOME_ENV",
    "WRITER_LOCK_PATIENCE",
    "SessionState",
    "SessionsDir",
    "Verdict",
    "backed_up_name",
    "backup_name",
    "backups_of",
    "candidates",
    "check_directory",
    "closed_problem",
    "earlier_sessions_of",
    "ensure_sessions_dir",
    "final_of",
    "fsync_dir",
    "is_partial",
    "is_session_name",
    "judge",
    "keep_earlier_session",
    "lock_for_writing",
    "lock_unless_written",
    "locked_inodes",
    "make_private_dirs",
    "open_first",
    "open_regular",
    "open_regular_fd",
    "partial_of",
    "resolve_directory_only",
    "same_file",
    "session_file",
    "session_id_of",
    "session_partial_file",
    "sessions_dir",
    "state_of",
    "unlock",
    "validate_session_id",
    "writer_holds_lock",
]

SESSIONWAL_HOME_ENV = "SESSIONWAL_HOME"
FINAL_SUFFIX = ".jsonl"
PARTIAL_SUFFIX = ".__partial__"
BACKUP_SUFFIX = ".bak"
#: ``.bak`` or ``.bak.N`` (N >= 1, no leading zero): the exact backup names.
_BACKUP_TAIL = re.compile(r"\.bak(?:\.[1-9][0-9]*)?")
#: ``.~N~`` (N >= 1, no leading zero): where a close keeps an earlier closed
#: session of the same id (the writer's numbering, rust/file.rs).
_EARLIER_TAIL = re.compile(r"\.~[1-9][0-9]*~")
#: A backup's name: ``<final>.~N~`` (group "final") or ``<partial>.bak[.N]`` (group "partial").
_BACKUP_NAME = re.compile(
    rf"(?P<final>.+{re.escape(FINAL_SUFFIX)}){_EARLIER_TAIL.pattern}"
    rf"|(?P<partial>.+{re.escape(FINAL_SUFFIX + PARTIAL_SUFFIX)}){_BACKUP_TAIL.pattern}"
)


# ------------------------------------------------------------------ names


def sessions_dir() -> Path:
    """The directory holding ``<id>.jsonl`` files, read from the environment on each call:
    ``$SESSIONWAL_HOME/sessions``, else ``~/.sessionwal/sessions``."""
    home = os.environ.get(SESSIONWAL_HOME_ENV)
    base = Path(home) if home else Path.home() / ".sessionwal"
    return base / "sessions"


def ensure_sessions_dir() -> Path:
    """Create the sessions directory (0700: session logs are private) and return it.

    Raises :class:`PersistenceError` when the directory is writable by group
    or others: anyone who can write there could plant the names a writer
    opens (docs/safety.md).
    """
    directory = sessions_dir()
    make_private_dirs(directory)
    check_directory(directory.resolve(), default=True)
    return directory


def make_private_dirs(directory: Path) -> None:
    """``mkdir -p`` where every directory created is 0700 whatever the umask.

    Directories that already exist keep their mode. The same rule as the
    native writer's ``create_private_dirs`` (rust/sys/dir.rs), which creates
    the directories of ``path=`` and of hook-chosen paths.
    """
    missing = []
    current = directory
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # created by someone else meanwhile: theirs, not ours to chmod
        # The umask can only clear bits of 0700: restore any it cleared, on
        # the directory itself (a link swapped in meanwhile is refused).
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)


def resolve_directory_only(path: Path) -> Path:
    """``path`` made absolute with its directory resolved and its name kept as is.

    Symlinks on the way to the directory are followed (the sessions
    directory may live behind one); a link at the file name itself never is:
    the writer opens and renames that name relative to the directory.
    """
    if path.name in ("", ".", ".."):
        raise ValueError(f"session path {str(path)!r} does not name a file")
    return path.absolute().parent.resolve() / path.name


def check_directory(directory: Path, *, default: bool) -> None:
    """Refuse (the default sessions directory) or warn (any other) when
    group or others can write to ``directory``; a missing one is fine (it
    will be created 0700)."""
    try:
        mode = os.stat(directory).st_mode
    except FileNotFoundError:
        return
    if not mode & (stat.S_IWGRP | stat.S_IWOTH):
        return
    problem = (
        f"'{directory}' is writable by group or others (mode {stat.S_IMODE(mode):04o}): "
        "another user could plant links or files under the names a writer uses"
    )
    if default:
        raise PersistenceError(
            f"refusing the sessions directory {problem}; run chmod go-w on it or point "
            f"${SESSIONWAL_HOME_ENV} elsewhere"
        )
    warnings.warn(f"writing a session into {problem}", InsecureDirectoryWarning, stacklevel=4)


#: Characters no session id may hold and the CLI never prints raw: C0 and C1
#: controls, DEL, the bidirectional marks, embeddings, overrides and
#: isolates, and lone surrogates (which no file name can hold).
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
#: The longest name derived from an id: ``repair``'s last backup name.
_LONGEST_SUFFIX = FINAL_SUFFIX + PARTIAL_SUFFIX + BACKUP_SUFFIX + ".999"
#: Longest id, in UTF-8 bytes, whose every derived name fits a 255-byte
#: file name (NAME_MAX of ext4, XFS, Btrfs, tmpfs, APFS).
MAX_SESSION_ID_BYTES = 255 - len(_LONGEST_SUFFIX)


def validate_session_id(session_id: object) -> str:
    """Return ``str(session_id)`` or raise ``ValueError`` naming the rule it breaks.

    A session id becomes a file name, so it must be one non-empty path
    component (no separator, no NUL, not ``.`` or ``..``) that round-trips
    safely: no control, bidirectional-override or lone-surrogate character
    (:data:`CONTROL_CHARACTERS`), and at most :data:`MAX_SESSION_ID_BYTES`
    UTF-8 bytes, so every name derived from it (``.jsonl.__partial__.bak.999``
    the longest) fits the file system's 255-byte limit. The last two rules
    narrow what the seed accepted, deliberately (docs/safety.md).
    """
    text = str(session_id)
    if not text or text in (".", "..") or "/" in text or "\0" in text or os.sep in text:
        raise ValueError(f"invalid session id {text!r}: must be a single file name component")
    if bad := CONTROL_CHARACTERS.search(text):
        raise ValueError(
            f"invalid session id {text!r}: control and bidirectional characters "
            f"are not allowed (found {bad.group()!r} at {bad.start()})"
        )
    size = len(text.encode("utf-8"))
    if size > MAX_SESSION_ID_BYTES:
        raise ValueError(
            f"invalid session id of {size} bytes: at most {MAX_SESSION_ID_BYTES} UTF-8 bytes, "
            f"so that '<id>{_LONGEST_SUFFIX}' fits a 255-byte file name"
        )
    return text


def session_file(session_id: object) -> Path:
    """``<sessions>/<id>.jsonl``, the name of a cleanly closed session (a writer hook)."""
    return SessionsDir.default().final(session_id)


def session_partial_file(session_id: object) -> Path:
    """``<sessions>/<id>.jsonl.__partial__``, the name of a session in flight (a writer hook)."""
    return SessionsDir.default().partial(session_id)


def is_partial(path: Path | str) -> bool:
    """The name of a session in flight (or crashed): ``<id>.jsonl.__partial__``."""
    return Path(path).name.endswith(PARTIAL_SUFFIX)


def is_session_name(name: str) -> bool:
    """``<id>.jsonl`` or ``<id>.jsonl.__partial__``: a file listings look at."""
    return name.endswith((FINAL_SUFFIX, FINAL_SUFFIX + PARTIAL_SUFFIX))


def final_of(path: Path | str) -> Path:
    """The final name of the session whose partial or final file is ``path``."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(PARTIAL_SUFFIX))


def partial_of(path: Path | str) -> Path:
    """The partial name of the session whose final or partial file is ``path``."""
    path = Path(path)
    return path if is_partial(path) else path.with_name(path.name + PARTIAL_SUFFIX)


def session_id_of(path: Path | str) -> str:
    """The id a session file's name gives (``<id>.jsonl[.__partial__]`` -> ``<id>``),
    backups' names included (``<id>.jsonl.~N~``, ``<id>.jsonl.__partial__.bak[.N]``)."""
    name = backed_up_name(path) or Path(path).name
    return name.removesuffix(PARTIAL_SUFFIX).removesuffix(FINAL_SUFFIX)


def backed_up_name(path: Path | str) -> str | None:
    """For a backup, the name of the session file it keeps a copy of: ``<id>.jsonl``
    for ``<id>.jsonl.~N~``, ``<id>.jsonl.__partial__`` for its ``.bak[.N]``; else None."""
    backup = _BACKUP_NAME.fullmatch(Path(path).name)
    return None if backup is None else backup.group("final") or backup.group("partial")


def backups_of(partial: Path) -> list[Path]:
    """The copies ``repair`` kept of ``partial``: exactly ``<partial>.bak`` and
    ``<partial>.bak.N``, nothing else that merely starts with those names."""
    return sorted(_names_with_tail(partial, _BACKUP_TAIL))


def earlier_sessions_of(final: Path) -> list[Path]:
    """The earlier closed sessions of ``final``'s id that closes kept aside:
    exactly ``<final>.~N~``, oldest (lowest N) first."""
    found = _names_with_tail(final, _EARLIER_TAIL)
    return sorted(found, key=lambda path: int(path.name[len(final.name) + 2 : -1]))


def keep_earlier_session(final: Path) -> Path | None:
    """Moves the closed session at ``final`` aside to the next ``<final>.~N~``, as a
    close does (rust/file.rs) before installing a new session of the same id;
    returns where it went, or None when nothing is at ``final``. Nothing is
    replaced: a link to the new name fails if it exists, and ``final`` is
    unlinked only while it still names the file that was linked."""
    for _ in range(100):
        try:
            named = os.stat(final, follow_symlinks=False)
        except FileNotFoundError:
            return None
        earlier = earlier_sessions_of(final)
        n = int(earlier[-1].name[len(final.name) + 2 : -1]) + 1 if earlier else 1
        aside = final.with_name(f"{final.name}.~{n}~")
        try:
            os.link(final, aside, follow_symlinks=False)
        except (FileExistsError, FileNotFoundError):
            continue  # another close took that number, or final went: look again
        if (named.st_dev, named.st_ino) == _identity(final):
            os.unlink(final)
            return aside
        os.unlink(aside)  # final was replaced meanwhile: not the file we linked
    raise PersistenceError(f"could not move '{final}' aside: it keeps changing")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _names_with_tail(path: Path, tail: re.Pattern[str]) -> list[Path]:
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    prefix = path.name
    return [
        path.with_name(name)
        for name in names
        if name.startswith(prefix) and tail.fullmatch(name, len(prefix))
    ]


def backup_name(partial: Path, n: int) -> Path:
    """The ``n``-th backup name of ``partial`` (0: ``.bak``, then ``.bak.1``, ...)."""
    return partial.with_name(partial.name + BACKUP_SUFFIX + (f".{n}" if n else ""))


@dataclass(frozen=True, slots=True)
class SessionsDir:
    """A directory of session files, and the names of one session's files in it."""

    root: Path

    @classmethod
    def default(cls) -> SessionsDir:
        """``$SESSIONWAL_HOME/sessions`` (else ``~/.sessionwal/sessions``), read now."""
        return cls(sessions_dir())

    def final(self, session_id: object) -> Path:
        return self.root / f"{validate_session_id(session_id)}{FINAL_SUFFIX}"

    def partial(self, session_id: object) -> Path:
        return self.root / f"{validate_session_id(session_id)}{FINAL_SUFFIX}{PARTIAL_SUFFIX}"

    def session_paths(self) -> list[Path]:
        """Every session file name in the directory (final and partial), sorted by name;
        none when the directory does not exist."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [self.root / name for name in sorted(names) if is_session_name(name)]


# ------------------------------------------------------------------ finding a session


def candidates(
    session_id: object = None,
    *,
    path: Path | str | None = None,
    directory: Path | str | None = None,
    prefer_partial: bool = False,
) -> list[Path]:
    """The files that may hold a session, in the order to try them.

    By id: ``<dir>/<id>.jsonl`` then its partial file (``prefer_partial``
    swaps them), in ``directory`` (default :func:`sessions_dir`). By path: a
    partial name is itself; a final name is tried, then its partial file (a
    session not closed yet). Exactly one of ``session_id`` and ``path``.
    """
    if (session_id is None) == (path is None):
        raise TypeError("pass either a session id or path=, not both")
    if path is not None:
        path = Path(path)
        return [path] if is_partial(path) else [path, partial_of(path)]
    where = SessionsDir(Path(directory) if directory is not None else sessions_dir())
    found = [where.final(session_id), where.partial(session_id)]
    return found[::-1] if prefer_partial else found


def open_first(paths: list[Path]) -> tuple[Path, IO[bytes]]:
    """Opens the first of ``paths`` that exists, for reading; the caller closes it.

    Tries twice: a writer closing between our two opens renames the partial
    file to the final name we just found missing.
    """
    for _ in range(2):
        for path in paths:
            try:
                return path, open_regular(path)
            except FileNotFoundError:
                continue
    looked = " or ".join(f"'{p}'" for p in paths)
    raise FileNotFoundError(errno.ENOENT, f"no session file: looked for {looked}", str(paths[0]))


#: How a reader opens a session file: never through a link at its name, never
#: waiting on a FIFO (O_NONBLOCK means nothing for the regular file it must be).
#: (getattr: Windows has neither flag, and no FIFOs or such links to refuse.)
READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def open_regular_fd(path: Path | str, flags: int = READ_FLAGS) -> int:
    """``os.open(path, flags)`` that refuses anything but a regular file.

    A link at ``path`` fails with ``ELOOP`` (``O_NOFOLLOW``); a FIFO, socket
    or device raises :class:`PersistenceError` once ``fstat`` has seen it,
    before a byte is read (``O_NONBLOCK`` kept the open from waiting).
    """
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PersistenceError(
                f"'{path}' is not a regular file; refusing to use it as a session log"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: Path | str) -> IO[bytes]:
    """A session file opened for reading by :func:`open_regular_fd`'s rules."""
    return open(open_regular_fd(path), "rb")


def same_file(fd: int, path: Path | str, *, follow_symlinks: bool = False) -> bool:
    """``path`` names (without following a link, unless asked) the file open at ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return False
    ours = os.fstat(fd)
    return (ours.st_dev, ours.st_ino) == (named.st_dev, named.st_ino)


def fsync_dir(directory: Path | str) -> None:
    """Makes the directory's entries (a create, a rename) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ the lock

#: How long a writer's open waits for a lock held by someone else before it
#: refuses. Readers that must probe the lock (see :func:`writer_holds_lock`)
#: hold it for microseconds; a second *writer* holds it for its whole life,
#: so it is still refused, this much later. The native writer uses the same bound.
WRITER_LOCK_PATIENCE = 0.05


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_for_writing(fd: int, patience: float = WRITER_LOCK_PATIENCE) -> bool:
    """Takes the writer's lock on ``fd``; False when another holder kept it ``patience`` s."""
    deadline = time.monotonic() + patience
    delay = 0.0005
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    return True


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


def locked_inodes() -> frozenset[int] | None:
    """Inode numbers of every file with an flock, from ``/proc/locks``; None where
    that file is not there (not Linux) or unreadable.

    Only inode numbers: on overlay and some other file systems the device
    ``stat()`` reports differs from the one ``/proc/locks`` names. A lock on
    another file system's file with the same number reads as held, so the
    error falls on the side of "in flight". One snapshot serves a whole
    listing (see :func:`writer_holds_lock`'s ``listed``).
    """
    try:
        with open("/proc/locks", "rb") as file:
            text = file.read()
    except OSError:
        return None
    held = set()
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 6625 fe:00:5359829 0 EOF" ("->" marks waiters)
        fields = line.split()
        if len(fields) >= 6 and fields[1] == b"FLOCK" and fields[2] != b"->":
            held.add(int(fields[5].rsplit(b":", 1)[1]))
    return frozenset(held)


def writer_holds_lock(target: Path | str | int, *, listed: frozenset[int] | None = None) -> bool:
    """True when a writer holds the lock on the file at ``target`` (a path or an fd).

    Never makes a writer fail: a lock listed in ``/proc/locks`` (Linux; or
    in ``listed``, a snapshot of :func:`locked_inodes` taken earlier) answers
    without touching it. Only a file listed as unlocked (or where there is
    no ``/proc/locks``, or a writer in another PID namespace whose locks it
    hides) is probed with ``flock(LOCK_EX | LOCK_NB)``, released at once; a
    writer opening it during those microseconds waits for it
    (:data:`WRITER_LOCK_PATIENCE`) instead of being refused.
    """
    if isinstance(target, int):
        return _probe(target, listed)
    with lock_unless_written(target, listed=listed) as held:
        return held is False


def _probe(fd: int, listed: frozenset[int] | None) -> bool:
    """True when a writer holds the lock on ``fd``; leaves it unlocked."""
    if listed is None:
        listed = locked_inodes()
    if listed is not None and os.fstat(fd).st_ino in listed:
        return True
    if not _try_lock(fd):
        return True
    unlock(fd)
    return False


@contextlib.contextmanager
def lock_unless_written(
    path: Path | str, *, listed: frozenset[int] | None = None
) -> Iterator[bool | None]:
    """Holds the lock on ``path`` for the ``with`` block when no writer holds it.

    Yields ``True`` while holding it, ``False`` when a writer holds it, and
    ``None`` when the file does not exist. For tools that change a session's
    file (``repair``, ``delete_session``): while they hold it, a writer's
    open waits, then is refused, so keep the block short.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        yield None
        return
    try:
        if _probe(fd, listed):
            yield False
            return
        # _probe released the lock it got: take it again for the block (a
        # writer that slipped in between is seen here).
        if not _try_lock(fd):
            yield False
            return
        yield True
    finally:
        os.close(fd)


# ------------------------------------------------------------------ the verdict


class SessionState(enum.StrEnum):
    """What a session file is. The value is the word APIs and ``--json`` use.

    A ``StrEnum``, so ``str()`` and f-strings give that word (``in_flight``),
    as the plain strings ``SessionInfo.state`` held before it became an enum did.
    """

    #: Final name, a trailer last, and as many chunks as the trailer says.
    CLOSED = "closed"
    #: A partial file a writer holds the lock on.
    IN_FLIGHT = "in_flight"
    #: A partial file nobody holds: its writer died or abandoned it. Its log
    #: ends at the last valid record; anything after is its crash tail.
    CRASHED = "crashed"
    #: A final name holds what no clean close writes (a crash tail, no
    #: trailer, a wrong chunk count), or a line is longer than the maximum.
    CORRUPT = "corrupt"
    #: It could not be read at all.
    UNREADABLE = "unreadable"

    @property
    def label(self) -> str:
        """The word for a human (``in flight``)."""
        return self.value.replace("_", " ")

    @property
    def exit_code(self) -> int:
        """0 closed, 1 in flight or crashed, 2 corrupt or unreadable."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    SessionState.CLOSED: 0,
    SessionState.IN_FLIGHT: 1,
    SessionState.CRASHED: 1,
    SessionState.CORRUPT: 2,
    SessionState.UNREADABLE: 2,
}


def closed_problem(
    trailer: dict[str, Any] | None,
    torn_bytes: int,
    segment_chunk_count: int,
    tail: str | None = None,
    tail_line: int | None = None,
) -> str | None:
    """Why a file under its final name is not a cleanly closed session, if it is not.

    A closed file's valid log (the recovery rule, :func:`sessionwal.records.valid_log`)
    ends with a trailer and is the whole file: a close makes everything durable
    before the rename, so a crash tail under the final name is damage, not a
    crash in progress. The trailer's ``final_chunk_count`` (when present)
    equals the chunks its writer wrote since the last header: a mismatch means
    records were lost or added after the close. Either way the file is
    corrupt, for every command.
    """
    if torn_bytes:
        after = "the trailer" if trailer is not None else "the last valid record"
        return (
            f"{describe_tail(torn_bytes, tail, tail_line)} after {after}, "
            "but a closed session ends with its trailer"
        )
    if trailer is None:
        return "no trailer, but only a closed session has the final name"
    count = trailer.get("final_chunk_count", segment_chunk_count)
    if count != segment_chunk_count:
        return (
            f"the trailer says final_chunk_count={count!r} "
            f"but its writer wrote {_plural(segment_chunk_count, 'chunk record')}"
        )
    return None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One file's state, why, and what was read; ``str()`` is ``verify``'s line."""

    path: Path
    state: SessionState
    detail: str
    #: What the reader found (None when the file is corrupt or unreadable).
    summary: FileSummary | None = None
    #: The error behind a corrupt or unreadable verdict.
    error: Exception | None = None

    @property
    def exit_code(self) -> int:
        return self.state.exit_code

    @property
    def status(self) -> str:
        """``verify``'s word: ``ok`` for a closed session, else the state's label."""
        return "ok" if self.state is SessionState.CLOSED else self.state.label

    def __str__(self) -> str:
        return f"{self.path}: {self.status}: {self.detail}"


def judge(
    summary: FileSummary, *, lock_held: bool | None = None, listed: frozenset[int] | None = None
) -> Verdict:
    """The verdict on a file whose records were read without a format error.

    ``lock_held`` is asked of :func:`writer_holds_lock` (with ``listed``)
    when not given (only partial files need it).
    """
    path = summary.path
    chunks = _plural(summary.chunk_count, "chunk")
    header_id = summary.header.get("id")
    # (No header in the valid log: a crash before the header landed, judged below.)
    if summary.header and header_id != session_id_of(path):
        # A file planted under another session's name must not pass as it.
        error = PersistenceError(
            f"{path}: the header's session id {header_id!r} does not match the file name "
            f"(which names {session_id_of(path)!r})"
        )
        return Verdict(path, SessionState.CORRUPT, str(error), summary, error)
    backed_up = backed_up_name(path)
    repair_backup = backed_up is not None and is_partial(backed_up)
    if is_partial(path) or repair_backup:
        if repair_backup:
            lock_held = False  # a copy: no writer ever opens it
        elif lock_held is None:
            lock_held = writer_holds_lock(path, listed=listed)
        if lock_held:
            return Verdict(
                path, SessionState.IN_FLIGHT, f"{chunks} so far; a writer holds the lock", summary
            )
        if not summary.header:
            detail = "no complete header record"
            if summary.torn_bytes:
                detail += f", then {_tail(summary)}"
            return Verdict(path, SessionState.CRASHED, f"{detail}; nothing to repair", summary)
        if summary.torn_bytes:
            detail = f"{chunks} complete, then {_tail(summary)}"
        elif summary.trailer is not None:
            detail = f"{chunks} and a trailer, but the rename to the final name never happened"
        else:
            detail = f"{chunks} complete, no trailer"
        if repair_backup:
            detail += f"; the original bytes `sessionwal repair` kept of {backed_up}"
        else:
            detail += "; `sessionwal repair` closes it"
        return Verdict(path, SessionState.CRASHED, detail, summary)
    problem = closed_problem(
        summary.trailer,
        summary.torn_bytes,
        summary.segment_chunk_count,
        summary.tail,
        summary.tail_line,
    )
    if problem is not None:
        error = PersistenceError(f"{path}: {problem}")
        return Verdict(path, SessionState.CORRUPT, str(error), summary, error)
    recovered = ", recovered by repair" if summary.recovered else ""
    earlier = (
        f"; an earlier session, kept aside when {backed_up} was closed again" if backed_up else ""
    )
    return Verdict(path, SessionState.CLOSED, f"closed, {chunks}{recovered}{earlier}", summary)


def _tail(summary: FileSummary) -> str:
    return describe_tail(summary.torn_bytes, summary.tail, summary.tail_line)


def state_of(path: Path | str, *, listed: frozenset[int] | None = None) -> Verdict:
    """Applies the recovery rule to ``path`` and judges it. Every line of the valid
    log is checked as JSON natively; only the header and trailer are parsed in
    Python. ``listed``: a :func:`locked_inodes` snapshot shared by a listing."""
    path = Path(path)
    try:
        summary = summarize(path)
    except SessionFormatError as exc:
        return Verdict(path, SessionState.CORRUPT, str(exc), error=exc)
    except (OSError, PersistenceError) as exc:
        # A link (ELOOP) or a FIFO, socket or device (not a regular file) included.
        return Verdict(path, SessionState.UNREADABLE, str(exc), error=exc)
    return judge(summary, listed=listed)
