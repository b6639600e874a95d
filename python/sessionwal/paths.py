"""Where session files live: ``$SESSIONWAL_HOME/sessions`` or ``~/.sessionwal/sessions``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PARTIAL_SUFFIX",
    "SESSIONWAL_HOME_ENV",
    "ensure_sessions_dir",
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
    """Create the sessions directory (0700: session logs are private) and return it."""
    directory = sessions_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


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
