"""What each durability mode costs per chunk (not a CI test).

Writes sessions of the ``chat`` workload (~1 KB lines, DESIGN §7) with the
native writer in each ``sync`` mode and with the pure writer in the seed's
behaviour (``sync="never"``), interleaving the contenders within each repeat
so they share the machine's state, and reports medians:

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
import gc
import json
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sessionwal
import sessionwal.pure
from sessionwal.workloads import WORKLOADS

CONTENDERS = [
    ("pure", "never"),
    ("native", "never"),
    ("native", "close"),
    ("native", "interval"),
    ("native", "always"),
]
CLASSES = {"pure": sessionwal.pure.SessionWriter, "native": sessionwal.SessionWriter}


def one_session(kind: str, sync: str, rows: list, directory: Path, n: int) -> tuple[float, float]:
    """(ns per chunk in the write loop, ns in close) for one fresh session."""
    path = directory / f"{kind}-{sync}-{random.random()}.jsonl"
    writer = CLASSES[kind](sessionwal.Session(id=path.stem), path=path, sync=sync)
    write = writer.write_chunk
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for i in range(n):
            write(i, rows[i % len(rows)])
        loop = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        writer.close()
        close = time.perf_counter_ns() - start
    finally:
        gc.enable()
    path.unlink()
    return loop / n, close


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = WORKLOADS[args.workload](args.chunks, seed=0)
    directory = Path(tempfile.mkdtemp(prefix="sessionwal-bench-sync-", dir=args.dir))
    samples: dict[str, dict[str, list[float]]] = {
        f"{k} {s}": {"loop": [], "close": []} for k, s in CONTENDERS
    }
    try:
        for repeat in range(args.repeats):
            order = list(CONTENDERS)
            random.Random(repeat).shuffle(order)
            for kind, sync in order:
                n = args.always_chunks if sync == "always" else args.chunks
                loop, close = one_session(kind, sync, rows, directory, n)
                samples[f"{kind} {sync}"]["loop"].append(loop)
                samples[f"{kind} {sync}"]["close"].append(close)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    results = {}
    for name, got in samples.items():
        n = args.always_chunks if name.endswith("always") else args.chunks
        loop = statistics.median(got["loop"])
        close = statistics.median(got["close"])
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
