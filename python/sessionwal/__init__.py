"""sessionwal: a Rust-accelerated append-only JSONL write-ahead log for agent sessions."""

from __future__ import annotations

from sessionwal.errors import InsecureDirectoryWarning, PersistenceError, SessionFormatError
from sessionwal.files import (
    SESSIONWAL_HOME_ENV,
    SessionState,
    ensure_sessions_dir,
    session_file,
    session_partial_file,
    sessions_dir,
)
from sessionwal.loader import (
    PersistedSession,
    SessionInfo,
    delete_session,
    iter_records,
    list_sessions,
    load_session,
    prune_sessions,
)
from sessionwal.model import ChunkKind, ChunkRow, Session, Usage
from sessionwal.records import build_chunk_record, build_header, build_trailer
from sessionwal.writer import SessionWriter

__all__ = [
    "SESSIONWAL_HOME_ENV",
    "ChunkKind",
    "ChunkRow",
    "InsecureDirectoryWarning",
    "PersistedSession",
    "PersistenceError",
    "Session",
    "SessionFormatError",
    "SessionInfo",
    "SessionState",
    "SessionWriter",
    "Usage",
    "build_chunk_record",
    "build_header",
    "build_trailer",
    "delete_session",
    "ensure_sessions_dir",
    "iter_records",
    "list_sessions",
    "load_session",
    "prune_sessions",
    "session_file",
    "session_partial_file",
    "sessions_dir",
]
