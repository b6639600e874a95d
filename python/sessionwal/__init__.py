"""sessionwal: a Rust-accelerated append-only JSONL write-ahead log for agent sessions."""

from __future__ import annotations

from sessionwal.errors import PersistenceError
from sessionwal.model import ChunkKind, ChunkRow, Session, Usage
from sessionwal.paths import (
    SESSIONWAL_HOME_ENV,
    ensure_sessions_dir,
    session_file,
    session_partial_file,
    sessions_dir,
)
from sessionwal.records import build_chunk_record, build_header, build_trailer
from sessionwal.writer import SessionWriter

__all__ = [
    "SESSIONWAL_HOME_ENV",
    "ChunkKind",
    "ChunkRow",
    "PersistenceError",
    "Session",
    "SessionWriter",
    "Usage",
    "build_chunk_record",
    "build_header",
    "build_trailer",
    "ensure_sessions_dir",
    "session_file",
    "session_partial_file",
    "sessions_dir",
]
