"""Record builders: the dicts a writer turns into JSONL lines.

These are the drop-in hooks of DESIGN §4: a runtime with its own record
shapes subclasses the writer and points ``build_header`` /
``build_trailer`` / ``build_chunk_record`` at its own functions.

``now_utc`` is looked up at call time, so tests (and runtimes replaying a
session) can pin the trailer's ``closed_at`` by patching it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "build_chunk_record",
    "build_header",
    "build_trailer",
    "chunk_kind_value",
    "now_utc",
    "str_enum_is_its_value",
]

SCHEMA_VERSION = 1


def now_utc() -> datetime:
    """The clock behind ``created_at`` defaults and the trailer's ``closed_at``."""
    return datetime.now(UTC)


def chunk_kind_value(kind: Any) -> Any:
    """``kind.value`` for an Enum, the kind itself otherwise."""
    return kind.value if isinstance(kind, enum.Enum) else kind


def str_enum_is_its_value(kind_type: type) -> bool:
    """True when every member of a ``str`` Enum type *is* its value as a string.

    For such types ``chunk_kind_value(member)`` equals the member's own text,
    so the native writer may write members without calling ``.value``.
    """
    return (
        issubclass(kind_type, str)
        and issubclass(kind_type, enum.Enum)
        and all(
            type(member.value) is str and str.__eq__(member, member.value)
            for member in kind_type.__members__.values()
        )
    )


def _lineage_pairs(extras: Any) -> list[list[Any]]:
    if not extras:
        return []
    items = extras.items() if hasattr(extras, "items") else extras
    return [[key, value] for key, value in items]


def build_header(session: Any, *, sandbox_handle_id: str | None = None) -> dict[str, Any]:
    """The first line of every session file, written when the writer opens."""
    created_at = getattr(session, "created_at", None)
    if created_at is None:
        created_at = now_utc()
    return {
        "record_type": "header",
        "schema_version": SCHEMA_VERSION,
        "id": str(session.id),
        "created_at": created_at.isoformat(),
        "parent_session_ids": [str(p) for p in getattr(session, "parent_session_ids", None) or ()],
        "lineage_operator": getattr(session, "lineage_operator", None),
        "lineage_kind": getattr(session, "lineage_kind", None),
        "lineage_extras": _lineage_pairs(getattr(session, "lineage_extras", None)),
        "sandbox_backend": getattr(session, "sandbox_backend", None),
        "sandbox_spec": getattr(session, "sandbox_spec", None),
        "sandbox_handle_id": sandbox_handle_id,
    }


def build_chunk_record(index: int, row: Any) -> dict[str, Any]:
    """One ``record_type=chunk`` line per ``write_chunk``."""
    return {
        "record_type": "chunk",
        "index": index,
        "kind": chunk_kind_value(row.kind),
        "payload": row.payload,
    }


def build_trailer(session: Any, *, final_chunk_count: int) -> dict[str, Any]:
    """The last line, written by ``close``; its presence means the session closed cleanly."""
    usage = getattr(session, "usage", None)
    if usage is not None and hasattr(usage, "as_record"):
        usage = usage.as_record()
    return {
        "record_type": "trailer",
        "closed_at": now_utc().isoformat(),
        "final_chunk_count": final_chunk_count,
        "cumulative_usage": usage,
    }
