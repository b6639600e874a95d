"""Following a live session as chunks land: ``sessionwal tail -f``.

A :class:`Follower` keeps one descriptor on the session file, so it reads the
same file through the rename that closes it. It polls: :meth:`Follower.read`
returns the complete records that arrived since the last call (checked with
the loader's rules; a line that breaks them is handed to the recovery rule,
and past the valid log it is the crash tail: reading stops there, see
:attr:`Follower.tail`), :meth:`Follower.wait` sleeps when there were none and
decides when to stop:

- ``"closed"``: the trailer was read and the file has its final name (the
  writer's rename happened), or was opened under it; ``"corrupt"`` instead
  when the closed file breaks the rule every command applies
  (:func:`sessionwal.files.closed_problem`, e.g. a trailer count that does
  not match the chunks);
- ``"crashed"``: on two idle polls in a row no writer held the file's lock
  (the second poll first re-reads, so nothing written before the writer let
  go is missed). After a trailer, the rename is also given ``rename_grace``
  seconds: the pure writer releases its lock just *before* renaming;
- ``"timeout"``: ``timeout`` seconds passed first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sessionwal import files
from sessionwal.errors import SessionFormatError
from sessionwal.records import (
    Structure,
    ValidLog,
    line_too_long,
    max_line_bytes,
    parse_line,
    valid_log,
)

__all__ = ["Follower"]

_READ_SIZE = 1 << 20


class Follower:
    """Reads a session file as it grows; see the module doc. Close it when done."""

    def __init__(
        self,
        path: Path | str,
        *,
        poll_interval: float = 0.1,
        timeout: float | None = None,
        rename_grace: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._deadline = None if timeout is None else clock() + timeout
        self._fd = files.open_regular_fd(self.path)
        self._structure = Structure(self.path)
        self._max_line = max_line_bytes()
        #: The start of a line whose newline has not arrived, in pieces (joined
        #: once, when it ends: linear in what is read), and its length. Past
        #: the line limit the pieces are dropped and only the length counts.
        self._pieces: list[bytes] = []
        self._pending_len = 0
        #: Bytes of the complete records read so far.
        self._offset = 0
        #: The valid log, once reading reached a crash tail after it (a crashed
        #: session: torn or garbage lines, NUL bytes left by power loss).
        self.tail: ValidLog | None = None
        self._trailer: dict[str, Any] | None = None
        #: Why a closed session is corrupt (outcome "corrupt"), else None.
        self.problem: str | None = None
        self._line = 0
        self._rename_grace = rename_grace
        #: When an idle poll first found no writer holding the lock.
        self._gone_since: float | None = None
        #: None while following; then "closed", "corrupt", "crashed" or "timeout".
        self.outcome: str | None = None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def chunk_count(self) -> int:
        return self._structure.chunks

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(record_type, record)`` for each complete record that arrived, as it is read.

        Ends when a read finds no more bytes: one pass over what is there. Stops
        for good at a crash tail (see :attr:`tail`).
        """
        while self.tail is None and (data := os.read(self._fd, _READ_SIZE)):
            start = 0
            while (end := data.find(b"\n", start)) >= 0:
                if self._pending_len + end - start > self._max_line:
                    # The rule decides: a crash tail (a NUL in it), or an error.
                    if self._at_crash_tail():
                        return
                    raise line_too_long(self.path, self._line + 1, self._max_line)
                self._pieces.append(data[start:end])
                raw = b"".join(self._pieces)
                self._pieces.clear()
                self._pending_len = 0
                start = end + 1
                self._line += 1
                try:
                    record = parse_line(self.path, self._line, raw)
                    record_type = self._structure.feed(self._line, record)
                except SessionFormatError:
                    if self._at_crash_tail():
                        return
                    raise
                self._offset += len(raw) + 1
                self._gone_since = None
                if record_type == "trailer":
                    self._trailer = record
                elif record_type == "header":
                    self._trailer = None  # a reopen after a trailer
                yield record_type, record
            # No record holds a NUL byte: a NUL run is power-loss damage, not a
            # line still arriving (and may be any size): ask the rule.
            if data.find(b"\0", start) >= 0 and self._at_crash_tail():
                return
            self._pending_len += len(data) - start
            if self._pending_len <= self._max_line:
                self._pieces.append(data[start:])
            else:
                self._pieces.clear()

    def _at_crash_tail(self) -> bool:
        """Asks the recovery rule whether what we are reading is past the valid log:
        then it is the crash tail, and following stops there."""
        log = valid_log(self.path, self._fd)
        if self._offset < log.end:
            return False
        self.tail = log
        return True

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        """:meth:`records` as a list."""
        return list(self.records())

    def wait(self) -> bool:
        """After a :meth:`read` that found nothing: False once following is over
        (see :attr:`outcome`), else sleep one poll interval and return True."""
        trailer_seen = self._structure.trailer_line is not None
        if trailer_seen and self._has_final_name():
            tail_bytes = self.tail.tail_bytes if self.tail else self._pending_len
            problem = files.closed_problem(
                self._trailer,
                tail_bytes,
                self._structure.segment_chunks,
                self.tail.tail if self.tail else None,
                self.tail.tail_line if self.tail else None,
            )
            self.outcome = "closed" if problem is None else "corrupt"
            self.problem = problem
        elif self._writer_holds_lock():
            self._gone_since = None
        elif self._gone_since is None:
            self._gone_since = self._clock()
        elif not trailer_seen or self._clock() - self._gone_since >= self._rename_grace:
            self.outcome = "crashed"
        if self.outcome is None:
            self.timed_out()
        if self.outcome is not None:
            return False
        self._sleep(self.poll_interval)
        return True

    def timed_out(self) -> bool:
        """True (and the outcome "timeout") once ``timeout`` seconds have passed."""
        if self.outcome is None and self._deadline is not None and self._clock() >= self._deadline:
            self.outcome = "timeout"
        return self.outcome == "timeout"

    def _has_final_name(self) -> bool:
        return not files.is_partial(self.path) or files.same_file(
            self._fd, files.final_of(self.path)
        )

    def _writer_holds_lock(self) -> bool:
        # Our own descriptor follows the file through the rename.
        return files.writer_holds_lock(self._fd)
