"""The writers table: pure reference, native, native in batches, orjson yardstick.

:func:`run_workload` times every contender over one workload with the rules
of :mod:`sessionwal.bench.timing`; :func:`stream_rss` streams a long session
and watches memory; :func:`evaluate_targets` holds the run against the
targets of ``docs/performance.md``; :func:`markdown_table` and :func:`plot`
present it.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessionwal.bench.timing import (
    FIXED_CREATED,
    Items,
    fresh_items,
    gc_off,
    interleave,
    medians,
    pure_writer,
    time_session,
)
from sessionwal.bench.workloads import WORKLOADS
from sessionwal.model import ChunkRow, Session

__all__ = [
    "BATCH",
    "TARGETS",
    "StreamResult",
    "WorkloadResult",
    "available_contenders",
    "evaluate_targets",
    "line_bytes",
    "markdown_table",
    "plot",
    "run_workload",
    "stream_rss",
]

BATCH = 64
# The targets: (workload or "*", contender, baseline, minimum baseline/contender ratio).
TARGETS = [
    ("chat", "native", "pure", 5.0),
    ("deltas", "native", "pure", 4.0),
    ("large", "native", "pure", 4.0),
    ("deltas", "native_batch64", "pure", 15.0),
    ("*", "native", "orjson", 1.0),
]


def _timed_orjson(path: Path, items: Items) -> int:
    """The hand-rolled yardstick: same record dict, ``orjson.dumps`` + one ``os.write``.

    Not byte-identical to json.dumps (compact separators, NaN → null): speed only.
    """
    import orjson

    from sessionwal.records import build_chunk_record

    dumps, option, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, os.write
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        with gc_off():
            start = time.perf_counter_ns()
            for index, row in items:
                write(fd, dumps(build_chunk_record(index, row), option=option))
            return time.perf_counter_ns() - start
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def available_contenders(native: type | None) -> list[str]:
    """Contenders that can run here, in table order."""
    import importlib.util

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
        return medians(self.samples_us)

    def ratio(self, baseline: str, contender: str) -> float | None:
        """``baseline / contender`` medians: > 1 means the contender is faster."""
        med = self.median_us
        if baseline in med and contender in med and med[contender] > 0:
            return med[baseline] / med[contender]
        return None


def line_bytes(rows: Sequence[ChunkRow]) -> float:
    """Average bytes of the chunk lines ``rows`` encode to (newline included)."""
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
    """Time every contender over ``rows`` (:func:`~sessionwal.bench.timing.interleave`).

    Every timed pass writes :func:`~sessionwal.bench.timing.fresh_items`; the
    warm-up writes the first ``4 * BATCH`` rows.
    """
    items = list(enumerate(rows))
    pure = pure_writer()
    # Each pass's rows stay alive until the next pass has made its copy, as
    # in the harness that measured the tables of docs/performance.md, so a
    # copy is never built in the memory the previous pass just freed: which
    # blocks the rows land in changes how cold they are when written.
    previous: list[Items] = []

    def one_pass(contender: str, warm_up: bool) -> float:
        chunk = items[: 4 * BATCH] if warm_up else fresh_items(items)
        previous[:] = [chunk]
        path = workdir / f"{name}-{contender}.jsonl"
        if contender == "orjson":
            elapsed = _timed_orjson(path, chunk)
        else:
            cls = pure if contender == "pure" else native
            if cls is None:
                raise RuntimeError(f"{contender}: native writer not importable")
            batch = BATCH if contender == "native_batch64" else None
            elapsed = time_session(cls, path, chunk, batch=batch)
        return elapsed / 1000 / max(1, len(rows))

    samples = interleave(contenders, repeats, one_pass, progress, label=name)
    return WorkloadResult(name, len(rows), line_bytes(rows), samples)


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
    from sessionwal.bench.timing import load_native

    cls = pure_writer() if writer == "pure" else load_native()
    if cls is None:
        raise RuntimeError("native writer not importable; build it or pass writer='pure'")
    rows = WORKLOADS[workload](256, seed)
    step = max(1, (1 << 20) // int(line_bytes(rows[:32]) or 1))  # stat about once per MiB
    with tempfile.TemporaryDirectory(dir=workdir, prefix="sessionwal-stream-") as tmp:
        path = Path(tmp) / "stream.jsonl"
        gc.collect()
        before, start_rss = _maxrss_kib(), _rss_kib()
        peak_rss = start_rss
        w = cls(Session(id="stream", created_at=FIXED_CREATED), path=path, sync="never")
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


def _fmt(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:.2f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"


def markdown_table(results: Sequence[WorkloadResult]) -> str:
    """µs per chunk (medians) and ratios, one row per workload."""
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
    """The :data:`TARGETS` this run measured, each with its ratio and verdict."""
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
