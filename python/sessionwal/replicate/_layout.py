"""The object layout in the store: key names, and the catalog rebuilt from a listing.

Everything the replicator knows about the store comes from these names (it
keeps no state of its own), so they carry what a restart needs::

    <id>/g<GEN>/live/<START>-<END>-<DIGEST>.jsonl   bytes [START, END) of an open session
    <id>/g<GEN>/closed-<DIGEST>.jsonl               the whole file of a closed session

``GEN`` is 6 digits, ``START``/``END`` 20 digits (zero-padded, so the store's
lexicographic listing is offset order), ``DIGEST`` 16 hex digits: BLAKE2b-64
of the object's last ``BOUNDARY_WINDOW`` bytes, which is how a replicator
checks that a local file still holds what was shipped without downloading it.
An id that is not a plain ``[A-Za-z0-9._-]`` name is written as ``~`` and the
hex of its UTF-8 bytes (object stores treat other characters differently).
See docs/replication.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "BOUNDARY_WINDOW",
    "Catalog",
    "ClosedObject",
    "Generation",
    "LiveSegment",
    "RemoteSession",
    "boundary_digest",
    "closed_key",
    "decode_id",
    "encode_id",
    "live_key",
    "parse_key",
]

#: How many bytes before a shipped boundary its digest covers.
BOUNDARY_WINDOW = 64 * 1024

_PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_LIVE = re.compile(r"(?P<start>\d{20})-(?P<end>\d{20})-(?P<digest>[0-9a-f]{16})\.jsonl")
_CLOSED = re.compile(r"closed-(?P<digest>[0-9a-f]{16})\.jsonl")
_GEN = re.compile(r"g(?P<gen>\d{6})")


def boundary_digest(window: bytes) -> str:
    """The digest a key carries, of the last ``BOUNDARY_WINDOW`` bytes before its end."""
    return hashlib.blake2b(window, digest_size=8).hexdigest()


def encode_id(session_id: str) -> str:
    if _PLAIN_ID.fullmatch(session_id):
        return session_id
    return "~" + session_id.encode("utf-8", "surrogateescape").hex()


def decode_id(component: str) -> str:
    if component.startswith("~"):
        return bytes.fromhex(component[1:]).decode("utf-8", "surrogateescape")
    return component


def live_key(session_id: str, generation: int, start: int, end: int, digest: str) -> str:
    return f"{encode_id(session_id)}/g{generation:06d}/live/{start:020d}-{end:020d}-{digest}.jsonl"


def closed_key(session_id: str, generation: int, digest: str) -> str:
    return f"{encode_id(session_id)}/g{generation:06d}/closed-{digest}.jsonl"


@dataclass(frozen=True, slots=True)
class LiveSegment:
    key: str
    start: int
    end: int
    digest: str


@dataclass(frozen=True, slots=True)
class ClosedObject:
    key: str
    size: int
    digest: str


@dataclass(slots=True)
class Generation:
    """One byte stream of a session: live segments from offset 0, then perhaps its closed object."""

    number: int
    segments: list[LiveSegment] = field(default_factory=list)
    closed: ClosedObject | None = None
    last_modified: datetime | None = None

    def contiguous(self) -> list[LiveSegment]:
        """The segments that chain from offset 0 (a restore's bytes); later ones are strays."""
        run: list[LiveSegment] = []
        end = 0
        for segment in sorted(self.segments, key=lambda s: (s.start, s.end)):
            if segment.start == end and segment.end > end:
                run.append(segment)
                end = segment.end
        return run

    @property
    def live_end(self) -> int:
        run = self.contiguous()
        return run[-1].end if run else 0

    @property
    def shipped_bytes(self) -> int:
        return self.closed.size if self.closed is not None else self.live_end


@dataclass(slots=True)
class RemoteSession:
    """What the store holds for one session id, by generation."""

    session_id: str
    generations: dict[int, Generation] = field(default_factory=dict)

    def generation(self, number: int) -> Generation:
        return self.generations.setdefault(number, Generation(number))

    @property
    def newest(self) -> Generation | None:
        return self.generations[max(self.generations)] if self.generations else None

    def next_number(self) -> int:
        return max(self.generations, default=0) + 1

    def newest_closed(self) -> Generation | None:
        closed = [g for g in self.generations.values() if g.closed is not None]
        return max(closed, key=lambda g: g.number) if closed else None

    def open_generation(self) -> Generation | None:
        """The newest generation when it is not closed: where an open file's bytes go on."""
        newest = self.newest
        return newest if newest is not None and newest.closed is None else None


@dataclass(frozen=True, slots=True)
class ParsedKey:
    session_id: str
    generation: int
    #: Either a live segment or a closed object.
    segment: LiveSegment | None
    closed: ClosedObject | None


def parse_key(key: str, size: int) -> ParsedKey | None:
    """The meaning of one listed key, or None for a key this layout did not write."""
    parts = key.split("/")
    if len(parts) == 4 and parts[2] == "live":
        match = _LIVE.fullmatch(parts[3])
        segment = (
            LiveSegment(key, int(match["start"]), int(match["end"]), match["digest"])
            if match
            else None
        )
        closed = None
    elif len(parts) == 3:
        match = _CLOSED.fullmatch(parts[2])
        closed = ClosedObject(key, size, match["digest"]) if match else None
        segment = None
    else:
        return None
    gen = _GEN.fullmatch(parts[1])
    if gen is None or (segment is None and closed is None):
        return None
    try:
        session_id = decode_id(parts[0])
    except ValueError:
        return None
    return ParsedKey(session_id, int(gen["gen"]), segment, closed)


class Catalog(dict[str, RemoteSession]):
    """Every session in the store by id, built from one listing."""

    @classmethod
    def from_listing(cls, objects: list[dict[str, Any]]) -> Catalog:
        catalog = cls()
        for meta in objects:
            parsed = parse_key(meta["path"], meta["size"])
            if parsed is None:
                continue
            generation = catalog.session(parsed.session_id).generation(parsed.generation)
            if parsed.segment is not None:
                generation.segments.append(parsed.segment)
            else:
                generation.closed = parsed.closed
            modified = meta.get("last_modified")
            if modified is not None and (
                generation.last_modified is None or modified > generation.last_modified
            ):
                generation.last_modified = modified
        return catalog

    def session(self, session_id: str) -> RemoteSession:
        found = self.get(session_id)
        if found is None:
            found = self[session_id] = RemoteSession(session_id)
        return found
