"""``sessionwal bench``: the writers table, identity check and streaming memory check.

Run it as ``sessionwal bench --quick``, ``python -m sessionwal.bench`` or
``python benches/bench_writers.py``; ``--help`` lists the options. It prints
the table, whether every file was byte-identical, the targets met or missed,
and the streaming check; with ``--json`` it also saves every sample.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sessionwal.bench.identity import OutputMismatch, check_identity
from sessionwal.bench.timing import load_native, machine_info, native_label
from sessionwal.bench.workloads import WORKLOADS
from sessionwal.bench.writers import (
    StreamResult,
    WorkloadResult,
    available_contenders,
    evaluate_targets,
    markdown_table,
    plot,
    run_workload,
    stream_rss,
)

__all__ = ["DEFAULT_CHUNKS", "QUICK_CHUNKS", "build_parser", "main"]

DEFAULT_CHUNKS = {"chat": 10_000, "deltas": 50_000, "large": 400}
QUICK_CHUNKS = {"chat": 2_000, "deltas": 10_000, "large": 48}


def _parse_chunks(text: str | None, quick: bool) -> dict[str, int]:
    """``N`` for every workload, or ``name=N,...`` over the defaults; ValueError if malformed."""
    counts = dict(QUICK_CHUNKS if quick else DEFAULT_CHUNKS)
    if text:
        if "=" not in text:
            text = ",".join(f"{name}={text}" for name in counts)
        for part in text.split(","):
            key, _, value = part.partition("=")
            if key.strip() not in counts:
                raise ValueError(f"unknown workload {key.strip()!r}")
            counts[key.strip()] = int(value)
    if any(n < 1 for n in counts.values()):
        raise ValueError("chunk counts must be positive")
    return counts


def _progress(enabled: bool) -> Callable[[str], None]:
    """On a terminal, one line rewritten in place; in a log, one line per phase."""
    tty = sys.stderr.isatty()
    last_phase = [""]

    def report(message: str) -> None:
        if not enabled:
            return
        if tty:
            sys.stderr.write(f"\r\x1b[K{message}")
        elif (phase := message.partition(":")[0]) != last_phase[0]:
            last_phase[0] = phase
            sys.stderr.write(f"{message}\n")
        sys.stderr.flush()

    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwal bench", description="Native vs pure-Python sessionwal writers (µs/chunk)."
    )
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes (< 20 s)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 9, quick 5)")
    parser.add_argument("--chunks", help="chunks per workload: N for all, or chat=N,large=M")
    parser.add_argument("--workloads", default="chat,deltas,large", help="comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart (needs matplotlib)")
    parser.add_argument(
        "--stream-mib",
        type=float,
        help="streaming memory check size "
        "(default 64, quick 16; 1024 for the 1 GiB target; 0 skips)",
    )
    parser.add_argument("--dir", help="directory for temporary files (default: system temp)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 2 on bad arguments.

    Raises :class:`OutputMismatch` if native and pure wrote different bytes,
    after printing (and saving) every timing: the numbers help find the bug,
    but they are not a result.
    """
    args = build_parser().parse_args(argv)
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        print(
            f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}",
            file=sys.stderr,
        )
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install 'sessionwal[plot]'", file=sys.stderr)
            return 2
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 9)
    if repeats < 1:
        print("--repeats must be at least 1", file=sys.stderr)
        return 2
    try:
        counts = _parse_chunks(args.chunks, args.quick)
    except ValueError as exc:
        print(f"--chunks {args.chunks!r}: {exc}", file=sys.stderr)
        return 2
    stream_mib = args.stream_mib if args.stream_mib is not None else (16 if args.quick else 64)
    progress = _progress(not args.quiet)
    native = load_native()
    contenders = available_contenders(native)
    info = machine_info()
    print(
        f"python {info['python']} ({info['implementation']}), {info['cpu_count']} CPUs, "
        f"{info['platform']}, orjson {info['orjson'] or 'not installed'}, "
        f"native {native_label(native)}"
    )
    report: dict[str, Any] = {
        "machine": info,
        "repeats": repeats,
        "seed": args.seed,
        "contenders": contenders,
        "results": [],
    }
    stream: StreamResult | None = None
    if stream_mib > 0:  # first, while the process is small, so ru_maxrss means something
        stream = stream_rss(
            int(stream_mib * (1 << 20)),
            "chat",
            writer="native" if native else "pure",
            workdir=args.dir,
            seed=args.seed,
            progress=progress,
        )
    results: list[WorkloadResult] = []
    mismatches: list[str] = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sessionwal-bench-") as tmp:
        for name in names:
            progress(f"{name}: generating {counts[name]} rows")
            rows = WORKLOADS[name](counts[name], args.seed)
            result = run_workload(name, rows, contenders, repeats, Path(tmp), native, progress)
            progress(f"{name}: checking output identity")
            try:
                result.identity = check_identity(name, rows, native, Path(tmp))
            except OutputMismatch as exc:  # report every workload first, raise at the end
                result.identity = f"MISMATCH: {exc}"
                mismatches.append(str(exc))
            results.append(result)
    if not args.quiet and sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")  # erase the progress line
    print()
    print(markdown_table(results))
    print()
    print(
        f"Median of {repeats} interleaved repeats, µs per chunk, write loop only (GC off); "
        "speedups are pure/contender, 'native vs orjson' is orjson/native (> 1: native faster)."
    )
    print(
        "native runs with sync='never' like pure; the default sync='close' adds only an fsync "
        "at close. orjson+os.write is a speed yardstick only: compact separators, NaN → null, "
        "so its bytes are NOT those of json.dumps."
    )
    for r in results:
        print(f"output identity {r.workload}: {r.identity}")
    targets = evaluate_targets(results)
    for t in targets:
        print(
            f"target {t['workload']}: {t['contender']} ≥ {t['minimum']:g}x {t['baseline']}: "
            f"{t['ratio']:.2f}x {'ok' if t['ok'] else 'MISSED'}"
        )
    if stream is not None:
        print(
            f"stream {stream.bytes_written / (1 << 20):.0f} MiB ({stream.chunks} chunks, "
            f"{stream.writer}) in {stream.seconds:.1f} s: ru_maxrss {stream.maxrss_before_kib} → "
            f"{stream.maxrss_after_kib} KiB, RSS start {stream.rss_start_kib} peak "
            f"{stream.rss_peak_kib} KiB: {'flat' if stream.flat else 'GROWS'}"
        )
    report["results"] = [{**asdict(r), "median_us": r.median_us} for r in results]
    report["targets"] = targets
    report["stream"] = None if stream is None else {**asdict(stream), "flat": stream.flat}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.plot:
        plot(results, args.plot)
    if mismatches:
        raise OutputMismatch("native output differs from pure:\n" + "\n".join(mismatches))
    return 0
