"""The session record model: what a writer persists."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["ChunkKind", "ChunkRow", "Session", "Usage"]


class ChunkKind(str, enum.Enum):
    """Who produced a chunk. A ``str`` enum, so it serializes as its value."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL_RESULT = "tool_result"


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One chunk of a session: a kind and a JSON-serializable payload dict."""

    kind: ChunkKind | str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Cumulative token usage, written into the trailer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None

    def as_record(self) -> dict[str, int]:
        total = self.total_tokens
        if total is None:
            total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


def _new_session_id() -> str:
    return str(uuid.uuid4())


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Session:
    """The session a writer persists; only ``id`` is required by the writers.

    Writers read every other header field with ``getattr(session, name,
    default)``, so any object with an ``id`` works (duck typing).
    """

    id: str = field(default_factory=_new_session_id)
    created_at: datetime = field(default_factory=_utcnow)
    parent_session_ids: list[str] = field(default_factory=list)
    lineage_operator: str | None = None
    lineage_kind: str | None = None
    lineage_extras: dict[str, Any] = field(default_factory=dict)
    sandbox_backend: str | None = None
    sandbox_spec: dict[str, Any] | None = None
    usage: Usage | None = None
