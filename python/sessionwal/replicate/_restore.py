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

from sessionwal import files
from sessionwal.replicate._layout import (
    BOUNDARY_WINDOW,
    Catalog,
    Generation,
    RemoteSession,
    boundary_digest,
    encode_id,
)
from sessionwal.replicate._store import ObjectStoreClient, StoreError

__all__ = ["RemoteSessionInfo", "RestoreError", "Restored", "list_remote", "restore"]


_ATTEMPTS = 3


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


def _pieces(generation: Generation) -> list[tuple[str, int, str]]:
    """(key, expected size, digest) of the objects that make up a generation's bytes."""
    if generation.closed is not None:
        closed = generation.closed
        return [(closed.key, closed.size, closed.digest)]
    return [(s.key, s.end - s.start, s.digest) for s in generation.contiguous()]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _download(client: ObjectStoreClient, generation: Generation, target: Path) -> Path:
    """Writes the generation's bytes to a new temporary file (0600) beside ``target``."""
    if os.path.lexists(target):
        raise RestoreError(f"'{target}' exists; not overwritten")
    temporary = target.with_name(f".{target.name}.restoring")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(temporary, flags, 0o600)
    except FileExistsError:
        os.unlink(temporary)  # left by a restore that died: ours by its name
        fd = os.open(temporary, flags, 0o600)
    try:
        for key, size, digest in _pieces(generation):
            tail = b""
            got = 0
            for piece in client.get(key):
                _write_all(fd, piece)
                got += len(piece)
                tail = (tail + piece)[-BOUNDARY_WINDOW:]
            if got != size or boundary_digest(tail) != digest:
                raise RestoreError(f"object {key} does not hold what its name says")
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    finally:
        os.close(fd)
    return temporary


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
    directory = Path(directory) if directory is not None else files.sessions_dir()
    catalog = _catalog(client)
    wanted = sorted(catalog) if session_ids is None else list(session_ids)
    files.make_private_dirs(directory)
    files.check_directory(directory.resolve(), default=directory == files.sessions_dir())
    restored: list[Restored] = []
    problems: list[str] = []
    for session_id in wanted:
        try:
            for attempt in range(_ATTEMPTS):
                try:
                    restored += _restore_one(client, catalog, session_id, directory)
                    break
                except FileNotFoundError:
                    # A replicator consolidated (or replaced) the objects we listed
                    # while we read them: list this session again and start over.
                    if attempt == _ATTEMPTS - 1:
                        raise
                    prefix = encode_id(session_id) + "/"
                    fresh = Catalog.from_listing(client.list(prefix))
                    catalog[session_id] = fresh.session(session_id)
        except (RestoreError, StoreError, OSError, ValueError) as exc:
            problems.append(f"{session_id}: {exc}")
    if problems:
        raise RestoreError("; ".join(problems))
    return restored


def _restore_one(
    client: ObjectStoreClient, catalog: Catalog, session_id: str, directory: Path
) -> list[Restored]:
    """Downloads a session's files, then gives them their names (both or neither)."""
    where = files.SessionsDir(directory)
    remote = catalog.get(session_id)
    newest = remote.newest if remote is not None else None
    if remote is None or newest is None:
        raise RestoreError("not in the store")
    wanted: list[tuple[Generation, Path]] = []
    closed = remote.newest_closed()
    if closed is not None:
        wanted.append((closed, where.final(session_id)))
    if newest.closed is None and newest.live_end > 0:
        wanted.append((newest, where.partial(session_id)))
    if not wanted:
        raise RestoreError("nothing shipped yet")
    downloaded: list[Path] = []
    try:
        for generation, target in wanted:
            downloaded.append(_download(client, generation, target))
    except BaseException:
        for temporary in downloaded:
            os.unlink(temporary)
        raise
    out = []
    for (generation, target), temporary in zip(wanted, downloaded, strict=True):
        try:
            os.link(temporary, target)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            raise RestoreError(f"'{target}' exists; not overwritten") from None
        finally:
            os.unlink(temporary)
        out.append(Restored(session_id, target, target.stat().st_size, generation.number))
    files.fsync_dir(directory)
    return out
