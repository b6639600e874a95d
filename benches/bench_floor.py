"""Where a native chunk's time goes: the distance to one write(2) of pre-encoded bytes.

For each workload, medians over interleaved repeats of µs per chunk for:

* ``write(2) floor``: ``os.write`` of the exact lines the writer produces,
  already encoded (the cost every writer pays per chunk, kernel included);
* ``encode only``: the native encoder on the same records, no I/O;
* ``native write_chunk``: the whole native path;
* ``pure write_chunk``: the reference.

Run: ``python benches/bench_floor.py [--repeats N]``. The timing rules (fresh
strings in every pass, GC off, rotated order) are ``sessionwal.bench.timing``'s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sessionwal import SessionWriter
from sessionwal._native import encode_record
from sessionwal.bench.timing import (
    Items,
    fresh_items,
    gc_off,
    interleave,
    medians,
    pure_writer,
    time_session,
)
from sessionwal.bench.workloads import WORKLOADS
from sessionwal.records import build_chunk_record

SIZES = {"chat": 5000, "deltas": 20000, "large": 200}
CONTENDERS = ["floor", "encode", "native", "pure"]


def _floor_pass(path: Path, lines: list[bytes]) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        with gc_off():
            start = time.perf_counter_ns()
            for line in lines:
                os.write(fd, line)
            return time.perf_counter_ns() - start
    finally:
        os.close(fd)
        path.unlink()


def _encode_pass(items: Items) -> int:
    records = [build_chunk_record(index, row) for index, row in items]
    with gc_off():
        start = time.perf_counter_ns()
        for record in records:
            encode_record(record)
        return time.perf_counter_ns() - start


def measure(name: str, size: int, repeats: int, directory: Path) -> dict[str, float]:
    """Median µs per chunk of every contender over ``size`` rows of workload ``name``."""
    items = list(enumerate(WORKLOADS[name](size, 0)))
    lines = [encode_record(build_chunk_record(i, r)) for i, r in items]
    pure = pure_writer()

    def one_pass(contender: str, warm_up: bool) -> float:
        rows = fresh_items(items[:256] if warm_up else items)
        path = directory / f"{name}-{contender}.jsonl"
        if contender == "floor":
            elapsed = _floor_pass(path, lines[: len(rows)])
        elif contender == "encode":
            elapsed = _encode_pass(rows)
        else:
            elapsed = time_session(SessionWriter if contender == "native" else pure, path, rows)
        return elapsed / 1000 / len(rows)

    return medians(interleave(CONTENDERS, repeats, one_pass))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        "| workload | write(2) floor µs | encode only µs | native write_chunk µs "
        "| pure write_chunk µs | native minus floor µs |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            us = measure(name, size, args.repeats, Path(tmp))
            print(
                f"| {name} | {us['floor']:.2f} | {us['encode']:.2f} | {us['native']:.2f} "
                f"| {us['pure']:.2f} | {us['native'] - us['floor']:.2f} |"
            )


if __name__ == "__main__":
    main()
