"""Where a native chunk's time goes: the distance to one write(2) of pre-encoded bytes.

For each workload, medians over interleaved repeats of µs per chunk for:

* ``write(2) floor``: ``os.write`` of the exact lines the writer produces,
  already encoded (the cost every writer pays per chunk, kernel included);
* ``encode only``: the native encoder on the same records, no I/O;
* ``native write_chunk``: the whole native path;
* ``pure write_chunk``: the reference.

Run: ``python benches/bench_floor.py [--repeats N]``. Strings are fresh in
every pass (see ``sessionwal.benchmark._fresh``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sessionwal import Session, SessionWriter
from sessionwal._native import encode_record
from sessionwal.benchmark import _fresh_items
from sessionwal.pure import SessionWriter as PureWriter
from sessionwal.records import build_chunk_record
from sessionwal.workloads import WORKLOADS

SIZES = {"chat": 5000, "deltas": 20000, "large": 200}


def _writer_pass(cls: type, directory: Path, name: str, items: list) -> float:
    writer = cls(Session(id=name), path=directory / f"{name}.jsonl", sync="never")
    write = writer.write_chunk
    start = time.perf_counter()
    for index, row in items:
        write(index, row)
    elapsed = time.perf_counter() - start
    writer.close()
    (directory / f"{name}.jsonl").unlink()
    return elapsed


def _floor_pass(directory: Path, lines: list[bytes]) -> float:
    fd = os.open(directory / "floor", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    start = time.perf_counter()
    for line in lines:
        os.write(fd, line)
    elapsed = time.perf_counter() - start
    os.close(fd)
    os.unlink(directory / "floor")
    return elapsed


def _encode_pass(items: list) -> float:
    records = [build_chunk_record(index, row) for index, row in items]
    start = time.perf_counter()
    for record in records:
        encode_record(record)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        "| workload | write(2) floor µs | encode only µs | native write_chunk µs "
        "| pure write_chunk µs | native minus floor µs |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, size in SIZES.items():
            items = list(enumerate(WORKLOADS[name](size, 0)))
            lines = [encode_record(build_chunk_record(i, r)) for i, r in items]
            samples: dict[str, list[float]] = {k: [] for k in ("floor", "encode", "native", "pure")}
            for _ in range(args.repeats):
                samples["floor"].append(_floor_pass(directory, lines))
                samples["encode"].append(_encode_pass(_fresh_items(items)))
                samples["native"].append(
                    _writer_pass(SessionWriter, directory, name, _fresh_items(items))
                )
                samples["pure"].append(_writer_pass(PureWriter, directory, name, items))
            us = {k: statistics.median(v) / len(items) * 1e6 for k, v in samples.items()}
            print(
                f"| {name} | {us['floor']:.2f} | {us['encode']:.2f} | {us['native']:.2f} "
                f"| {us['pure']:.2f} | {us['native'] - us['floor']:.2f} |"
            )


if __name__ == "__main__":
    main()
