"""``sessionwal``: the operator's command line (also ``python -m sessionwal``).

Commands and exit codes (see ``docs/cli.md``). Every command judges a file
by :func:`sessionwal.files.judge`, so they agree on its state:

- ``ls [--dir D] [--json]``: sessions, oldest first; 0 (files that cannot be
  listed are reported on stderr), 2 if ``--dir`` is not a directory.
- ``show TARGET [--json]``: one session's records; 0, or 2 when it cannot be
  found or read, or is corrupt (a corrupt file that loads is still shown).
- ``verify PATH...``: 0 every file closed and intact, 1 some in flight or
  crashed, 2 some corrupt or unreadable; one line per file.
- ``repair TARGET``: close a crashed partial file; 0 repaired, 1 refused
  because a writer holds it, 2 refused otherwise (see ``sessionwal.repair``).
- ``tail [-f] TARGET``: the last records, then (``-f``) follow; 0 when the
  session closed, 1 when following stopped first (writer gone, ``--timeout``),
  2 when it cannot be read.
- ``replicate URL``, ``restore URL [ID...]``, ``ls URL``: object storage, see
  ``sessionwal.replicate`` and docs/replication.md.
- ``bench``: the benchmark of ``sessionwal.bench`` (its own options).

A TARGET is a path to a session file, or a session id looked up in the
sessions directory (``--dir``, default ``$SESSIONWAL_HOME/sessions``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from sessionwal import files, records
from sessionwal.errors import PersistenceError, RepairRefused
from sessionwal.files import SessionState
from sessionwal.follow import Follower
from sessionwal.loader import SessionInfo, list_sessions, load_session
from sessionwal.repair import repair_session
from sessionwal.replicate import _cli as replicate_cli

__all__ = ["main", "quote_controls"]

EXIT_OK = 0
EXIT_NOT_CLOSED = 1
EXIT_ERROR = 2


class _Failure(Exception):
    """Ends the command with a message on stderr and ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _plural(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def quote_controls(text: str) -> str:
    """``text`` with every character of :data:`~sessionwal.files.CONTROL_CHARACTERS`
    (newlines, tabs and escapes included) written as ``\\xNN`` or ``\\uNNNN``, as
    coreutils ``ls`` quotes names: a session's bytes never drive the terminal.
    (Backslashes stay as they are, so JSON payloads read as JSON.)"""
    return files.CONTROL_CHARACTERS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _QuotedLines:
    """A text stream for a human: each ``write`` is one line (its own ``\\n``
    last); everything in it is quoted by :func:`quote_controls`, so an id,
    kind or payload cannot end the line, move the cursor or forge a row."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        body, newline, _ = text.rpartition("\n") if text.endswith("\n") else (text, "", "")
        return self._stream.write(quote_controls(body) + newline)

    def flush(self) -> None:
        self._stream.flush()


def _dump(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False)


def _sessions_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir is not None else files.sessions_dir()


def _name_exists(path: Path) -> bool:
    """Something is at ``path`` (not followed). Unlike ``os.path.lexists``, an
    error other than "not there" (EACCES) propagates: it is the answer to give."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _resolve(target: str, directory: Path, *, prefer_partial: bool = False) -> Path:
    """A session file from a path, or from an id in ``directory``.

    An existing file wins. Otherwise the path's candidates (a final name not
    there yet falls back to its partial file, as ``load_session`` does), then
    a valid id's (``<dir>/<id>.jsonl``, else its partial file; the partial one
    first with ``prefer_partial``).
    """
    given = Path(target)
    if given.is_file():
        return given
    found = files.candidates(path=given)[1:] if given.name else []
    try:
        found += files.candidates(target, directory=directory, prefer_partial=prefer_partial)
    except ValueError:
        pass
    for candidate in found:
        # Whatever is there (a link, a FIFO) is the session's name: the read
        # refuses it with the reason ls and verify give, not "no session file".
        if _name_exists(candidate):
            return candidate
    raise _Failure(
        f"no session file for '{target}' (neither a file nor a session in '{directory}')"
    )


# ------------------------------------------------------------------ ls


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _info_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "path": str(info.path),
        "created_at": info.created_at.isoformat(),
        "chunk_count": info.chunk_count,
        "state": SessionState(info.state).value,
        "closed": info.closed,
        "size": info.size,
        "torn_bytes": info.torn_bytes,
        "tail": info.tail,
        "recovered": info.recovered,
    }


def _state_label(info: SessionInfo) -> str:
    label = SessionState(info.state).label
    return f"{label} (recovered)" if info.recovered else label


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {2, 4}  # CHUNKS and SIZE read best right-aligned
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.write("  ".join(cells).rstrip() + "\n")


def cmd_ls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.url is not None:
        return replicate_cli.cmd_ls_url(args, out, err)
    directory = _sessions_dir(args)
    if args.dir is not None and not directory.is_dir():
        raise _Failure(f"'{directory}' is not a directory")
    skipped: list[tuple[Path, Exception]] = []
    infos = list_sessions(directory, on_error=lambda path, exc: skipped.append((path, exc)))
    if args.json:
        for info in infos:
            out.write(_dump(_info_json(info)) + "\n")
    elif infos:
        rows = [["ID", "CREATED", "CHUNKS", "STATE", "SIZE"]]
        for info in infos:
            created = info.created_at.isoformat(sep=" ", timespec="seconds")
            rows.append(
                [
                    info.id,
                    created,
                    str(info.chunk_count),
                    _state_label(info),
                    _human_size(info.size),
                ]
            )
        _table(rows, out)
    else:
        err.write(f"no sessions in '{directory}'\n")
    for path, exc in skipped:
        err.write(f"sessionwal: skipped '{path}': {exc} (see `sessionwal verify`)\n")
    return EXIT_OK


# ------------------------------------------------------------------ show / tail


def _describe(record_type: str, record: dict[str, Any]) -> str:
    """One human-readable line for a record."""
    if record_type == "chunk":
        return f"#{record.get('index')} {record.get('kind')}: {_dump(record.get('payload'))}"
    if record_type == "header":
        extras = [
            f"{key}={_dump(record[key])}"
            for key in records.HEADER_KEYS[4:]  # after record_type, schema, id, created_at
            if record.get(key) not in (None, [], {})
        ]
        text = f"session {record.get('id')} created {record.get('created_at')}"
        return " ".join([text, *extras])
    usage = record.get("cumulative_usage")
    count = _plural(record.get("final_chunk_count"), "chunk")
    text = f"trailer: closed {record.get('closed_at')}, {count}"
    if usage is not None:
        text += f", usage {_dump(usage)}"
    if record.get("recovered") is True:
        text += ", recovered by repair"
    return text


def _emit(record_type: str, record: dict[str, Any], as_json: bool, out: TextIO) -> None:
    out.write((_dump(record) if as_json else _describe(record_type, record)) + "\n")


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = _resolve(args.target, _sessions_dir(args))
    session = load_session(path=path)
    header = session.header
    if args.json:
        out.write(_dump(header) + "\n")
        for index, row in zip(session.chunk_indices, session.chunks, strict=True):
            kind = getattr(row.kind, "value", row.kind)
            chunk = {"record_type": "chunk", "index": index, "kind": kind, "payload": row.payload}
            out.write(_dump(chunk) + "\n")
        if session.trailer is not None:
            out.write(_dump(session.trailer) + "\n")
        return EXIT_OK
    verdict = session.verdict()
    out.write(f"path: {session.path}\n")
    if verdict.state is SessionState.CORRUPT:
        out.write(f"state: corrupt: {verdict.detail}\n")
    else:
        out.write(f"state: {verdict.state.label}\n")
    out.write(_describe("header", header) + "\n")
    for index, row in zip(session.chunk_indices, session.chunks, strict=True):
        kind = getattr(row.kind, "value", row.kind)
        out.write(_describe("chunk", {"index": index, "kind": kind, "payload": row.payload}) + "\n")
    if session.trailer is not None:
        out.write(_describe("trailer", session.trailer) + "\n")
    if session.torn_bytes:
        tail = records.describe_tail(session.torn_bytes, session.tail, session.tail_line)
        out.write(f"{tail}, after the last valid record\n")
    return verdict.exit_code if verdict.state is SessionState.CORRUPT else EXIT_OK


def cmd_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # An id with both files is an earlier session closed under it and a newer
    # one reopened since (in flight, or crashed): tail the newer, the partial.
    path = _resolve(args.target, _sessions_dir(args), prefer_partial=True)
    with Follower(path, poll_interval=args.poll, timeout=args.timeout) as follower:
        # What is there already: the header (line 1), the last `--lines`
        # chunks, and the trailer (last) if any; only those stay in memory.
        last_chunks: deque[dict[str, Any]] = deque(maxlen=args.lines)
        trailer = None
        for record_type, record in follower.records():
            if record_type == "header":
                _emit(record_type, record, args.json, out)
            elif record_type == "chunk":
                last_chunks.append(record)
            else:
                trailer = record
        for record in last_chunks:
            _emit("chunk", record, args.json, out)
        if trailer is not None:
            _emit("trailer", trailer, args.json, out)
        out.flush()
        if not args.follow:
            verdict = files.state_of(path)
            if verdict.state in (SessionState.CORRUPT, SessionState.UNREADABLE):
                err.write(f"sessionwal: {verdict.detail}\n")
            return verdict.exit_code if verdict.exit_code == EXIT_ERROR else EXIT_OK
        while True:
            batch = 0
            for record_type, record in follower.records():
                _emit(record_type, record, args.json, out)
                out.flush()
                batch += 1
                # A session that never goes idle still stops at --timeout.
                if follower.timed_out():
                    break
            if follower.outcome is not None or (not batch and not follower.wait()):
                break
        chunks_seen = follower.chunk_count
    if follower.outcome == "closed":
        err.write(f"sessionwal: session closed after {_plural(chunks_seen, 'chunk')}\n")
        return EXIT_OK
    if follower.outcome == "corrupt":
        err.write(f"sessionwal: '{path}' closed, but is corrupt: {follower.problem}\n")
        return EXIT_ERROR
    if follower.outcome == "crashed":
        err.write(f"sessionwal: the writer let go of '{path}' without closing it\n")
        if follower.tail is not None:
            err.write(f"sessionwal: its log ends with {follower.tail.describe_tail()}\n")
    else:
        err.write(f"sessionwal: stopped following after {args.timeout} s; the session is open\n")
    return EXIT_NOT_CLOSED


# ------------------------------------------------------------------ verify / repair


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    code = EXIT_OK
    for target in args.paths:
        verdict = files.state_of(target)
        out.write(f"{verdict}\n")
        code = max(code, verdict.exit_code)
    return code


def cmd_repair(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = _resolve(args.target, _sessions_dir(args), prefer_partial=True)
    try:
        result = repair_session(path)
    except RepairRefused as exc:
        code = EXIT_NOT_CLOSED if exc.in_flight else EXIT_ERROR
        raise _Failure(f"repair refused: {exc}", code) from None
    torn = ""
    if result.torn_bytes:
        torn = f"cut {records.describe_tail(result.torn_bytes, result.tail, None)}, "
    trailer = "appended a recovered trailer" if result.trailer_added else "kept its trailer"
    out.write(
        f"repaired '{result.path}': kept {_plural(result.chunk_count, 'chunk')}, {torn}{trailer}; "
        f"original bytes in '{result.backup}'\n"
    )
    return EXIT_OK


# ------------------------------------------------------------------ main


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sessionwal")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwal",
        description="Inspect, verify, repair and follow sessionwal session files.",
    )
    parser.add_argument("--version", action="version", version=f"sessionwal {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def dir_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", help="sessions directory (default: $SESSIONWAL_HOME/sessions)")

    p = sub.add_parser("ls", help="list sessions, oldest first (or those in a store: ls URL)")
    p.add_argument("url", metavar="URL", nargs="?", help="list the sessions in this store instead")
    dir_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object per session")
    p.set_defaults(run=cmd_ls)

    p = sub.add_parser("show", help="print one session's records")
    p.add_argument("target", metavar="ID|PATH")
    dir_option(p)
    p.add_argument("--json", action="store_true", help="the records as JSON lines")
    p.set_defaults(run=cmd_show)

    p = sub.add_parser("verify", help="check files: exit 0 closed, 1 in flight/crashed, 2 corrupt")
    p.add_argument("paths", metavar="PATH", nargs="+")
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("repair", help="close a crashed partial file, keeping a backup")
    p.add_argument("target", metavar="ID|PATH")
    dir_option(p)
    p.set_defaults(run=cmd_repair)

    p = sub.add_parser("tail", help="the last records of a session; -f follows it")
    p.add_argument("target", metavar="ID|PATH")
    dir_option(p)
    p.add_argument("-f", "--follow", action="store_true", help="follow until the session closes")
    p.add_argument(
        "-n", "--lines", type=_count, default=10, help="chunks to show first (default 10)"
    )
    p.add_argument("--json", action="store_true", help="the records as JSON lines")
    p.add_argument("--timeout", type=float, help="stop following after this many seconds")
    p.add_argument("--poll", type=float, default=0.1, help="seconds between polls (default 0.1)")
    p.set_defaults(run=cmd_tail)

    replicate_cli.add_parsers(sub, dir_option)

    # Parsed by sessionwal.bench itself (see main); listed here for --help.
    sub.add_parser("bench", help="benchmark native vs pure writers (bench --help for options)")
    return parser


def _bench(argv: list[str]) -> int:
    # Imported on use: the harness (sessionwal.bench) is no part of the runtime.
    from sessionwal import bench as benchmark

    return int(benchmark.main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return _bench(args_list[1:])
    args = build_parser().parse_args(args_list)
    # --json output is JSON (controls escaped by json.dumps); the rest is for a human.
    # Commands only write lines and flush: the duck-typed wrapper serves as a TextIO.
    err = cast(TextIO, _QuotedLines(sys.stderr))
    out = sys.stdout if getattr(args, "json", False) else cast(TextIO, _QuotedLines(sys.stdout))
    run: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.run  # set per subcommand
    try:
        records.max_line_bytes()
    except ValueError as exc:
        # A bad setting is a usage error (2), not a traceback's 1 ("in flight").
        err.write(f"sessionwal: {exc}\n")
        return EXIT_ERROR
    try:
        return run(args, out, err)
    except BrokenPipeError:
        # The reader went away (`sessionwal show X | head`): stop quietly, and
        # keep the interpreter's final flush from complaining about it too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_NOT_CLOSED
    except _Failure as exc:
        err.write(f"sessionwal: {exc}\n")
        return exc.code
    except (PersistenceError, OSError) as exc:
        err.write(f"sessionwal: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
