"""Speed without the same bytes is meaningless: every benchmark checks its output.

A writer's file holds two timestamps. ``created_at`` comes from the
:class:`~sessionwal.model.Session`, so a benchmark fixes it there;
``closed_at`` comes from the trailer hook, so :func:`with_fixed_clock`
derives a writer class whose ``build_trailer`` pins it. That is the drop-in
hook any runtime may use (no patching of module globals, nothing from
``unittest.mock``), and it leaves the chunk path, which is what is compared,
exactly as it runs in production.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionwal.bench.timing import FIXED_CREATED, batches, pure_writer
from sessionwal.model import ChunkRow, Session, Usage

__all__ = [
    "FIXED_CLOSED",
    "OutputMismatch",
    "assert_identical",
    "check_identity",
    "identity_session",
    "with_fixed_clock",
]

FIXED_CLOSED = datetime(2024, 6, 10, 13, 30, 0, 654321, tzinfo=UTC)
"""``closed_at`` of every trailer a :func:`with_fixed_clock` writer writes."""


class OutputMismatch(AssertionError):
    """Two writers wrote different bytes for the same session: the speed is void."""


def with_fixed_clock(cls: type) -> type:
    """A subclass of writer ``cls`` whose trailers say ``closed_at = FIXED_CLOSED``.

    Works for every writer with the ``build_trailer`` hook (pure, native,
    asyncio); the trailer is otherwise ``cls``'s own, key order included.
    """
    base_trailer = cls.build_trailer  # type: ignore[attr-defined]  # the writers' hook

    def build_trailer(session: Any, *, final_chunk_count: int) -> dict[str, Any]:
        trailer = dict(base_trailer(session, final_chunk_count=final_chunk_count))
        trailer["closed_at"] = FIXED_CLOSED.isoformat()
        return trailer

    return type(f"FixedClock{cls.__name__}", (cls,), {"build_trailer": staticmethod(build_trailer)})


def identity_session(workload: str) -> Session:
    """A session with every header field set, so the header's encoding is compared too."""
    return Session(
        id=f"identity-{workload}",
        created_at=FIXED_CREATED,
        parent_session_ids=["parent-0"],
        lineage_operator="fork",
        lineage_kind="branch",
        lineage_extras={"depth": 2, "note": "ünïcode ✅"},
        sandbox_backend="docker",
        sandbox_spec={"image": "python:3.11", "cpus": 2.0},
        usage=Usage(prompt_tokens=1234, completion_tokens=567),
    )


def assert_identical(workload: str, outputs: Mapping[str, bytes], reference: str = "pure") -> None:
    """Raise :class:`OutputMismatch` naming the first differing line and byte, if any."""
    expected = outputs[reference].splitlines(keepends=True)
    for name, data in outputs.items():
        if data == outputs[reference]:
            continue
        got = data.splitlines(keepends=True)
        line = next(
            (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
            min(len(expected), len(got)),
        )
        want = expected[line] if line < len(expected) else b"<EOF>"
        have = got[line] if line < len(got) else b"<EOF>"
        col = next(
            (i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b),
            min(len(want), len(have)),
        )
        lo = max(0, col - 60)
        raise OutputMismatch(
            f"{workload}: {name} differs from {reference} at line {line + 1}, byte "
            f"{col}:\n  {reference}:   {want[lo : col + 60]!r}\n"
            f"  {name}: {have[lo : col + 60]!r}"
        )


def check_identity(
    workload: str, rows: list[ChunkRow], native: type | None, workdir: Path, batch: int = 64
) -> str:
    """Write ``rows`` with pure, native and native ``write_chunks``; raise unless identical."""
    if native is None:
        return "skipped (native writer not importable)"
    variants: dict[str, tuple[type, int | None]] = {
        "pure": (pure_writer(), None),
        "native": (native, None),
    }
    if hasattr(native, "write_chunks"):
        variants["native_batch64"] = (native, batch)
    outputs: dict[str, bytes] = {}
    items = list(enumerate(rows))
    for name, (cls, size) in variants.items():
        path = workdir / name / f"identity-{workload}.jsonl"
        path.parent.mkdir(exist_ok=True)
        writer = with_fixed_clock(cls)(
            identity_session(workload), sandbox_handle_id="sbx-42", path=path
        )
        if size is not None:
            for group in batches(items, size):
                writer.write_chunks(group)
        else:
            for index, row in items:
                writer.write_chunk(index, row)
        writer.close()
        outputs[name] = path.read_bytes()
        path.unlink()
    assert_identical(workload, outputs)
    return "identical"
