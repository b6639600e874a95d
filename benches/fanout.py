"""The fan-out table of ``bench_async.py`` (issue 17): many writers, one loop.

A runtime streams many sessions at once, their chunks interleaved at token
granularity: N writers open, chunk j going to writer j % N. Per contender,
µs per chunk from the first chunk until every writer's bytes are in the OS,
and the threads in the process at that point:

* ``aio`` — ``await AsyncSessionWriter.awrite_chunk`` on writer j % N, then
  ``flush()`` of every writer.
* ``drain+pure`` — the anchor, OpenRath's design: per session a bounded
  ``asyncio.Queue`` and a drain task doing ``await asyncio.to_thread(
  writer.write_chunk, ...)`` on the pure writer.
* ``sync`` — the native synchronous writer called from the loop (it blocks
  the loop; the reference for what the file layer costs).
* ``write(2)`` — one ``os.write`` of one pre-encoded record per chunk, round
  robin over the same number of files: the floor of writing each record as
  it comes.

Every aio file is checked byte for byte against the sync writer's in the
same run. Open cost and RSS per idle writer are measured in fresh
interpreters.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sessionwal
import sessionwal.aio
import sessionwal.pure
from sessionwal import Session
from sessionwal._native import encode_record
from sessionwal.aio import AsyncSessionWriter
from sessionwal.bench.identity import assert_identical, with_fixed_clock
from sessionwal.bench.timing import FIXED_CREATED, gc_off, interleave, medians
from sessionwal.bench.workloads import WORKLOADS

WRITERS = [1, 10, 100, 1000]
CONTENDERS = ["aio", "drain+pure", "sync", "write(2)"]
CHUNKS = {"chat": 5_000, "deltas": 20_000}
QUICK_CHUNKS = {"chat": 2_000, "deltas": 10_000}
QUEUE_SIZE = 1024  # the anchor's asyncio.Queue bound, per session
Items = list[tuple[int, Any]]
Runner = Callable[[Path, int, Items], Any]


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"{needed} descriptors needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _paths(workdir: Path, n: int) -> list[tuple[Session, Path]]:
    return [
        (Session(id=f"w{k}", created_at=FIXED_CREATED), workdir / f"w{k}.jsonl") for k in range(n)
    ]


async def _aio(
    workdir: Path, n: int, items: Items, cls: type = AsyncSessionWriter
) -> tuple[int, int]:
    writers = [cls(session, path=path, sync="never") for session, path in _paths(workdir, n)]
    start = time.perf_counter_ns()
    for j, (index, row) in enumerate(items):
        await writers[j % n].awrite_chunk(index, row)
    for writer in writers:
        await writer.flush()
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    await asyncio.gather(*(w.aclose() for w in writers))
    return elapsed, threads


async def _drain(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    writers = [
        sessionwal.pure.SessionWriter(session, path=path, sync="never")
        for session, path in _paths(workdir, n)
    ]
    queues: list[asyncio.Queue[tuple[int, Any] | None]] = [
        asyncio.Queue(maxsize=QUEUE_SIZE) for _ in range(n)
    ]

    async def drain(writer: Any, queue: asyncio.Queue[tuple[int, Any] | None]) -> None:
        while (item := await queue.get()) is not None:
            await asyncio.to_thread(writer.write_chunk, *item)

    await asyncio.to_thread(int)  # start the executor outside the clock
    drainers = [asyncio.create_task(drain(w, q)) for w, q in zip(writers, queues, strict=True)]
    start = time.perf_counter_ns()
    for j, item in enumerate(items):
        await queues[j % n].put(item)
    for queue in queues:
        await queue.put(None)
    await asyncio.gather(*drainers)
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    for writer in writers:
        writer.close()
    return elapsed, threads


async def _sync(
    workdir: Path, n: int, items: Items, cls: type = sessionwal.SessionWriter
) -> tuple[int, int]:
    writers = [cls(session, path=path, sync="never") for session, path in _paths(workdir, n)]
    start = time.perf_counter_ns()
    for j, (index, row) in enumerate(items):
        writers[j % n].write_chunk(index, row)
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    for writer in writers:
        writer.close()
    return elapsed, threads


async def _floor(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    lines = [encode_record(sessionwal.build_chunk_record(i, r)) for i, r in items]
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    fds = [os.open(path, flags, 0o600) for _, path in _paths(workdir, n)]
    write = os.write
    start = time.perf_counter_ns()
    for j, line in enumerate(lines):
        write(fds[j % n], line)
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    for fd in fds:
        os.close(fd)
    return elapsed, threads


RUNNERS: dict[str, Runner] = {"aio": _aio, "drain+pure": _drain, "sync": _sync, "write(2)": _floor}


def check_identity(workdir: Path, n: int, items: Items) -> None:
    """Every aio file must hold the sync writer's bytes, or the timings mean nothing."""
    aio_dir, sync_dir = workdir / "id-aio", workdir / "id-sync"
    aio_dir.mkdir()
    sync_dir.mkdir()
    asyncio.run(_aio(aio_dir, n, items, with_fixed_clock(AsyncSessionWriter)))
    asyncio.run(_sync(sync_dir, n, items, with_fixed_clock(sessionwal.SessionWriter)))
    for k in range(n):
        name = f"w{k}.jsonl"
        outputs = {"sync": (sync_dir / name).read_bytes(), "aio": (aio_dir / name).read_bytes()}
        assert_identical(f"fan-out {n}, {name}", outputs, reference="sync")
    shutil.rmtree(aio_dir)
    shutil.rmtree(sync_dir)


IDLE_PROBE = r"""
import asyncio, gc, json, sys, time
from pathlib import Path
import sessionwal
from sessionwal import Session
from sessionwal.aio import AsyncSessionWriter

kind, n, d = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])

def rss_kib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4

async def main():
    # One writer first: the engine, the loop's doorbell and the imports are
    # not per-writer costs.
    cls = AsyncSessionWriter if kind == "aio" else sessionwal.SessionWriter
    first = cls(Session(id="first"), path=d / "first.jsonl")
    gc.collect()
    before = rss_kib()
    start = time.perf_counter_ns()
    writers = [cls(Session(id=f"o{k}"), path=d / f"o{k}.jsonl") for k in range(n)]
    open_us = (time.perf_counter_ns() - start) / 1000 / n
    idle_kib = (rss_kib() - before) / n
    for w in [first, *writers]:
        if kind == "aio":
            await w.abandon()
        else:
            w.abandon()
    print(json.dumps({"open_us": open_us, "idle_kib": idle_kib}))

asyncio.run(main())
"""


OPEN_PROBE = r"""
import asyncio, json, statistics, sys, time
from pathlib import Path
import sessionwal
from sessionwal import Session
from sessionwal.aio import AsyncSessionWriter

n, d = int(sys.argv[1]), Path(sys.argv[2])

async def main():
    kept = [AsyncSessionWriter(Session(id="first"), path=d / "first.jsonl")]
    times = {"aio": [], "sync": []}
    for k in range(n):  # alternating, so both see the same machine
        for kind, cls in (("aio", AsyncSessionWriter), ("sync", sessionwal.SessionWriter)):
            start = time.perf_counter_ns()
            kept.append(cls(Session(id=f"{kind}{k}"), path=d / f"{kind}{k}.jsonl"))
            times[kind].append(time.perf_counter_ns() - start)
    for w in kept:
        if isinstance(w, AsyncSessionWriter):
            await w.abandon()
        else:
            w.abandon()
    print(json.dumps({f"{kind} open_us": statistics.median(t) / 1000 for kind, t in times.items()}))

asyncio.run(main())
"""


def measure_open(workdir: Path, n: int, rounds: int = 3) -> dict[str, float]:
    """µs per open (header written; paired, alternating, in one fresh
    interpreter) and RSS per idle open writer (sync and aio each in a fresh
    interpreter, so memory freed by earlier runs does not hide what the
    writers take); medians.
    """
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for kind in ("sync", "aio"):
            d = workdir / f"open-{kind}"
            d.mkdir()
            out = subprocess.run(
                [sys.executable, "-c", IDLE_PROBE, kind, str(n), str(d)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results.setdefault(f"{kind} idle_kib", []).append(json.loads(out)["idle_kib"])
            shutil.rmtree(d)
    d = workdir / "open-paired"
    d.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", OPEN_PROBE, str(min(n, 600)), str(d)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shutil.rmtree(d)
    return {**medians(results), **json.loads(out)}


def run_fanout(
    counts: list[int],
    chunks: dict[str, int],
    repeats: int,
    workdir: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    _raise_fd_limit(max(counts) + 256)
    report: dict[str, Any] = {"writers": counts, "workloads": {}}
    for name, total in chunks.items():
        per_workload: dict[str, Any] = {}
        for n in counts:
            # At least ten chunks per writer, so every writer streams.
            items = list(enumerate(WORKLOADS[name](max(total, 10 * n), 0)))
            progress(f"fan-out {name}: {n} writers, byte identity")
            check_identity(workdir, n, items)

            def one_pass(contender: str, warm_up: bool, n: int = n, items: Items = items) -> Any:
                rundir = workdir / "run"
                rundir.mkdir()
                chunk = items[: 2 * n] if warm_up else items
                try:
                    with gc_off():
                        elapsed, threads = asyncio.run(RUNNERS[contender](rundir, n, chunk))
                finally:
                    shutil.rmtree(rundir)
                return elapsed / 1000 / len(chunk), threads

            samples = interleave(CONTENDERS, repeats, one_pass, progress, label=f"{name} x{n}")
            per_workload[str(n)] = {
                "chunks": len(items),
                "median_us": medians({c: [us for us, _ in s] for c, s in samples.items()}),
                "samples_us": {c: [us for us, _ in s] for c, s in samples.items()},
                "threads": {c: max(t for _, t in s) for c, s in samples.items()},
            }
        report["workloads"][name] = per_workload
    progress("open cost and idle memory")
    report["open"] = measure_open(workdir, min(max(counts), 1000))
    report["io_threads"] = sessionwal.aio.io_threads()
    return report


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def print_fanout(report: dict[str, Any]) -> None:
    print()
    print(
        "| workload | writers | chunks | aio µs | drain+pure µs | sync µs | write(2) µs "
        "| aio / 1 writer | aio / write(2) | threads aio | threads drain+pure |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, per in report["workloads"].items():
        one = per[str(report["writers"][0])]["median_us"]["aio"]
        for n, run in per.items():
            med = run["median_us"]
            print(
                f"| {name} | {int(n):,} | {run['chunks']} | {_fmt(med['aio'])} "
                f"| {_fmt(med['drain+pure'])} | {_fmt(med['sync'])} | {_fmt(med['write(2)'])} "
                f"| {med['aio'] / one:.2f}x | {med['aio'] / med['write(2)']:.2f}x "
                f"| {run['threads']['aio']} | {run['threads']['drain+pure']} |"
            )
    o = report["open"]
    print()
    print(
        f"open: aio {o['aio open_us']:.0f} µs, sync {o['sync open_us']:.0f} µs; "
        f"RSS per idle writer: aio {o['aio idle_kib']:.1f} KiB, sync {o['sync idle_kib']:.1f} KiB "
        f"(+ one descriptor each); {report['io_threads'][0]} I/O threads"
    )
