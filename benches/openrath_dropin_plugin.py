"""pytest plugin: OpenRath's ``SessionWriter`` replaced by a sessionwal subclass.

Loaded by ``benches/openrath_dropin.py`` (``-p openrath_dropin_plugin``, from
a temp dir on ``PYTHONPATH``); not meant to be used on its own. It is the
README's drop-in recipe applied to a real runtime: subclass
``sessionwal.SessionWriter`` and point the hooks at the runtime's own record
builders and path functions, which OpenRath's ``writer`` module imports.

OpenRath binds the class by name in several modules
(``from rath.session.persistence import SessionWriter`` in ``loop``,
``compress``, ``_async.awriter`` and the tests), so patching the attribute
after import would miss most of them. Instead an import hook swaps the class
inside ``rath.session.persistence.writer`` the moment that module finishes
executing, before anything can import the name; the OpenRath checkout is
never touched. ``pytest_configure`` then checks that every binding sees the
sessionwal class, and the session end writes how many writers were opened.

Environment (set by the runner):
  SESSIONWAL_DROPIN_CHUNKS  ``runtime`` (default): OpenRath's
                            ``build_chunk_record`` hook too; ``native``: leave
                            chunk framing to sessionwal (same record shape).
  SESSIONWAL_DROPIN_SYNC    the ``sync=`` mode every writer gets (default: the
                            class default).
  SESSIONWAL_DROPIN_SHADOW  a directory: shadow mode (see ``ShadowMixin``), each
                            writer twinned with OpenRath's own writing there.
  SESSIONWAL_DROPIN_STATS   file to write ``{"writers_opened": N, ...}`` to.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sessionwal

WRITER_MODULE = "rath.session.persistence.writer"
# Every module that binds the class by name at import time.
BINDINGS = (
    "rath.session.persistence",
    "rath.session",
    "rath.session.loop",
    "rath.session.compress",
    "rath._async.awriter",
)

CHUNKS = os.environ.get("SESSIONWAL_DROPIN_CHUNKS", "runtime")
SYNC = os.environ.get("SESSIONWAL_DROPIN_SYNC") or None
SHADOW_DIR = os.environ.get("SESSIONWAL_DROPIN_SHADOW") or None
# The only bytes two faithful writers may differ in: when they were called.
TIMESTAMPS = re.compile(rb'"(created_at|closed_at)": "[^"]*"')
writers_opened = 0
shadow_compared = 0
shadow_mismatches: list[dict[str, str]] = []
# Modes of the directories holding the files, sessionwal's and the seed's: a difference
# is reported once per pair, not per file (whoever created the directory decides it).
shadow_dir_modes: set[tuple[str, str]] = set()


def current_test() -> str:
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    return "exercise" + test if test.startswith("::") else test  # outside the rootdir


def note_mismatch(what: str) -> None:
    shadow_mismatches.append({"test": current_test(), "what": what})


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


class ShadowMixin:
    """Every call mirrored onto OpenRath's own writer (the twin), files compared after.

    The twin writes the same session under ``SHADOW_DIR`` (one directory per
    final path, so reopening an id reopens the twin's file too). After each
    ``close``/``abandon`` the two final files, the two partial files and the
    names beside them must match byte for byte, timestamps masked; a call
    that raises in one writer must raise in the other. Each call and its
    mirror run under one lock: OpenRath's async writer calls ``write_chunk``
    and ``abandon`` from two worker threads at once, and without the lock the
    twin could see them in the other order.
    """

    seed: type  # OpenRath's own SessionWriter: an attribute of every class make_writer_class makes

    def __init__(
        self, session: Any, *, sandbox_handle_id: Any = None, path: Any = None, **kwargs: Any
    ) -> None:
        self._twin = None
        self._pair_lock = threading.RLock()  # re-entered: close() may call abandon()
        final, _ = self._resolve_paths(session, path)  # type: ignore[attr-defined]
        twin_dir = Path(SHADOW_DIR or ".") / hashlib.sha1(str(final).encode()).hexdigest()[:16]
        try:
            super().__init__(  # type: ignore[call-arg]  # next in the MRO: the writer
                session, sandbox_handle_id=sandbox_handle_id, path=path, **kwargs
            )
        except BaseException:
            self._mirror(
                None, "__init__", session, sandbox_handle_id, twin_dir / final.name, raised=True
            )
            raise
        self._mirror(None, "__init__", session, sandbox_handle_id, twin_dir / final.name)

    def _mirror(self, method: str | None, label: str, *args: Any, raised: bool = False) -> None:
        try:
            if method is None:  # construction
                session, handle, twin_path = args
                twin = self.seed(session, sandbox_handle_id=handle, path=twin_path)
                if raised:
                    twin.abandon()
                else:
                    self._twin = twin
            elif self._twin is not None:
                getattr(self._twin, method)(*args)
        except Exception as exc:
            if not raised:
                note_mismatch(f"{label}: the seed raised {exc!r}, sessionwal did not")
            return
        if raised and (method is None or self._twin is not None):
            note_mismatch(f"{label}: sessionwal raised, the seed did not")

    def write_chunk(self, index: int, row: Any) -> None:
        with self._pair_lock:
            self._write_chunk_pair(index, row)

    def _write_chunk_pair(self, index: int, row: Any) -> None:
        try:
            super().write_chunk(index, row)  # type: ignore[misc]
        except BaseException:
            self._mirror("write_chunk", f"write_chunk({index})", index, row, raised=True)
            raise
        self._mirror("write_chunk", f"write_chunk({index})", index, row)

    def close(self) -> None:
        self._end("close")

    def abandon(self) -> None:
        self._end("abandon")

    def _end(self, method: str) -> None:
        with self._pair_lock:
            self._end_pair(method)

    def _end_pair(self, method: str) -> None:
        try:
            getattr(super(), method)()
        except BaseException:
            self._mirror(method, method, raised=True)
            raise
        self._mirror(method, method)
        if self._twin is not None:
            self._compare(method)

    def _compare(self, method: str) -> None:
        global shadow_compared
        shadow_compared += 1
        ours: Path = self.path  # type: ignore[attr-defined]
        twins: Path = self._twin.path  # type: ignore[attr-defined]
        siblings = {p.name for p in ours.parent.glob(ours.name + "*")}
        twin_siblings = {p.name for p in twins.parent.glob(twins.name + "*")}
        if siblings != twin_siblings:
            note_mismatch(
                f"after {method}: files {sorted(siblings)} vs the seed's {sorted(twin_siblings)}"
            )
        shadow_dir_modes.add((mode(ours.parent), mode(twins.parent)))
        for name in sorted(siblings & twin_siblings):
            if mode(ours.parent / name) != mode(twins.parent / name):
                note_mismatch(
                    f"after {method}: {name} has mode {mode(ours.parent / name)}, "
                    f"the seed's {mode(twins.parent / name)}"
                )
            mine = TIMESTAMPS.sub(rb'"\1": "T"', (ours.parent / name).read_bytes())
            seeds = TIMESTAMPS.sub(rb'"\1": "T"', (twins.parent / name).read_bytes())
            if mine != seeds:
                mine_lines, seed_lines = mine.splitlines(True), seeds.splitlines(True)
                line = next(
                    i
                    for i in range(max(len(mine_lines), len(seed_lines)))
                    if mine_lines[i : i + 1] != seed_lines[i : i + 1]
                )
                note_mismatch(
                    f"after {method}: {name} differs from line {line + 1}: "
                    f"{mine_lines[line : line + 1]!r} vs {seed_lines[line : line + 1]!r}"
                )


def make_writer_class(runtime: ModuleType, seed: type) -> type:
    """The drop-in subclass, hooks pointed at the functions ``runtime`` imported.

    ``seed`` is OpenRath's own class, the twin of every writer in shadow mode.
    """
    hooks: dict[str, Any] = {
        "build_header": staticmethod(runtime.build_header),
        "build_trailer": staticmethod(runtime.build_trailer),
        "session_file": staticmethod(runtime.session_file),
        "session_partial_file": staticmethod(runtime.session_partial_file),
    }
    # A refused open raises the runtime's own class (OpenRath's lives in the
    # package's errors module, beside the writer's).
    errors = importlib.import_module(runtime.__name__.rpartition(".")[0] + ".errors")
    hooks["lock_error"] = errors.PersistenceError
    if CHUNKS == "runtime":
        hooks["build_chunk_record"] = staticmethod(runtime.build_chunk_record)
    elif CHUNKS != "native":
        raise pytest.UsageError(f"SESSIONWAL_DROPIN_CHUNKS must be runtime or native: {CHUNKS!r}")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        global writers_opened
        if SYNC is not None:
            kwargs.setdefault("sync", SYNC)
        sessionwal.SessionWriter.__init__(self, *args, **kwargs)
        writers_opened += 1

    namespace = {**hooks, "__init__": __init__, "__module__": __name__, "seed": seed}
    cls = type("OpenRathSessionWriter", (sessionwal.SessionWriter,), namespace)
    if SHADOW_DIR:
        return type("ShadowedOpenRathSessionWriter", (ShadowMixin, cls), {})
    return cls


class SwapAfterExec(importlib.abc.Loader):
    """Runs the real loader, then replaces ``SessionWriter`` in the module."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        seed = module.SessionWriter  # type: ignore[attr-defined]
        module.SessionWriter = make_writer_class(module, seed)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for tracebacks
        return getattr(self.inner, name)


class SwapFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != WRITER_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = SwapAfterExec(spec.loader)
        return spec


if WRITER_MODULE in sys.modules:
    raise ImportError(f"{WRITER_MODULE} was imported before the drop-in plugin; cannot swap")
sys.meta_path.insert(0, SwapFinder())


def pytest_configure(config: pytest.Config) -> None:
    import importlib

    bound = {name: importlib.import_module(name).SessionWriter for name in BINDINGS}
    stale = [name for name, cls in bound.items() if not issubclass(cls, sessionwal.SessionWriter)]
    if stale:
        raise pytest.UsageError(f"sessionwal drop-in did not take in: {', '.join(stale)}")


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"sessionwal drop-in: rath SessionWriter -> sessionwal {sessionwal.__file__} "
        f"(chunks: {CHUNKS} builder, sync: {SYNC or 'default'}, shadow: {SHADOW_DIR})"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stats_path = os.environ.get("SESSIONWAL_DROPIN_STATS")
    if stats_path:
        stats = {
            "writers_opened": writers_opened,
            "chunks": CHUNKS,
            "sync": SYNC,
            "shadow_compared": shadow_compared,
            "shadow_mismatches": shadow_mismatches,
            "shadow_dir_modes": sorted(shadow_dir_modes),
        }
        Path(stats_path).write_text(json.dumps(stats), encoding="utf-8")
