"""Benchmark the asyncio path (issue 5, DESIGN §7): per-chunk cost from a coroutine.

Contenders, each writing the same rows into a fresh file from inside one
``asyncio.run`` (``sync="never"`` everywhere, as the pure seed does):

* ``pure+to_thread`` — the common design this replaces: a bounded
  ``asyncio.Queue``, one drain task, ``await asyncio.to_thread(writer.write_chunk,
  i, row)`` per chunk on ``sessionwal.pure.SessionWriter``. The baseline.
* ``native+to_thread`` — the same design over the native sync writer: what is
  left when only the encoder gets faster and the thread hop stays.
* ``aio`` — ``await AsyncSessionWriter.awrite_chunk(i, row)`` per chunk.
* ``aio/64`` — ``await AsyncSessionWriter.awrite_chunks(batch)`` per 64 chunks.

The clock runs from the first chunk until every chunk reached the OS (the
drain task finished, or ``await writer.flush()``), so queued-but-unwritten
work is not counted as done. Contenders are interleaved within each repeat
with the order rotated, the GC is off while timing, and the median of the
repeats is reported. The run also checks that ``aio`` writes exactly the
pure writer's bytes.

A second table is the synchronous ``write_chunks`` target: batches of 64
against the pure writer's per-chunk cost (the runner of ``bench_writers.py``).

    python benches/bench_async.py --quick        # ~1 min on 2 cores
    python benches/bench_async.py                # medians of 7 repeats
    python benches/bench_async.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import sessionwal
import sessionwal.aio
import sessionwal.pure
from sessionwal import Session, records
from sessionwal._native import encode_record
from sessionwal.aio import AsyncSessionWriter
from sessionwal.benchmark import machine_info, run_workload
from sessionwal.workloads import WORKLOADS

BATCH = 64
QUEUE_SIZE = 1024  # the baseline's asyncio.Queue bound
CONTENDERS = ["pure+to_thread", "native+to_thread", "aio", "aio/64"]
ASYNC_TARGETS = [("chat", "aio", 20.0), ("deltas", "aio", 20.0)]
BATCH_TARGET = ("deltas", "native_batch64", "pure", 15.0)
DEFAULT_CHUNKS = {"chat": 5_000, "deltas": 20_000}
QUICK_CHUNKS = {"chat": 1_500, "deltas": 5_000}
_CREATED = datetime(2024, 6, 10, 12, 0, 0, 123456, tzinfo=UTC)
_CLOSED = datetime(2024, 6, 10, 13, 30, 0, 654321, tzinfo=UTC)

Items = list[tuple[int, Any]]


def _session(path: Path) -> Session:
    return Session(id=path.stem, created_at=_CREATED)


async def _to_thread_writer(cls: type, path: Path, items: Items) -> int:
    """The baseline design: bounded queue, drain task, one thread hop per chunk."""
    writer = cls(_session(path), path=path, sync="never")
    queue: asyncio.Queue[tuple[int, Any] | None] = asyncio.Queue(maxsize=QUEUE_SIZE)

    async def drain() -> None:
        while (item := await queue.get()) is not None:
            await asyncio.to_thread(writer.write_chunk, *item)

    await asyncio.to_thread(int)  # start the executor's thread outside the clock
    drainer = asyncio.create_task(drain())
    start = time.perf_counter_ns()
    for item in items:
        await queue.put(item)
    await queue.put(None)
    await drainer
    elapsed = time.perf_counter_ns() - start
    writer.close()
    return elapsed


async def _aio_writer(path: Path, items: Items, batch: int | None) -> int:
    writer = AsyncSessionWriter(_session(path), path=path, sync="never")
    start = time.perf_counter_ns()
    if batch is None:
        write = writer.awrite_chunk
        for index, row in items:
            await write(index, row)
    else:
        write_many = writer.awrite_chunks
        for i in range(0, len(items), batch):
            await write_many(items[i : i + batch])
    await writer.flush()
    elapsed = time.perf_counter_ns() - start
    await writer.aclose()
    return elapsed


async def _durable(path: Path, items: Items, producers: int, native: bool) -> int:
    """``sync="always"``: every producer awaits each of its chunks until it is on disk.

    The to_thread design has to serialize its writer (an ``asyncio.Lock``)
    and pays write + fdatasync + a thread hop per chunk; the asyncio writer
    lets concurrent producers share one write and one fdatasync.
    """
    if native:
        writer: Any = AsyncSessionWriter(_session(path), path=path, sync="always")
        submit = writer.awrite_chunk
    else:
        writer = sessionwal.pure.SessionWriter(_session(path), path=path, sync="always")
        lock = asyncio.Lock()

        async def submit(index: int, row: Any) -> None:
            async with lock:
                await asyncio.to_thread(writer.write_chunk, index, row)

        await asyncio.to_thread(int)

    async def produce(share: Items) -> None:
        for index, row in share:
            await submit(index, row)

    start = time.perf_counter_ns()
    await asyncio.gather(*(produce(items[p::producers]) for p in range(producers)))
    elapsed = time.perf_counter_ns() - start
    if native:
        await writer.aclose()
    else:
        writer.close()
    return elapsed


def run_durable(items: Items, repeats: int, workdir: Path) -> dict[str, float]:
    """Median µs per chunk under ``sync="always"`` with 1 and 16 producer tasks."""
    runs = [(native, producers) for producers in (1, 16) for native in (False, True)]
    samples: dict[tuple[bool, int], list[float]] = {run: [] for run in runs}
    for rep in range(repeats):
        for native, producers in runs[rep % len(runs) :] + runs[: rep % len(runs)]:
            path = workdir / f"durable-{native}-{producers}.jsonl"
            elapsed = asyncio.run(_durable(path, items, producers, native))
            path.unlink(missing_ok=True)
            samples[(native, producers)].append(elapsed / 1000 / len(items))
    return {
        f"{'aio' if native else 'pure+to_thread'} x{producers}": statistics.median(s)
        for (native, producers), s in samples.items()
    }


RUNNERS: dict[str, Callable[[Path, Items], Any]] = {
    "pure+to_thread": lambda p, it: _to_thread_writer(sessionwal.pure.SessionWriter, p, it),
    "native+to_thread": lambda p, it: _to_thread_writer(sessionwal.SessionWriter, p, it),
    "aio": lambda p, it: _aio_writer(p, it, None),
    "aio/64": lambda p, it: _aio_writer(p, it, BATCH),
}


def timed(contender: str, path: Path, items: Items) -> int:
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(RUNNERS[contender](path, items))
    finally:
        gc.enable()
        path.unlink(missing_ok=True)


def run_async_workload(
    name: str, items: Items, repeats: int, workdir: Path, progress: Callable[[str], None]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    for rep in range(-1, repeats):  # -1: an untimed warm-up pass
        shift = rep % len(CONTENDERS)
        for contender in [*CONTENDERS[shift:], *CONTENDERS[:shift]]:
            progress(f"{name}: {'warm-up' if rep < 0 else f'repeat {rep + 1}'} {contender}")
            path = workdir / f"{name}-{contender.replace('/', '_')}.jsonl"
            if rep < 0:
                timed(contender, path, items[: 4 * BATCH])
            else:
                samples[contender].append(timed(contender, path, items) / 1000 / len(items))
    return samples


def check_identity(name: str, items: Items, workdir: Path) -> None:
    """aio, aio/64 and pure must write the same bytes, or the timings mean nothing."""
    outputs = {}
    with mock.patch.object(records, "now_utc", lambda: _CLOSED):
        for contender in ("aio", "aio/64"):
            path = workdir / f"identity-{name}.jsonl"
            asyncio.run(_aio_writer(path, items, None if contender == "aio" else BATCH))
            outputs[contender] = path.read_bytes()
            path.unlink()
        path = workdir / f"identity-{name}.jsonl"
        with sessionwal.pure.SessionWriter(_session(path), path=path) as writer:
            for index, row in items:
                writer.write_chunk(index, row)
        expected = path.read_bytes()
        path.unlink()
    for contender, data in outputs.items():
        if data != expected:
            raise AssertionError(f"{name}: {contender} wrote different bytes than pure")


# ------------------------------------------------------------------ fan-out
#
# A runtime streams many sessions at once, their chunks interleaved at token
# granularity: N writers open, chunk j going to writer j % N. Per contender,
# µs per chunk from the first chunk until every writer's bytes are in the OS,
# the threads in the process at that point, and RSS.

FANOUT_WRITERS = [1, 10, 100, 1000]
FANOUT_CONTENDERS = ["aio", "drain+pure", "sync", "write(2)"]
FANOUT_CHUNKS = {"chat": 5_000, "deltas": 20_000}
QUICK_FANOUT_CHUNKS = {"chat": 2_000, "deltas": 10_000}


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"{needed} descriptors needed, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _fan_aio(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    writers = [
        AsyncSessionWriter(
            _session(workdir / f"w{k}.jsonl"), path=workdir / f"w{k}.jsonl", sync="never"
        )
        for k in range(n)
    ]
    start = time.perf_counter_ns()
    for j, (index, row) in enumerate(items):
        await writers[j % n].awrite_chunk(index, row)
    for writer in writers:
        await writer.flush()
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    await asyncio.gather(*(w.aclose() for w in writers))
    return elapsed, threads


async def _fan_drain(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    """OpenRath-style: per session a bounded queue and a drain task doing to_thread."""
    writers = [
        sessionwal.pure.SessionWriter(
            _session(workdir / f"w{k}.jsonl"), path=workdir / f"w{k}.jsonl", sync="never"
        )
        for k in range(n)
    ]
    queues: list[asyncio.Queue[tuple[int, Any] | None]] = [
        asyncio.Queue(maxsize=QUEUE_SIZE) for _ in range(n)
    ]

    async def drain(writer: Any, queue: asyncio.Queue[tuple[int, Any] | None]) -> None:
        while (item := await queue.get()) is not None:
            await asyncio.to_thread(writer.write_chunk, *item)

    await asyncio.to_thread(int)
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


async def _fan_sync(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    """The native synchronous writer called from the loop (blocks it; a reference)."""
    writers = [
        sessionwal.SessionWriter(
            _session(workdir / f"w{k}.jsonl"), path=workdir / f"w{k}.jsonl", sync="never"
        )
        for k in range(n)
    ]
    start = time.perf_counter_ns()
    for j, (index, row) in enumerate(items):
        writers[j % n].write_chunk(index, row)
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    for writer in writers:
        writer.close()
    return elapsed, threads


async def _fan_floor(workdir: Path, n: int, items: Items) -> tuple[int, int]:
    """One write(2) of one pre-encoded record per chunk, round robin: the floor."""
    lines = [encode_record(sessionwal.build_chunk_record(i, r)) for i, r in items]
    fds = [
        os.open(workdir / f"w{k}.floor", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for k in range(n)
    ]
    write = os.write
    start = time.perf_counter_ns()
    for j, line in enumerate(lines):
        write(fds[j % n], line)
    elapsed = time.perf_counter_ns() - start
    threads = _threads()
    for fd in fds:
        os.close(fd)
    return elapsed, threads


FANOUT_RUNNERS: dict[str, Callable[[Path, int, Items], Any]] = {
    "aio": _fan_aio,
    "drain+pure": _fan_drain,
    "sync": _fan_sync,
    "write(2)": _fan_floor,
}


def _fan_timed(contender: str, workdir: Path, n: int, items: Items) -> tuple[float, int]:
    rundir = workdir / f"fan-{contender.replace('+', '_').replace('(2)', '')}-{n}"
    rundir.mkdir()
    gc.collect()
    gc.disable()
    try:
        elapsed, threads = asyncio.run(FANOUT_RUNNERS[contender](rundir, n, items))
    finally:
        gc.enable()
        shutil.rmtree(rundir)
    return elapsed / 1000 / len(items), threads


def check_fanout_identity(workdir: Path, n: int, items: Items) -> None:
    """Every aio file of the fan-out must hold the sync writer's bytes."""
    with mock.patch.object(records, "now_utc", lambda: _CLOSED):
        aio_dir, sync_dir = workdir / "id-aio", workdir / "id-sync"
        aio_dir.mkdir()
        sync_dir.mkdir()
        asyncio.run(_fan_aio(aio_dir, n, items))
        asyncio.run(_fan_sync(sync_dir, n, items))
        for k in range(n):
            name = f"w{k}.jsonl"
            if (aio_dir / name).read_bytes() != (sync_dir / name).read_bytes():
                raise AssertionError(f"fan-out {n}: {name} differs from the sync writer's")
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
    cls = AsyncSessionWriter if kind == "aio" else sessionwal.SessionWriter
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


def measure_open(workdir: Path, n: int) -> dict[str, float]:
    """µs per open (header written) and RSS per idle open writer, sync and aio.

    Each in a fresh interpreter, so memory freed by earlier runs does not
    hide what the writers take; the median of three.
    """
    results: dict[str, list[dict[str, float]]] = {"sync": [], "aio": []}
    for _ in range(3):
        for kind in results:
            d = workdir / f"open-{kind}"
            d.mkdir()
            out = subprocess.run(
                [sys.executable, "-c", IDLE_PROBE, kind, str(n), str(d)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[kind].append(json.loads(out))
            shutil.rmtree(d)
    return {
        f"{kind} {key}": statistics.median(r[key] for r in runs)
        for kind, runs in results.items()
        for key in ("open_us", "idle_kib")
    }


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
            progress(f"fan-out {name}: {n} writers, identity")
            check_fanout_identity(workdir, n, items)
            samples: dict[str, list[float]] = {c: [] for c in FANOUT_CONTENDERS}
            threads: dict[str, int] = {}
            for rep in range(repeats):
                shift = rep % len(FANOUT_CONTENDERS)
                for contender in [*FANOUT_CONTENDERS[shift:], *FANOUT_CONTENDERS[:shift]]:
                    progress(f"fan-out {name}: {n} writers, repeat {rep + 1} {contender}")
                    us, threads[contender] = _fan_timed(contender, workdir, n, items)
                    samples[contender].append(us)
            per_workload[str(n)] = {
                "chunks": len(items),
                "median_us": {c: statistics.median(s) for c, s in samples.items()},
                "samples_us": samples,
                "threads": threads,
            }
        report["workloads"][name] = per_workload
    progress("open cost and idle memory")
    report["open"] = measure_open(workdir, min(max(counts), 1000))
    report["io_threads"] = sessionwal.aio.io_threads()
    return report


def print_fanout(report: dict[str, Any]) -> None:
    print()
    print(
        "| workload | writers | chunks | aio µs | drain+pure µs | sync µs | write(2) floor µs "
        "| aio vs 1 writer | aio threads | drain+pure threads |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, per in report["workloads"].items():
        one = per[str(report["writers"][0])]["median_us"]["aio"]
        for n, run in per.items():
            med = run["median_us"]
            print(
                f"| {name} | {int(n):,} | {run['chunks']} | {_fmt(med['aio'])} "
                f"| {_fmt(med['drain+pure'])} | {_fmt(med['sync'])} | {_fmt(med['write(2)'])} "
                f"| {med['aio'] / one:.2f}x "
                f"| {run['threads']['aio']} | {run['threads']['drain+pure']} |"
            )
    o = report["open"]
    print()
    print(
        f"open: aio {o['aio open_us']:.0f} µs, sync {o['sync open_us']:.0f} µs; idle writer RSS: "
        f"aio {o['aio idle_kib']:.1f} KiB, sync {o['sync idle_kib']:.1f} KiB "
        f"(+ one descriptor each); {report['io_threads']} I/O threads"
    )


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer chunks and repeats")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 7, quick 3)")
    parser.add_argument("--workloads", default="chat,deltas", help="comma-separated")
    parser.add_argument("--json", help="write the samples and medians to this file")
    parser.add_argument("--dir", help="directory for the temporary files")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--fanout",
        default=",".join(map(str, FANOUT_WRITERS)),
        help="writer counts of the fan-out table (e.g. 1,10,100,1000,10000); empty skips it",
    )
    parser.add_argument("--fanout-only", action="store_true", help="only the fan-out table")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    counts = QUICK_CHUNKS if args.quick else DEFAULT_CHUNKS
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr, flush=True)

    info = machine_info()
    print(f"python {info['python']}, {info['cpu_count']} CPUs, {info['platform']}")
    fanout_counts = [int(n) for n in args.fanout.split(",") if n.strip()]
    if args.fanout_only:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-fan-") as tmp:
            fan = run_fanout(
                fanout_counts,
                QUICK_FANOUT_CHUNKS if args.quick else FANOUT_CHUNKS,
                repeats,
                Path(tmp),
                progress,
            )
        print_fanout(fan)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"machine": info, "fanout": fan}, indent=2) + "\n"
            )
        return 0
    report: dict[str, Any] = {"machine": info, "repeats": repeats, "async": {}, "targets": []}
    table = [
        "| workload | chunks | " + " | ".join(f"{c} µs" for c in CONTENDERS) + " | aio speedup |"
        " aio/64 speedup |",
        "|" + "---|" * (len(CONTENDERS) + 4),
    ]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-async-") as tmp:
        workdir = Path(tmp)
        for name in names:
            items = list(enumerate(WORKLOADS[name](counts.get(name, 5_000), 0)))
            check_identity(name, items, workdir)
            samples = run_async_workload(name, items, repeats, workdir, progress)
            med = {c: statistics.median(s) for c, s in samples.items()}
            base = med["pure+to_thread"]
            table.append(
                f"| {name} | {len(items)} | "
                + " | ".join(_fmt(med[c]) for c in CONTENDERS)
                + f" | {base / med['aio']:.1f}x | {base / med['aio/64']:.1f}x |"
            )
            report["async"][name] = {"samples_us": samples, "median_us": med}
            for workload, contender, minimum in ASYNC_TARGETS:
                if workload == name:
                    ratio = base / med[contender]
                    report["targets"].append(
                        {
                            "target": f"{name}: {contender} >= {minimum:g}x pure+to_thread",
                            "ratio": ratio,
                            "ok": ratio >= minimum,
                        }
                    )
        workload, contender, baseline, minimum = BATCH_TARGET
        rows = WORKLOADS[workload](counts[workload] * 2, 0)
        progress(f"{workload}: write_chunks batches of {BATCH} vs pure per chunk")
        batch = run_workload(
            workload,
            rows,
            ["pure", "native", contender],
            repeats,
            workdir,
            sessionwal.SessionWriter,
        )
        bmed = batch.median_us
        ratio = bmed[baseline] / bmed[contender]
        report["batch"] = {"workload": workload, "chunks": len(rows), "median_us": bmed}
        report["targets"].append(
            {
                "target": f"{workload}: write_chunks/{BATCH} >= {minimum:g}x pure per chunk",
                "ratio": ratio,
                "ok": ratio >= minimum,
            }
        )
    print()
    print("\n".join(table))
    print()
    print(
        f"Median of {repeats} interleaved repeats, µs per chunk from the first chunk until all "
        "reached the OS; speedups are pure+to_thread / contender."
    )
    print()
    print(f"| sync, {workload} ({len(rows)} chunks) | pure µs | native µs | native/{BATCH} µs |")
    print("|---|---|---|---|")
    print(
        f"| µs per chunk | {_fmt(bmed['pure'])} | {_fmt(bmed['native'])} "
        f"| {_fmt(bmed[contender])} |"
    )
    print()
    for target in report["targets"]:
        print(
            f"target {target['target']}: {target['ratio']:.1f}x "
            f"{'ok' if target['ok'] else 'MISSED'}"
        )
    durable_items = list(enumerate(WORKLOADS["chat"](200 if args.quick else 400, 1)))
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-durable-") as tmp:
        progress("chat: sync='always', 1 and 16 producers")
        durable = run_durable(durable_items, repeats, Path(tmp))
    report["durable"] = durable
    print()
    print(
        f"| sync='always', chat ({len(durable_items)} chunks) | 1 producer µs | 16 producers µs |"
    )
    print("|---|---|---|")
    for name in ("pure+to_thread", "aio"):
        print(f"| {name} | {_fmt(durable[f'{name} x1'])} | {_fmt(durable[f'{name} x16'])} |")
    print()
    print(
        "Every producer awaits each chunk until it is fdatasync'ed; the to_thread writer is "
        "serialized by an asyncio.Lock, the asyncio writer shares writes between producers."
    )
    if fanout_counts:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-fan-") as tmp:
            report["fanout"] = run_fanout(
                fanout_counts,
                QUICK_FANOUT_CHUNKS if args.quick else FANOUT_CHUNKS,
                repeats,
                Path(tmp),
                progress,
            )
        print_fanout(report["fanout"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
