"""Benchmark the asyncio path: per-chunk cost from a coroutine.

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
repeats is reported (``sessionwal.bench.timing``). The run also checks that
``aio`` writes exactly the pure writer's bytes (``sessionwal.bench.identity``).

A second table is the synchronous ``write_chunks`` target: batches of 64
against the pure writer's per-chunk cost (the runner of ``bench_writers.py``).
A third is the fan-out table (``benches/fanout.py``): 1 to 1,000 writers of
one loop, chunks round robin.

    python benches/bench_async.py --quick        # ~1 min on 2 cores
    python benches/bench_async.py                # medians of 7 repeats
    python benches/bench_async.py --json out.json
    python benches/bench_async.py --fanout-only --fanout 1,10,100,1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fanout  # benches/fanout.py: this script's directory is on sys.path

import sessionwal
import sessionwal.pure
from sessionwal import Session
from sessionwal.aio import AsyncSessionWriter
from sessionwal.bench.identity import assert_identical, with_fixed_clock
from sessionwal.bench.timing import FIXED_CREATED, gc_off, interleave, machine_info, medians
from sessionwal.bench.workloads import WORKLOADS
from sessionwal.bench.writers import run_workload

BATCH = 64
QUEUE_SIZE = 1024  # the baseline's asyncio.Queue bound
CONTENDERS = ["pure+to_thread", "native+to_thread", "aio", "aio/64"]
ASYNC_TARGETS = [("chat", "aio", 20.0), ("deltas", "aio", 20.0)]
BATCH_TARGET = ("deltas", "native_batch64", "pure", 15.0)
DEFAULT_CHUNKS = {"chat": 5_000, "deltas": 20_000}
QUICK_CHUNKS = {"chat": 1_500, "deltas": 5_000}
Items = list[tuple[int, Any]]


def _session(path: Path) -> Session:
    return Session(id=path.stem, created_at=FIXED_CREATED)


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


async def _aio_writer(
    path: Path, items: Items, batch: int | None, cls: type = AsyncSessionWriter
) -> int:
    writer = cls(_session(path), path=path, sync="never")
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
    runs = [f"{name} x{producers}" for producers in (1, 16) for name in ("pure+to_thread", "aio")]

    def one_pass(run: str, warm_up: bool) -> float:
        name, _, producers = run.partition(" x")
        chunk = items[:32] if warm_up else items
        path = workdir / f"durable-{name}-{producers}.jsonl"
        elapsed = asyncio.run(_durable(path, chunk, int(producers), name == "aio"))
        path.unlink(missing_ok=True)
        return elapsed / 1000 / len(chunk)

    return medians(interleave(runs, repeats, one_pass))


RUNNERS: dict[str, Callable[[Path, Items], Any]] = {
    "pure+to_thread": lambda p, it: _to_thread_writer(sessionwal.pure.SessionWriter, p, it),
    "native+to_thread": lambda p, it: _to_thread_writer(sessionwal.SessionWriter, p, it),
    "aio": lambda p, it: _aio_writer(p, it, None),
    "aio/64": lambda p, it: _aio_writer(p, it, BATCH),
}


def timed(contender: str, path: Path, items: Items) -> int:
    try:
        with gc_off():
            return asyncio.run(RUNNERS[contender](path, items))
    finally:
        path.unlink(missing_ok=True)


def run_async_workload(
    name: str, items: Items, repeats: int, workdir: Path, progress: Callable[[str], None]
) -> dict[str, list[float]]:
    def one_pass(contender: str, warm_up: bool) -> float:
        path = workdir / f"{name}-{contender.replace('/', '_')}.jsonl"
        chunk = items[: 4 * BATCH] if warm_up else items
        return timed(contender, path, chunk) / 1000 / len(chunk)

    return interleave(CONTENDERS, repeats, one_pass, progress, label=name)


def check_identity(name: str, items: Items, workdir: Path) -> None:
    """aio, aio/64 and pure must write the same bytes, or the timings mean nothing."""
    outputs = {}
    path = workdir / f"identity-{name}.jsonl"
    fixed_aio = with_fixed_clock(AsyncSessionWriter)
    for contender in ("aio", "aio/64"):
        asyncio.run(_aio_writer(path, items, None if contender == "aio" else BATCH, fixed_aio))
        outputs[contender] = path.read_bytes()
        path.unlink()
    with with_fixed_clock(sessionwal.pure.SessionWriter)(_session(path), path=path) as writer:
        for index, row in items:
            writer.write_chunk(index, row)
    outputs["pure"] = path.read_bytes()
    path.unlink()
    assert_identical(name, outputs)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer chunks and repeats")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 7, quick 3)")
    parser.add_argument("--workloads", default="chat,deltas", help="comma-separated")
    parser.add_argument("--json", help="write the samples and medians to this file")
    parser.add_argument("--dir", help="directory for the temporary files")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--fanout",
        default=",".join(map(str, fanout.WRITERS)),
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

    def run_fanout() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-fan-") as tmp:
            chunks = fanout.QUICK_CHUNKS if args.quick else fanout.CHUNKS
            fan = fanout.run_fanout(fanout_counts, chunks, repeats, Path(tmp), progress)
        fanout.print_fanout(fan)
        return fan

    if args.fanout_only:
        fan = run_fanout()
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
            med = medians(samples)
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
        report["fanout"] = run_fanout()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
