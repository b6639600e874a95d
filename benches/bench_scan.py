"""Benchmark the read side: listing sessions with the native scanner vs a json.loads loop.

Writes ``--sessions`` sessions of ``--chunks`` rows of the ``chat`` workload
(~1 KB per line, deterministic) into a temporary directory, then times,
interleaved and rotated (``sessionwal.bench.timing.interleave``),
``--repeats`` times each (page cache warm, so this measures CPU, not disk):

- ``list_sessions``: ``sessionwal.list_sessions(dir)``, the real API (native
  scan of every file, header and trailer parsed in Python, lock probe of
  partial files, sorting);
- ``verify``: ``sessionwal.files.state_of`` on every file (the native
  scanner also validates every line's JSON);
- ``json.loads loop``: what a pure-Python listing has to do to get the same
  facts: ``json.loads`` on every line of every file, counting chunks and
  keeping the header and trailer.

Targets (issue 6): ``list_sessions`` >= 5x faster than the json.loads loop.
Run with the package installed::

    python benches/bench_scan.py                  # 300 sessions x 300 chunks
    python benches/bench_scan.py --sessions 50 --chunks 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sessionwal
from sessionwal.bench.timing import interleave, medians
from sessionwal.bench.workloads import chat
from sessionwal.files import state_of


def write_sessions(directory: Path, sessions: int, chunks: int) -> int:
    rows = chat(chunks, 0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for s in range(sessions):
        session = sessionwal.Session(id=f"s{s:05d}", created_at=start + timedelta(minutes=s))
        writer = sessionwal.SessionWriter(session, path=directory / f"s{s:05d}.jsonl", sync="never")
        writer.write_chunks(enumerate(rows))
        # Every tenth session crashed: a partial file with a torn tail.
        if s % 10 == 9:
            writer.abandon()
            with open(writer.partial_path, "ab") as file:
                file.write(b'{"record_type": "chunk", "ind')
        else:
            writer.close()
    return sum(p.stat().st_size for p in directory.iterdir())


def json_loads_listing(directory: Path) -> list[tuple[str, int, bool]]:
    """The pure-Python way to the facts ``list_sessions`` gives."""
    out = []
    for path in sorted(directory.iterdir()):
        header = trailer = None
        chunks = 0
        with open(path, "rb") as file:
            for raw in file:
                if not raw.endswith(b"\n"):
                    break  # torn tail
                record = json.loads(raw)
                kind = record["record_type"]
                if kind == "chunk":
                    chunks += 1
                elif kind == "header":
                    header = record
                else:
                    trailer = record
        assert header is not None
        created = datetime.fromisoformat(header["created_at"])
        out.append((created, header["id"], chunks, trailer is not None))
    out.sort()
    return [(sid, chunks, closed) for _, sid, chunks, closed in out]


def native_listing(directory: Path) -> list[tuple[str, int, bool]]:
    # `closed` is the trailer seen in the json.loads loop: no partial file here has one.
    return [(i.id, i.chunk_count, i.closed) for i in sessionwal.list_sessions(directory)]


def verify_all(directory: Path) -> int:
    return sum(state_of(p).exit_code for p in sorted(directory.iterdir()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sessionwal-bench-scan-") as tmp:
        directory = Path(tmp)
        total = write_sessions(directory, args.sessions, args.chunks)
        print(
            f"{args.sessions} sessions x {args.chunks} chunks, {total / (1 << 20):.1f} MiB "
            f"({total / (args.sessions * (args.chunks + 2)):.0f} B/line), page cache warm"
        )
        # Same facts from both, or the comparison means nothing.
        assert native_listing(directory) == json_loads_listing(directory)
        contenders: dict[str, Callable[[Path], object]] = {
            "json.loads loop": json_loads_listing,
            "list_sessions (native)": native_listing,
            "verify (native, validating)": verify_all,
        }

        def one_pass(name: str, warm_up: bool) -> float:
            t0 = time.perf_counter()
            contenders[name](directory)
            return time.perf_counter() - t0

        median = medians(interleave(list(contenders), args.repeats, one_pass))
    baseline = median["json.loads loop"]
    print(f"median of {args.repeats} interleaved repeats")
    print(f"{'':30} {'ms':>9} {'MiB/s':>9} {'speedup':>9}")
    for name, seconds in median.items():
        speed = total / (1 << 20) / seconds
        print(f"{name:30} {seconds * 1e3:9.1f} {speed:9.0f} {baseline / seconds:8.1f}x")
    ratio = baseline / median["list_sessions (native)"]
    print(f"target: list_sessions >= 5x the json.loads loop: {ratio:.1f}x", end=" ")
    print("ok" if ratio >= 5 else "MISSED")
    return 0 if ratio >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
