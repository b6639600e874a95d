"""Aggregate throughput of 1, 2 and 4 threads, each with its own writer.

Every thread writes the same number of ``large`` rows (~64 KiB tool outputs)
into its own session file; the clock runs from a barrier releasing all
threads until the last one finished its loop (open and close excluded). The
native writer encodes while holding the GIL and releases it around
``write(2)`` and fsync, so it scales as far as the write share of a chunk
allows; the pure writer is shown for comparison. Repeats are interleaved
(contenders and thread counts rotated, ``sessionwal.bench.timing.interleave``)
and the median is reported.

    python benches/bench_threads.py --quick
    python benches/bench_threads.py --threads 1,2,4 --chunks 200 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sessionwal
import sessionwal.pure
from sessionwal import Session
from sessionwal.bench.timing import gc_off, interleave, machine_info
from sessionwal.bench.workloads import WORKLOADS

WRITERS = {"pure": sessionwal.pure.SessionWriter, "native": sessionwal.SessionWriter}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(
    cls: type, rows_per_thread: list[list[Any]], workdir: Path, sync: str
) -> tuple[float, float]:
    """(seconds, CPU seconds) for all threads to write their rows, each with its own writer.

    CPU seconds over wall seconds is how many cores the process kept busy:
    it shows the parallelism even when other processes take the cores.
    """
    n = len(rows_per_thread)
    writers = [cls(Session(id=f"t{t}"), path=workdir / f"t{t}.jsonl", sync=sync) for t in range(n)]
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        write = writers[t].write_chunk
        barrier.wait()
        try:
            for index, row in enumerate(rows_per_thread[t]):
                write(index, row)
        except BaseException as exc:  # re-raised by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    with gc_off():
        barrier.wait()
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    for writer in writers:
        writer.close()
        os.unlink(writer.path)
    if errors:
        raise errors[0]
    return elapsed, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--chunks", type=int, help="chunks per thread (default 150, quick 40)")
    parser.add_argument("--repeats", type=int, help="default 7, quick 3")
    parser.add_argument("--workload", default="large", choices=sorted(WORKLOADS))
    parser.add_argument("--sync", default="never", help="sync mode of every writer")
    parser.add_argument("--dir", help="directory for the session files")
    parser.add_argument("--json", help="write the samples to this file")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.threads.split(",")]
    chunks = args.chunks or (40 if args.quick else 150)
    repeats = args.repeats or (3 if args.quick else 7)

    rows = WORKLOADS[args.workload](chunks * max(counts), 0)
    per_thread = {n: [rows[t * chunks : (t + 1) * chunks] for t in range(n)] for n in counts}
    sample = sessionwal.SessionWriter  # bytes per chunk, as written
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        probe = Path(tmp) / "probe.jsonl"
        with sample(Session(id="probe"), path=probe) as writer:
            writer.write_chunks(enumerate(rows[:chunks]))
        bytes_per_chunk = probe.stat().st_size / chunks

        def one_pass(run: str, warm_up: bool) -> tuple[float, float]:
            name, _, n = run.partition(" x")
            return run_once(WRITERS[name], per_thread[int(n)], Path(tmp), args.sync)

        def progress(message: str) -> None:
            print(f"  {message}", file=sys.stderr, flush=True)

        runs = [f"{name} x{n}" for name in WRITERS for n in counts]
        samples = interleave(runs, repeats, one_pass, progress, label=args.workload)
        seconds = {run: [elapsed for elapsed, _ in got] for run, got in samples.items()}
        cores = {run: [cpu / elapsed for elapsed, cpu in got] for run, got in samples.items()}

    info = machine_info()
    print(f"python {info['python']}, {info['cpu_count']} CPUs, {info['platform']}")
    print()
    print(
        "| threads, own writers | pure MB/s | native MB/s | native scaling "
        "| cores busy pure | cores busy native |"
    )
    print("|---|---|---|---|---|---|")
    report: dict[str, Any] = {"machine": info, "chunks_per_thread": chunks, "runs": []}
    base = None
    for n in counts:
        total = n * chunks * bytes_per_chunk / 1e6
        rate = {name: total / statistics.median(seconds[f"{name} x{n}"]) for name in WRITERS}
        base = base or rate["native"]
        busy = {name: statistics.median(cores[f"{name} x{n}"]) for name in WRITERS}
        print(
            f"| {n} | {rate['pure']:.0f} | {rate['native']:.0f} | {rate['native'] / base:.2f}x "
            f"| {busy['pure']:.2f} | {busy['native']:.2f} |"
        )
        report["runs"].append(
            {
                "threads": n,
                "mb_per_s": rate,
                "cores_busy": busy,
                "seconds": {k: seconds[f"{k} x{n}"] for k in WRITERS},
            }
        )
    print()
    print(
        f"{args.workload}: {chunks} chunks of ~{bytes_per_chunk / 1024:.0f} KiB per thread, "
        f"sync={args.sync!r}; median of {repeats} interleaved repeats; "
        "scaling is native MB/s over native MB/s with 1 thread; cores busy is process CPU "
        "time over wall time (the GIL caps it near 1)."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
