"""Benchmark harness of sessionwal: not imported by the writers or the readers.

``sessionwal bench`` (and ``python -m sessionwal.bench``) runs :func:`main`.
The ``benches/`` scripts build on the same public pieces:

- :mod:`sessionwal.bench.workloads`: deterministic rows (``chat``,
  ``deltas``, ``large``), the same on every run and machine;
- :mod:`sessionwal.bench.timing`: the timing rules (fresh strings, GC off,
  interleaved rotated repeats, medians) and the writer classes under test;
- :mod:`sessionwal.bench.identity`: the byte-identity check every timing
  depends on, with a fixed clock through the ``build_trailer`` hook;
- :mod:`sessionwal.bench.writers`: the writers table, streaming memory
  check and targets; :mod:`sessionwal.bench.cli`: its command line.
"""

from __future__ import annotations

from sessionwal.bench.cli import main

__all__ = ["main"]
