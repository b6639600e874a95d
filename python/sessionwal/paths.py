"""Where session files live: ``$SESSIONWAL_HOME/sessions`` or ``~/.sessionwal/sessions``."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

from sessionwal.errors import InsecureDirectoryWarning, PersistenceError

__all__ = [
    "PARTIAL_SUFFIX",
    "SESSIONWAL_HOME_ENV",
    "check_directory",
    "ensure_sessions_dir",
    "make_private_dirs",
    "resolve_directory_only",
    "session_file",
    "session_partial_file",
    "sessions_dir",
    "validate_session_id",
]

SESSIONWAL_HOME_ENV = "SESSIONWAL_HOME"
PARTIAL_SUFFIX = ".__partial__"


def sessions_dir() -> Path:
    """The directory holding ``<id>.jsonl`` files, read from the environment on each call."""
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


def validate_session_id(session_id: object) -> str:
    """Return ``str(session_id)`` or raise ``ValueError`` if it would escape the directory.

    A session id becomes a file name, so it must be one non-empty path
    component: no separator, no NUL, not ``.`` or ``..``.
    """
    text = str(session_id)
    if not text or text in (".", "..") or "/" in text or "\0" in text or os.sep in text:
        raise ValueError(f"invalid session id {text!r}: must be a single file name component")
    return text


def session_file(session_id: object) -> Path:
    """``<sessions>/<id>.jsonl``, the name of a cleanly closed session."""
    return sessions_dir() / f"{validate_session_id(session_id)}.jsonl"


def session_partial_file(session_id: object) -> Path:
    """``<sessions>/<id>.jsonl.__partial__``, the name of a session in flight."""
    return sessions_dir() / f"{validate_session_id(session_id)}.jsonl{PARTIAL_SUFFIX}"
