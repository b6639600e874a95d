"""Exceptions raised by sessionwal."""

from __future__ import annotations

__all__ = ["PersistenceError"]


class PersistenceError(RuntimeError):
    """A session file cannot be written or read as the WAL contract requires.

    Subclasses :class:`RuntimeError` so code written against the original
    writer, which raised ``RuntimeError`` from its lock, keeps catching it.
    """
