"""Every exception sessionwal raises, in one place."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InsecureDirectoryWarning", "PersistenceError", "RepairRefused", "SessionFormatError"]


class PersistenceError(RuntimeError):
    """A session file cannot be written or read as the WAL contract requires.

    Subclasses :class:`RuntimeError` so code written against the original
    writer, which raised ``RuntimeError`` from its lock, keeps catching it.
    """


class SessionFormatError(PersistenceError):
    """A session file breaks the format; ``str()`` starts with ``path:line[:column]:``.

    ``path``, ``line`` (1-based) and ``column`` (1-based, in characters, or
    ``None``) say where; ``reason`` says what, without the location.
    """

    def __init__(self, path: Path | str, line: int, reason: str, column: int | None = None):
        self.path = Path(path)
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{path}:{line}" if column is None else f"{path}:{line}:{column}"
        super().__init__(f"{where}: {reason}")


class RepairRefused(PersistenceError):
    """``repair`` did not touch the file; ``in_flight`` says a writer holds it."""

    def __init__(self, message: str, *, in_flight: bool = False) -> None:
        super().__init__(message)
        self.in_flight = in_flight


class InsecureDirectoryWarning(UserWarning):
    """A session file is written into a directory other users can write to.

    Raised as a warning for an explicit ``path=`` (or a hook's path) in a
    group- or world-writable directory, such as a sticky ``/tmp``: another
    user there can plant names the writer must then refuse or keep aside.
    The default sessions directory in that state is refused outright with
    :class:`PersistenceError`. See docs/safety.md.
    """
