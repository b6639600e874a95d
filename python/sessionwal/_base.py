"""What the pure and the native writer share: hooks, path resolution, context manager."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sessionwal import files, records
from sessionwal.errors import PersistenceError

__all__ = ["SYNC_MODES", "WriterBase"]

SYNC_MODES = ("never", "close", "interval", "always")


class WriterBase:
    """The drop-in hooks (README, "Drop-in") and the seed's surface around them.

    Subclasses override the hooks as class attributes, e.g.
    ``build_header = staticmethod(my_build_header)``.
    """

    __slots__ = ()

    build_header = staticmethod(records.build_header)
    build_trailer = staticmethod(records.build_trailer)
    build_chunk_record = staticmethod(records.build_chunk_record)
    session_file = staticmethod(files.session_file)
    session_partial_file = staticmethod(files.session_partial_file)
    #: The exception class a refused open raises (another writer holds the
    #: session, or its path is refused). A runtime whose code catches its own
    #: ``PersistenceError`` points this at it; the message stays ours and the
    #: original error is its ``__cause__``.
    lock_error: type[Exception] = PersistenceError

    # Set by the concrete writer's constructor (via _resolve_paths).
    _final_path: Path
    _partial_path: Path

    @property
    def path(self) -> Path:
        """Absolute path of the file once closed (the final name)."""
        return self._final_path

    @property
    def partial_path(self) -> Path:
        """Absolute path of the in-flight ``.__partial__`` file."""
        return self._partial_path

    def _resolve_paths(self, session: Any, path: Path | str | None) -> tuple[Path, Path]:
        """(final, partial) as the seed computes them, absolute, directories resolved.

        Only the directories are resolved: a symlink planted at either file
        name is never followed (the writer opens and renames the names
        relative to the directory). The default sessions directory is
        created 0700 and refused when others can write to it; any other
        directory they can write to draws an ``InsecureDirectoryWarning``.
        """
        if path is not None:
            final_path = files.resolve_directory_only(Path(path))
            partial_path = files.partial_of(final_path)
        else:
            final_path = files.resolve_directory_only(Path(self.session_file(session.id)))
            partial_path = files.resolve_directory_only(Path(self.session_partial_file(session.id)))
        # Only the default-named paths can be the default directory (a path=
        # there is the caller's choice, and only warned about).
        default_dir = files.sessions_dir().absolute().resolve() if path is None else None
        for directory in {final_path.parent, partial_path.parent}:
            if directory == default_dir:
                files.ensure_sessions_dir()
            else:
                files.check_directory(directory, default=False)
        return final_path, partial_path

    def _refused(self, error: PersistenceError) -> Exception:
        """``error`` as the runtime's :attr:`lock_error` class (itself by default)."""
        if isinstance(error, self.lock_error):
            return error
        refused = self.lock_error(str(error))
        refused.__cause__ = error
        return refused

    def _uses_default_chunk_builder(self) -> bool:
        return type(self).build_chunk_record is WriterBase.build_chunk_record

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close()/abandon() come from the concrete writer (the native one's
        # abandon is a method of its Rust base class, after this one in the MRO).
        if exc_type is None:
            self.close()  # type: ignore[attr-defined]
        else:
            self.abandon()  # type: ignore[attr-defined]


def check_sync_mode(sync: str, sync_interval: float) -> None:
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {', '.join(map(repr, SYNC_MODES))}, not {sync!r}")
    if not sync_interval > 0:
        raise ValueError(
            f"sync_interval must be a positive number of seconds, not {sync_interval!r}"
        )
