"""Benchmark the writer's reopen: the recovery rule reads the whole file once.

Reopening a session id (``SessionWriter`` on an existing ``__partial__``
file) finds the end of the file's valid log before appending: one sequential
read, every line checked by the native JSON validator. This writes a crashed
session of ``chat`` chunks (~1 KB lines) of each ``--mib`` size, then times
reopen + abandon (page cache warm), medians of ``--repeats``::

    python benches/bench_reopen.py
    python benches/bench_reopen.py --mib 1 64 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import sessionwal
from sessionwal.bench import workloads


def crashed_session(directory: Path, mib: int) -> Path:
    path = directory / f"s{mib}.jsonl"
    rows = workloads.chat(2000)
    writer = sessionwal.SessionWriter(sessionwal.Session(id=f"s{mib}"), path=path)
    written, i = 0, 0
    while written < mib << 20:
        batch = [(i + j, row) for j, row in enumerate(rows)]
        writer.write_chunks(batch)
        i += len(batch)
        written = os.path.getsize(writer.partial_path)
    writer.abandon()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for mib in args.mib:
            path = crashed_session(Path(tmp), mib)
            session = sessionwal.Session(id=f"s{mib}")
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                sessionwal.SessionWriter(session, path=path).abandon()
                times.append(time.perf_counter() - started)
            size = os.path.getsize(f"{path}.__partial__")
            median = statistics.median(times)
            print(
                f"reopen of a {size / 2**20:7.1f} MiB session: {median * 1e3:9.2f} ms "
                f"median of {args.repeats} ({size / median / 1e9:.2f} GB/s)"
            )
            os.unlink(f"{path}.__partial__")


if __name__ == "__main__":
    main()
