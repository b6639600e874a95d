"""Exceptions raised by sessionwal."""

from __future__ import annotations

__all__ = ["InsecureDirectoryWarning", "PersistenceError"]


class PersistenceError(RuntimeError):
    """A session file cannot be written or read as the WAL contract requires.

    Subclasses :class:`RuntimeError` so code written against the original
    writer, which raised ``RuntimeError`` from its lock, keeps catching it.
    """


class InsecureDirectoryWarning(UserWarning):
    """A session file is written into a directory other users can write to.

    Raised as a warning for an explicit ``path=`` (or a hook's path) in a
    group- or world-writable directory, such as a sticky ``/tmp``: another
    user there can plant names the writer must then refuse or keep aside.
    The default sessions directory in that state is refused outright with
    :class:`PersistenceError`. See docs/safety.md.
    """
