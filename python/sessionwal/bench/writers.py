"""Benchmarks of DESIGN §7: native writer vs the pure-Python reference (and orjson).

Why it is built this way:

* Workloads (:mod:`sessionwal.workloads`) are generated from a seeded
  :class:`random.Random`, so every run and every machine writes the same rows.
* Each timed pass writes rows whose strings were never encoded before (see
  ``_fresh``): that is what a runtime does, and it keeps CPython's cached
  UTF-8 form of a str from flattering one contender.
* All contenders run in one process, interleaved within each repeat with the
  order rotated per repeat, so machine noise (turbo, page cache, neighbours)
  hits all of them alike; the median over repeats is reported. Only the
  ``write_chunk`` loop is timed (not open/close), with the GC disabled.
* Speed without the same bytes is meaningless: the run also checks that pure
  and native produce byte-identical files (timestamps pinned), and raises if not.

Run it as ``python benches/bench_writers.py --quick`` or ``sessionwal bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias
from unittest import mock

from sessionwal.model import ChunkRow, Session, Usage

__all__ = [
    "WORKLOADS",
    "OutputMismatch",
    "StreamResult",
    "WorkloadResult",
    "chat",
    "check_identity",
    "deltas",
    "large",
    "main",
    "run_workload",
    "stream_rss",
]

from sessionwal.workloads import WORKLOADS, chat, deltas, large

DEFAULT_CHUNKS = {"chat": 10_000, "deltas": 50_000, "large": 400}
QUICK_CHUNKS = {"chat": 2_000, "deltas": 10_000, "large": 48}
BATCH = 64
# DESIGN §7 targets: (workload or "*", contender, baseline, minimum baseline/contender ratio).
TARGETS = [
    ("chat", "native", "pure", 5.0),
    ("deltas", "native", "pure", 4.0),
    ("large", "native", "pure", 4.0),
    ("deltas", "native_batch64", "pure", 15.0),
    ("*", "native", "orjson", 1.0),
]
_Items: TypeAlias = list[tuple[int, ChunkRow]]
_FIXED_CREATED = datetime(2024, 6, 10, 12, 0, 0, 123456, tzinfo=UTC)
_FIXED_CLOSED = datetime(2024, 6, 10, 13, 30, 0, 654321, tzinfo=UTC)


class OutputMismatch(AssertionError):
    """Pure and native wrote different bytes for the same session: the speed is void."""


def load_native() -> type | None:
    """The native ``sessionwal.SessionWriter``, or None if it is not importable.

    Imported lazily: this module must stay importable (and its generators
    testable) while the extension is not built. A package that falls back to
    the pure class is not "native" either.
    """
    try:
        import sessionwal
        from sessionwal import pure
    except ImportError:
        return None
    cls = getattr(sessionwal, "SessionWriter", None)
    return None if cls is None or cls is pure.SessionWriter else cls


def _pure_cls() -> type:
    from sessionwal import pure

    return pure.SessionWriter


@contextlib.contextmanager
def _gc_off() -> Iterator[None]:
    """Collect first, then keep the collector out of the timed loop."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _timed_writer(cls: type, path: Path, items: _Items, batches: list[_Items] | None) -> int:
    """Nanoseconds spent in the write loop of one writer over one fresh file."""
    writer = cls(Session(id=path.stem, created_at=_FIXED_CREATED), path=path, sync="never")
    try:
        with _gc_off():
            if batches is not None:
                write_many = writer.write_chunks
                start = time.perf_counter_ns()
                for batch in batches:
                    write_many(batch)
            else:
                write = writer.write_chunk
                start = time.perf_counter_ns()
                for index, row in items:
                    write(index, row)
            elapsed = time.perf_counter_ns() - start
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    return elapsed


def _timed_orjson(path: Path, items: _Items) -> int:
    """The hand-rolled yardstick: same record dict, ``orjson.dumps`` + one ``os.write``.

    Not byte-identical to json.dumps (compact separators, NaN → null): speed only.
    """
    import orjson

    from sessionwal.records import build_chunk_record

    dumps, option, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, os.write
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with _gc_off():
            start = time.perf_counter_ns()
            for index, row in items:
                write(fd, dumps(build_chunk_record(index, row), option=option))
            return time.perf_counter_ns() - start
    finally:
        os.close(fd)


def _fresh(value: Any) -> Any:
    """A deep copy with new ``str`` objects.

    CPython caches a string's UTF-8 form the first time an encoder asks for
    it (``PyUnicode_AsUTF8AndSize``, which orjson uses), so re-encoding the
    same row objects every repeat would time a cache hit that a runtime,
    which encodes each chunk once, never gets. Every timed pass therefore
    encodes strings nobody has encoded before.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        return {_fresh(k): _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def _fresh_items(items: _Items) -> _Items:
    return [(index, ChunkRow(row.kind, _fresh(row.payload))) for index, row in items]


def available_contenders(native: type | None) -> list[str]:
    """Contenders that can run here, in table order."""
    names = ["pure"]
    if native is not None:
        names.append("native")
        if hasattr(native, "write_chunks"):
            names.append("native_batch64")
    if importlib.util.find_spec("orjson") is not None:
        names.append("orjson")
    return names


@dataclass
class WorkloadResult:
    """Per-workload timings; ``samples_us`` holds µs per chunk of every repeat."""

    workload: str
    chunks: int
    bytes_per_line: float
    samples_us: dict[str, list[float]] = field(default_factory=dict)
    identity: str = "not checked"

    @property
    def median_us(self) -> dict[str, float]:
        return {name: statistics.median(s) for name, s in self.samples_us.items() if s}

    def ratio(self, baseline: str, contender: str) -> float | None:
        """``baseline / contender`` medians: > 1 means the contender is faster."""
        med = self.median_us
        if baseline in med and contender in med and med[contender] > 0:
            return med[baseline] / med[contender]
        return None


def _line_bytes(rows: Sequence[ChunkRow]) -> float:
    from sessionwal.records import build_chunk_record

    total = sum(
        len(json.dumps(build_chunk_record(i, r), ensure_ascii=False).encode()) + 1
        for i, r in enumerate(rows)
    )
    return total / max(1, len(rows))


def run_workload(
    name: str,
    rows: list[ChunkRow],
    contenders: Sequence[str],
    repeats: int,
    workdir: Path,
    native: type | None = None,
    progress: Callable[[str], None] | None = None,
) -> WorkloadResult:
    """Time every contender over ``rows``, interleaved and rotated per repeat.

    One untimed warm-up pass over the first rows comes first, so lazy imports
    and cold caches do not land on whichever contender happens to run first.
    """
    items = list(enumerate(rows))
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    pure = _pure_cls()
    runners: dict[str, Callable[[Path, _Items, list[_Items]], int]] = {
        "pure": lambda p, it, _b: _timed_writer(pure, p, it, None),
        "native": lambda p, it, _b: _timed_writer(native, p, it, None),  # type: ignore[arg-type]
        "native_batch64": lambda p, it, b: _timed_writer(native, p, it, b),  # type: ignore[arg-type]
        "orjson": lambda p, it, _b: _timed_orjson(p, it),
    }
    result = WorkloadResult(name, len(rows), _line_bytes(rows), {c: [] for c in contenders})
    for rep in range(-1, repeats):
        shift = rep % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            if progress:
                step = "warm-up" if rep < 0 else f"repeat {rep + 1}/{repeats}"
                progress(f"{name}: {step} {contender}")
            path = workdir / f"{name}-{contender}-{rep}.jsonl"
            if rep < 0:
                runners[contender](path, items[: 4 * BATCH], batches[:4])
            else:
                fresh = _fresh_items(items)
                fresh_batches = [fresh[i : i + BATCH] for i in range(0, len(fresh), BATCH)]
                elapsed = runners[contender](path, fresh, fresh_batches)
                result.samples_us[contender].append(elapsed / 1000 / max(1, len(rows)))
            path.unlink(missing_ok=True)
    return result


def _identity_session(workload: str) -> Session:
    return Session(
        id=f"identity-{workload}",
        created_at=_FIXED_CREATED,
        parent_session_ids=["parent-0"],
        lineage_operator="fork",
        lineage_kind="branch",
        lineage_extras={"depth": 2, "note": "ünïcode ✅"},
        sandbox_backend="docker",
        sandbox_spec={"image": "python:3.11", "cpus": 2.0},
        usage=Usage(prompt_tokens=1234, completion_tokens=567),
    )


def check_identity(workload: str, rows: list[ChunkRow], native: type | None, workdir: Path) -> str:
    """Write ``rows`` with pure, native and native ``write_chunks``; raise unless identical.

    ``created_at`` comes from the Session and ``closed_at`` from the patched
    ``sessionwal.records.now_utc``, so the files must match byte for byte.
    """
    if native is None:
        return "skipped (native writer not importable)"
    from sessionwal import records

    variants = {"pure": (_pure_cls(), False), "native": (native, False)}
    if hasattr(native, "write_chunks"):
        variants["native_batch64"] = (native, True)
    outputs: dict[str, bytes] = {}
    with mock.patch.object(records, "now_utc", lambda: _FIXED_CLOSED):
        for name, (cls, batched) in variants.items():
            path = workdir / name / f"identity-{workload}.jsonl"
            path.parent.mkdir(exist_ok=True)
            writer = cls(_identity_session(workload), sandbox_handle_id="sbx-42", path=path)
            items = list(enumerate(rows))
            if batched:
                for i in range(0, len(items), BATCH):
                    writer.write_chunks(items[i : i + BATCH])
            else:
                for index, row in items:
                    writer.write_chunk(index, row)
            writer.close()
            outputs[name] = path.read_bytes()
            path.unlink()
    expected = outputs["pure"].splitlines(keepends=True)
    for name, data in outputs.items():
        if data == outputs["pure"]:
            continue
        got = data.splitlines(keepends=True)
        line = next(
            (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
            min(len(expected), len(got)),
        )
        want = expected[line] if line < len(expected) else b"<EOF>"
        have = got[line] if line < len(got) else b"<EOF>"
        col = next(
            (i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b),
            min(len(want), len(have)),
        )
        lo = max(0, col - 60)
        raise OutputMismatch(
            f"{workload}: {name} differs from pure at line {line + 1}, byte "
            f"{col}:\n  pure:   {want[lo : col + 60]!r}\n"
            f"  {name}: {have[lo : col + 60]!r}"
        )
    return "identical"


@dataclass
class StreamResult:
    """Memory of one long streaming run; sizes in KiB (``rss_*`` sampled from /proc)."""

    writer: str
    workload: str
    bytes_written: int
    chunks: int
    seconds: float
    maxrss_before_kib: int
    maxrss_after_kib: int
    rss_start_kib: int | None
    rss_peak_kib: int | None

    @property
    def flat(self) -> bool:
        """Flat = the run grew the process by < 16 MiB, whatever it wrote."""
        if self.rss_start_kib is not None and self.rss_peak_kib is not None:
            return self.rss_peak_kib - self.rss_start_kib < 16 * 1024
        return self.maxrss_after_kib - self.maxrss_before_kib < 16 * 1024


def _maxrss_kib() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # macOS reports bytes


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


def stream_rss(
    total_bytes: int,
    workload: str = "chat",
    *,
    writer: str = "native",
    workdir: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> StreamResult:
    """Stream ``total_bytes`` of ``workload`` rows into one session and watch memory.

    ``ru_maxrss`` alone is a high-water mark of the whole process, so current
    RSS is also sampled during the run: that shows growth even after an
    earlier, larger peak.
    """
    cls = _pure_cls() if writer == "pure" else load_native()
    if cls is None:
        raise RuntimeError("native writer not importable; build it or pass writer='pure'")
    rows = WORKLOADS[workload](256, seed)
    step = max(1, (1 << 20) // int(_line_bytes(rows[:32]) or 1))  # stat about once per MiB
    with tempfile.TemporaryDirectory(dir=workdir, prefix="sessionwal-stream-") as tmp:
        path = Path(tmp) / "stream.jsonl"
        gc.collect()
        before, start_rss = _maxrss_kib(), _rss_kib()
        peak_rss = start_rss
        w = cls(Session(id="stream", created_at=_FIXED_CREATED), path=path, sync="never")
        index, size, t0 = 0, 0, time.perf_counter()
        while size < total_bytes:
            for _ in range(step):
                w.write_chunk(index, rows[index % len(rows)])
                index += 1
            size = os.stat(w.partial_path).st_size
            rss = _rss_kib()
            if rss is not None and peak_rss is not None:
                peak_rss = max(peak_rss, rss)
            if progress:
                progress(f"streaming: {size >> 20}/{total_bytes >> 20} MiB")
        w.close()
        seconds = time.perf_counter() - t0
    return StreamResult(
        writer, workload, size, index, seconds, before, _maxrss_kib(), start_rss, peak_rss
    )


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare two runs."""
    try:
        orjson_version: str | None = importlib.metadata.version("orjson")
    except importlib.metadata.PackageNotFoundError:
        orjson_version = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "orjson": orjson_version,
    }


def _native_label(native: Any) -> str:
    if not native:
        return "NOT importable (pure only)"
    from sessionwal import _native

    return f"yes (strings: {_native.STRING_ENCODER})"


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.2f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"


def markdown_table(results: Sequence[WorkloadResult]) -> str:
    """The table of DESIGN §7: µs per chunk (medians) and ratios."""
    head = (
        "| workload | chunks | B/line | pure µs | native µs | native/64 µs "
        "| orjson+os.write µs | speedup vs pure | speedup batch vs pure | native vs orjson |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        med = r.median_us
        lines.append(
            f"| {r.workload} | {r.chunks} | {r.bytes_per_line:.0f} | {_fmt(med.get('pure'))} "
            f"| {_fmt(med.get('native'))} | {_fmt(med.get('native_batch64'))} "
            f"| {_fmt(med.get('orjson'))} | {_fmt(r.ratio('pure', 'native'), 'x')} "
            f"| {_fmt(r.ratio('pure', 'native_batch64'), 'x')} "
            f"| {_fmt(r.ratio('orjson', 'native'), 'x')} |"
        )
    return "\n".join(lines)


def evaluate_targets(results: Sequence[WorkloadResult]) -> list[dict[str, Any]]:
    """DESIGN §7 targets that this run measured, each with its ratio and verdict."""
    verdicts = []
    for workload, contender, baseline, minimum in TARGETS:
        for r in results:
            ratio = r.ratio(baseline, contender)
            if workload in ("*", r.workload) and ratio is not None:
                verdicts.append(
                    {
                        "workload": r.workload,
                        "contender": contender,
                        "baseline": baseline,
                        "minimum": minimum,
                        "ratio": ratio,
                        "ok": ratio >= minimum,
                    }
                )
    return verdicts


_LABELS = {"native_batch64": "native/64", "orjson": "orjson+os.write"}
_COLORS = {
    "pure": "tab:gray",
    "native": "tab:blue",
    "native_batch64": "tab:green",
    "orjson": "tab:orange",
}


def plot(results: Sequence[WorkloadResult], out: str) -> None:
    """One bar panel per workload: µs per chunk differ 100x between workloads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        med = r.median_us
        ax.bar(
            [_LABELS.get(c, c) for c in med],
            list(med.values()),
            color=[_COLORS.get(c, "tab:gray") for c in med],
        )
        ax.set_title(f"{r.workload} ({r.bytes_per_line:.0f} B/line)")
        ax.set_ylabel("µs per chunk (median)")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


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
        f"native {_native_label(native)}"
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


if __name__ == "__main__":
    raise SystemExit(main())
