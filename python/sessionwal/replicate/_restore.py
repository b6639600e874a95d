"""Reading the store back: ``sessionwal ls URL`` and ``sessionwal restore URL``.

A session's newest closed generation restores to ``<id>.jsonl``; when its
newest generation is still open (in flight, or its host died), that one
restores to ``<id>.jsonl.__partial__``, from its live segments that chain
from offset 0. Both come back byte for byte as the host had them, up to the
last complete line that was shipped. Each object's boundary digest is checked
on the way down.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sessionwal import paths
from sessionwal.replicate._layout import (
    BOUNDARY_WINDOW,
    Catalog,
    Generation,
    RemoteSession,
    boundary_digest,
)
from sessionwal.replicate._store import ObjectStoreClient, StoreError

__all__ = ["RemoteSessionInfo", "RestoreError", "Restored", "list_remote", "restore"]


class RestoreError(Exception):
    """A session could not be restored (missing, damaged in the store, or in the way)."""


@dataclass(frozen=True, slots=True)
class RemoteSessionInfo:
    """One line of ``sessionwal ls URL``."""

    session_id: str
    #: "closed" when the newest generation is closed, else "open" (in flight or crashed).
    state: str
    generation: int
    generations: int
    #: Bytes restorable for the newest generation.
    size: int
    #: Objects holding them (1 when closed).
    objects: int
    last_shipped: datetime | None


@dataclass(frozen=True, slots=True)
class Restored:
    session_id: str
    path: Path
    size: int
    generation: int


def _catalog(client: ObjectStoreClient) -> Catalog:
    return Catalog.from_listing(client.list())


def _info(remote: RemoteSession) -> RemoteSessionInfo | None:
    newest = remote.newest
    if newest is None:
        return None
    closed = newest.closed is not None
    return RemoteSessionInfo(
        session_id=remote.session_id,
        state="closed" if closed else "open",
        generation=newest.number,
        generations=len(remote.generations),
        size=newest.shipped_bytes,
        objects=1 if closed else len(newest.contiguous()),
        last_shipped=newest.last_modified,
    )


def list_remote(url: str | ObjectStoreClient) -> list[RemoteSessionInfo]:
    """The sessions in the store, by id."""
    client = url if isinstance(url, ObjectStoreClient) else ObjectStoreClient(url)
    infos = [_info(remote) for remote in _catalog(client).values()]
    return sorted((info for info in infos if info is not None), key=lambda i: i.session_id)


def _pieces(client: ObjectStoreClient, generation: Generation) -> list[tuple[str, int, str]]:
    """(key, expected size, digest) of the objects that make up a generation's bytes."""
    if generation.closed is not None:
        closed = generation.closed
        return [(closed.key, closed.size, closed.digest)]
    return [(s.key, s.end - s.start, s.digest) for s in generation.contiguous()]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_generation(client: ObjectStoreClient, generation: Generation, target: Path) -> int:
    """Writes the generation's bytes to ``target`` (new file, 0600) via a temporary name."""
    if os.path.lexists(target):
        raise RestoreError(f"'{target}' exists; not overwritten")
    temporary = target.with_name(f".{target.name}.restoring")
    fd = os.open(
        temporary,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
        0o600,
    )
    written = 0
    try:
        for key, size, digest in _pieces(client, generation):
            tail = b""
            got = 0
            for piece in client.get(key):
                _write_all(fd, piece)
                got += len(piece)
                tail = (tail + piece)[-BOUNDARY_WINDOW:]
            if got != size or boundary_digest(tail) != digest:
                raise RestoreError(f"object {key} does not hold what its name says")
            written += got
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    os.close(fd)
    os.rename(temporary, target)
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return written


def restore(
    url: str | ObjectStoreClient,
    session_ids: list[str] | None = None,
    directory: Path | str | None = None,
) -> list[Restored]:
    """Restores ``session_ids`` (all sessions when None) into ``directory``.

    Raises :class:`RestoreError` naming every session that could not be
    restored, after restoring all the others.
    """
    client = url if isinstance(url, ObjectStoreClient) else ObjectStoreClient(url)
    directory = Path(directory) if directory is not None else paths.sessions_dir()
    catalog = _catalog(client)
    wanted = sorted(catalog) if session_ids is None else list(session_ids)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    restored: list[Restored] = []
    problems: list[str] = []
    for session_id in wanted:
        try:
            restored += _restore_one(client, catalog, session_id, directory)
        except (RestoreError, StoreError, OSError, ValueError) as exc:
            problems.append(f"{session_id}: {exc}")
    if problems:
        raise RestoreError("; ".join(problems))
    return restored


def _restore_one(
    client: ObjectStoreClient, catalog: Catalog, session_id: str, directory: Path
) -> list[Restored]:
    paths.validate_session_id(session_id)
    remote = catalog.get(session_id)
    newest = remote.newest if remote is not None else None
    if remote is None or newest is None:
        raise RestoreError("not in the store")
    out: list[Restored] = []
    closed = remote.newest_closed()
    if closed is not None:
        target = directory / f"{session_id}.jsonl"
        size = _write_generation(client, closed, target)
        out.append(Restored(session_id, target, size, closed.number))
    if newest.closed is None and newest.live_end > 0:
        target = directory / f"{session_id}.jsonl{paths.PARTIAL_SUFFIX}"
        size = _write_generation(client, newest, target)
        out.append(Restored(session_id, target, size, newest.number))
    if not out:
        raise RestoreError("nothing shipped yet")
    return out
