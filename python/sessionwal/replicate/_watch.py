"""Which session files changed: inotify on Linux, else "all of them, every interval".

inotify is reached through ctypes (two libc calls; reading events is a plain
``os.read``), so no dependency is added for it. It only narrows which files a
pass looks at and lets an idle replicator sleep without waking up; the pass
itself never trusts it alone: a full rescan runs every ``rescan`` seconds and
after an event-queue overflow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import sys
import time

__all__ = ["Watcher"]

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
)
_EVENT = struct.Struct("iIII")


def _inotify_fd(directory: str) -> int | None:
    """An inotify descriptor watching ``directory``, or None where inotify is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        init = libc.inotify_init1
        add_watch = libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    init.restype = ctypes.c_int
    fd: int = init(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        return None
    if add_watch(fd, os.fsencode(directory), _MASK) < 0:
        os.close(fd)
        return None
    return fd


class Watcher:
    """Waits for changes in one directory; reports the names that changed.

    :meth:`wait` returns a set of file names, or None for "look at every
    file" (polling, overflow, or a full rescan being due). :meth:`wake`
    (from any thread or a signal handler) ends a wait early.
    """

    def __init__(self, directory: str, *, use_inotify: bool = True, rescan: float = 30.0) -> None:
        self._directory = directory
        self._rescan = rescan
        self._inotify = _inotify_fd(directory) if use_inotify else None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pending: set[str] = set()
        self._overflow = True  # the first pass looks at everything
        self._next_rescan = time.monotonic() + rescan

    @property
    def uses_inotify(self) -> bool:
        return self._inotify is not None

    def close(self) -> None:
        for fd in (self._inotify, self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._inotify = None

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or closed

    def mark_all(self) -> None:
        """The next :meth:`wait` reports None (everything), e.g. after a failed pass."""
        self._overflow = True

    def wait(self, not_before: float) -> set[str] | None:
        """Sleeps until ``not_before`` (monotonic) and until something changed;
        returns at once (with what is known) when woken."""
        while True:
            now = time.monotonic()
            if self._inotify is None:
                # Polling: every interval, everything.
                if now >= not_before or self._sleep(not_before - now):
                    return None
                continue
            if not self._drain():
                continue  # the watch is gone: poll
            if now >= self._next_rescan:
                self._overflow = True
            changed = bool(self._pending) or self._overflow
            if changed and now >= not_before:
                return self._take()
            # Something changed: wait out the interval. Nothing did: sleep until
            # an event (or the next full rescan) comes.
            delay = not_before - now if changed else self._next_rescan - now
            if self._sleep(max(delay, 0.0), watch_inotify=not changed):
                return self._take()

    def _take(self) -> set[str] | None:
        if self._overflow:
            self._overflow = False
            self._pending.clear()
            self._next_rescan = time.monotonic() + self._rescan
            return None
        names, self._pending = self._pending, set()
        return names

    def _sleep(self, seconds: float, *, watch_inotify: bool = False) -> bool:
        """Sleeps; True when woken by :meth:`wake`."""
        fds = [self._wake_r]
        if watch_inotify and self._inotify is not None:
            fds.append(self._inotify)
        ready, _, _ = select.select(fds, [], [], seconds)
        if self._wake_r in ready:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            return True
        return False

    def _drain(self) -> bool:
        """Reads the pending events; False when the watch is gone (then we poll)."""
        while self._inotify is not None:
            try:
                data = os.read(self._inotify, 1 << 16)
            except BlockingIOError:
                return True
            offset = 0
            while offset + _EVENT.size <= len(data):
                _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].split(b"\0", 1)[0]
                offset += length
                if mask & _IN_IGNORED:
                    # The directory itself went away (deleted, unmounted): the watch is
                    # gone with it, so poll from now on.
                    self._overflow = True
                    os.close(self._inotify)
                    self._inotify = None
                    return False
                if mask & _IN_Q_OVERFLOW:
                    self._overflow = True
                elif name:
                    self._pending.add(os.fsdecode(name))
        return False
