"""What each durability mode costs per chunk (not a CI test).

Writes sessions of the ``chat`` workload (~1 KB lines) with the native
writer in each ``sync`` mode and with the pure writer in the seed's behaviour
(``sync="never"``), interleaving the contenders within each repeat so they
share the machine's state (``sessionwal.bench.timing.interleave``), and
reports medians:

- the write loop in µs per chunk (what a runtime pays on its hot path);
- ``close()`` in ms (trailer, and for the fsyncing modes fdatasync, rename,
  directory fsync);
- the total per chunk for a session of ``--chunks`` chunks, close included.

``sync="always"`` runs fewer chunks (``--always-chunks``): each costs a
device flush. Results depend on the file system and device under ``--dir``
(default: the system temp dir)::

    python benches/bench_sync.py                    # ~1 min
    python benches/bench_sync.py --quick            # ~10 s
    python benches/bench_sync.py --dir /mnt/nvme --repeats 11 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sessionwal
from sessionwal.bench.timing import FIXED_CREATED, interleave, pure_writer, time_writes
from sessionwal.bench.workloads import WORKLOADS

CONTENDERS = ["pure never", "native never", "native close", "native interval", "native always"]
CLASSES = {"pure": pure_writer(), "native": sessionwal.SessionWriter}


def one_session(contender: str, rows: list, directory: Path, n: int) -> tuple[float, float]:
    """(ns per chunk in the write loop, ns in close) for one fresh session."""
    kind, sync = contender.split()
    path = directory / f"{kind}-{sync}.jsonl"
    items = [(i, rows[i % len(rows)]) for i in range(n)]
    writer = CLASSES[kind](
        sessionwal.Session(id=path.stem, created_at=FIXED_CREATED), path=path, sync=sync
    )
    loop = time_writes(writer, items)
    start = time.perf_counter_ns()
    writer.close()
    close = time.perf_counter_ns() - start
    path.unlink()
    return loop / n, close


def chunks_for(contender: str, args: argparse.Namespace) -> int:
    return args.always_chunks if contender.endswith("always") else args.chunks


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = WORKLOADS[args.workload](args.chunks, seed=0)
    directory = Path(tempfile.mkdtemp(prefix="sessionwal-bench-sync-", dir=args.dir))

    def one_pass(contender: str, warm_up: bool) -> tuple[float, float]:
        n = 20 if warm_up else chunks_for(contender, args)
        return one_session(contender, rows, directory, n)

    try:
        samples = interleave(CONTENDERS, args.repeats, one_pass)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results = {}
    for name, got in samples.items():
        n = chunks_for(name, args)
        loop = statistics.median(s[0] for s in got)
        close = statistics.median(s[1] for s in got)
        results[name] = {
            "chunks": n,
            "us_per_chunk": loop / 1e3,
            "close_ms": close / 1e6,
            "us_per_chunk_with_close": (loop * n + close) / n / 1e3,
        }
    return {
        "workload": args.workload,
        "repeats": args.repeats,
        "dir": str(args.dir or tempfile.gettempdir()),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    base = report["results"]["pure never"]["us_per_chunk"]
    lines = [
        f"workload `{report['workload']}`, medians of {report['repeats']} interleaved repeats, "
        f"files under {report['dir']} ({report['machine']})",
        "",
        "| writer, sync | chunks/session | µs/chunk (write loop) | close (ms) "
        "| µs/chunk incl. close | write loop ÷ pure seed's |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['chunks']} | {r['us_per_chunk']:.2f} | {r['close_ms']:.2f} "
            f"| {r['us_per_chunk_with_close']:.2f} | {r['us_per_chunk'] / base:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--workload", default="chat", choices=sorted(WORKLOADS))
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--always-chunks", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    parser.add_argument("--quick", action="store_true", help="fewer chunks and repeats")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.always_chunks, args.repeats = 1000, 60, 3
    report = run(args)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
