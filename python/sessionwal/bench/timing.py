"""The timing rules every sessionwal benchmark follows, written once.

* **Fresh strings in every timed pass** (:func:`fresh_items`). CPython caches
  a string's UTF-8 form the first time an encoder asks for it
  (``PyUnicode_AsUTF8AndSize``, which orjson uses), so re-encoding the same
  row objects every repeat would time a cache hit that a runtime, which
  encodes each chunk once, never gets.
* **The collector out of the timed loop** (:func:`gc_off`): collect first,
  then disable, so one contender does not pay for another's garbage.
* **Interleaved, rotated repeats, one warm-up** (:func:`interleave`): all
  contenders run in one process, the order rotated per repeat, so machine
  noise (turbo, page cache, neighbours) hits them alike; an untimed warm-up
  pass keeps lazy imports and cold caches off whoever runs first. The median
  of the repeats is the result (:func:`medians`).
* **Only the write loop is timed** (:func:`time_writes`), not open or close,
  unless a benchmark measures close on purpose.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sessionwal.model import ChunkRow, Session

__all__ = [
    "FIXED_CREATED",
    "Items",
    "batches",
    "fresh",
    "fresh_items",
    "gc_off",
    "interleave",
    "load_native",
    "machine_info",
    "medians",
    "native_label",
    "pure_writer",
    "time_session",
    "time_writes",
]

Items: TypeAlias = list[tuple[int, ChunkRow]]
"""``(index, row)`` pairs, the argument of ``write_chunks``."""

Sample = TypeVar("Sample")

FIXED_CREATED = datetime(2024, 6, 10, 12, 0, 0, 123456, tzinfo=UTC)
"""``created_at`` of every benchmark session: headers must not depend on the clock."""


def load_native() -> type | None:
    """The native ``sessionwal.SessionWriter``, or None if it is not importable.

    Imported lazily: the workloads and this module stay importable (and
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


def pure_writer() -> type:
    """The pure-Python reference writer (the seed's algorithm), every benchmark's baseline."""
    from sessionwal import pure

    return pure.SessionWriter


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    """Collect first, then keep the collector out of the timed block."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fresh(value: Any) -> Any:
    """A deep copy of a JSON-like value with new ``str`` objects (see the module doc)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    if isinstance(value, dict):
        return {fresh(k): fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh(v) for v in value]
    return value


def fresh_items(items: Iterable[tuple[int, ChunkRow]]) -> Items:
    """``items`` with payloads whose strings were never encoded."""
    return [(index, ChunkRow(row.kind, fresh(row.payload))) for index, row in items]


def batches(items: Items, size: int) -> list[Items]:
    """``items`` cut into ``write_chunks`` batches of ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def time_writes(writer: Any, items: Items, *, batch: int | None = None) -> int:
    """Nanoseconds spent writing ``items`` through an open ``writer``, GC off.

    ``batch=None`` calls ``write_chunk`` per item; otherwise ``write_chunks``
    per ``batch`` items (cut before the clock starts).
    """
    with gc_off():
        if batch is not None:
            groups = batches(items, batch)
            write_many = writer.write_chunks
            start = time.perf_counter_ns()
            for group in groups:
                write_many(group)
        else:
            write = writer.write_chunk
            start = time.perf_counter_ns()
            for index, row in items:
                write(index, row)
        return time.perf_counter_ns() - start


def time_session(
    cls: type, path: Path, items: Items, *, batch: int | None = None, sync: str = "never"
) -> int:
    """:func:`time_writes` over a fresh session at ``path``, opened and closed untimed.

    The file is removed afterwards; a failed write abandons the writer first.
    """
    writer = cls(Session(id=path.stem, created_at=FIXED_CREATED), path=path, sync=sync)
    try:
        elapsed = time_writes(writer, items, batch=batch)
    except BaseException:
        writer.abandon()
        raise
    writer.close()
    path.unlink(missing_ok=True)
    return elapsed


def interleave(
    contenders: Sequence[str],
    repeats: int,
    run: Callable[[str, bool], Sample],
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> dict[str, list[Sample]]:
    """Samples of every contender: one warm-up round, then ``repeats`` rotated rounds.

    ``run(contender, warm_up)`` does one pass and returns its sample; with
    ``warm_up=True`` it should do a short pass, whose result is discarded.
    A sample is usually a float (µs per chunk), but may be anything.
    """
    samples: dict[str, list[Sample]] = {c: [] for c in contenders}
    for rep in range(-1, repeats):
        shift = rep % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            if progress:
                step = "warm-up" if rep < 0 else f"repeat {rep + 1}/{repeats}"
                progress(f"{label}: {step} {contender}")
            sample = run(contender, rep < 0)
            if rep >= 0:
                samples[contender].append(sample)
    return samples


def medians(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The median of every non-empty sample list."""
    return {name: statistics.median(s) for name, s in samples.items() if s}


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


def native_label(native: type | None) -> str:
    """How the native writer runs here: absent, or which string kernel it picked."""
    if native is None:
        return "NOT importable (pure only)"
    from sessionwal import _native

    return f"yes (strings: {_native.STRING_ENCODER})"
