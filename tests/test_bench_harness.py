"""The benchmark harness (``sessionwal.bench``): what makes its numbers mean something.

Its timings are no test's business, but three of its promises are: a
benchmark whose writers wrote different bytes must fail loudly, the clock it
pins must not change anything else in the file, and the harness must stay
off the runtime's import path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sessionwal
from sessionwal.bench.identity import (
    FIXED_CLOSED,
    OutputMismatch,
    check_identity,
    with_fixed_clock,
)
from sessionwal.bench.timing import interleave
from sessionwal.bench.workloads import chat


def test_fixed_clock_pins_closed_at_and_keeps_the_rest_of_the_trailer(writer_cls, tmp_path):
    plain, fixed = tmp_path / "plain.jsonl", tmp_path / "fixed.jsonl"
    for cls, path in ((writer_cls, plain), (with_fixed_clock(writer_cls), fixed)):
        with cls(sessionwal.Session(id=path.stem), path=path) as writer:
            writer.write_chunk(0, sessionwal.ChunkRow("user", {"content": "hi"}))
    plain_trailer = json.loads(plain.read_text().splitlines()[-1])
    fixed_trailer = json.loads(fixed.read_text().splitlines()[-1])
    assert fixed_trailer["closed_at"] == FIXED_CLOSED.isoformat()
    assert list(fixed_trailer) == list(plain_trailer)
    assert {**fixed_trailer, "closed_at": None} == {**plain_trailer, "closed_at": None}


def test_identity_check_passes_on_the_real_writers(tmp_path):
    assert check_identity("chat", chat(40, 1), sessionwal.SessionWriter, tmp_path) == "identical"


def test_identity_check_names_the_first_line_a_writer_got_wrong(tmp_path):
    class OffByOne(sessionwal.SessionWriter):
        @staticmethod
        def build_chunk_record(index, row):
            return sessionwal.build_chunk_record(index + (index == 3), row)

    with pytest.raises(OutputMismatch, match=r"chat: native differs from pure at line 5, byte"):
        check_identity("chat", chat(10, 1), OffByOne, tmp_path)


def test_interleave_rotates_the_order_and_drops_the_warm_up():
    calls: list[tuple[str, bool]] = []

    def one_pass(contender: str, warm_up: bool) -> float:
        calls.append((contender, warm_up))
        return float(len(calls))

    samples = interleave(["a", "b", "c"], 2, one_pass)
    assert [c for c, _ in calls] == ["c", "a", "b", "a", "b", "c", "b", "c", "a"]
    assert [w for _, w in calls] == [True] * 3 + [False] * 6
    assert samples == {"a": [4.0, 9.0], "b": [5.0, 7.0], "c": [6.0, 8.0]}


def test_the_runtime_never_imports_the_harness_or_unittest():
    code = (
        "import sys, sessionwal, sessionwal.cli, sessionwal.aio, sessionwal.loader;"
        "print(sorted(m for m in sys.modules if m.startswith(('unittest', 'sessionwal.bench'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_harness_itself_needs_no_mock():
    code = "import sys, sessionwal.bench; print('unittest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bench_quick_runs_and_checks_its_output(tmp_path: Path):
    """The README's first command, shrunk: it must run, compare bytes and say so."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "sessionwal.bench"),
            *("--quick", "--quiet", "--repeats", "1", "--chunks", "30", "--stream-mib", "1"),
            *("--dir", str(tmp_path), "--json", str(tmp_path / "out.json")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for workload in ("chat", "deltas", "large"):
        assert f"output identity {workload}: identical" in result.stdout
    report = json.loads((tmp_path / "out.json").read_text())
    assert {r["workload"] for r in report["results"]} == {"chat", "deltas", "large"}
    assert report["stream"]["flat"] is True
