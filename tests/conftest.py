"""Shared fixtures: every behavioural test runs against both writers.

Tests import the *installed* ``sessionwal`` (CI installs the built wheel into
a fresh virtual environment and runs from a directory without ``python/``).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import sessionwal
import sessionwal.pure
import sessionwal.records

# Profiles picked by HYPOTHESIS_PROFILE: "dev" for quick local runs, "ci" (the
# default) for thousands of examples in CI, "ci-light" for CI's other
# interpreters, "long" for soak-style runs.
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
# .ci/run on each interpreter after the first: the same tests, fewer examples.
settings.register_profile(
    "ci-light", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=20000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

WRITERS = {
    "pure": sessionwal.pure.SessionWriter,
    "native": sessionwal.SessionWriter,
}

FIXED_CREATED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
FIXED_CLOSED_AT = datetime(2026, 1, 2, 4, 5, 6, 789012, tzinfo=UTC)


@pytest.fixture(params=sorted(WRITERS))
def writer_cls(request: pytest.FixtureRequest) -> type:
    """Each test using this runs once with the pure and once with the native writer."""
    return WRITERS[request.param]


@pytest.fixture(autouse=True)
def sessionwal_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SESSIONWAL_HOME per test, so default paths never touch ~."""
    home = tmp_path / "home"
    monkeypatch.setenv("SESSIONWAL_HOME", str(home))
    return home


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Pins the trailer's closed_at so whole files compare byte for byte."""
    monkeypatch.setattr(sessionwal.records, "now_utc", lambda: FIXED_CLOSED_AT)
    return FIXED_CLOSED_AT


def make_session(session_id: str = "session-1", **fields: object) -> sessionwal.Session:
    return sessionwal.Session(id=session_id, created_at=FIXED_CREATED_AT, **fields)  # type: ignore[arg-type]


def run_cli(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m sessionwal ARGS`` (in UTF-8 mode) and returns what it did."""
    return subprocess.run(
        [sys.executable, "-m", "sessionwal", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONUTF8": "1"},
        timeout=timeout,
        check=False,
    )


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def nested_lists(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@functools.cache
def depth_json_dumps_refuses() -> int:
    """A nesting depth (a power of two) at which this interpreter's json.dumps
    raises RecursionError.

    Each CPython draws that line elsewhere: 3.11 at sys.getrecursionlimit()
    (1000 by default), 3.12 at a separate C limit (about 1,500), 3.13 at another
    (about 10,000). Tests that need a value too deep to encode ask the running
    interpreter rather than assume one version's number; twice this depth is
    well past the line wherever the stack the test runs on happens to be.
    """
    depth = 64
    while depth <= 1 << 20:
        try:
            json.dumps(nested_lists(depth))
        except RecursionError:
            return depth
        depth *= 2
    raise AssertionError(f"json.dumps encoded {depth // 2} nested lists: no depth limit found")
