"""OpenRath's own tests, run with its SessionWriter and then with sessionwal dropped in.

OpenRath (https://github.com/qiuyaodawo/OpenRath) is the runtime the seed
writer comes from. This runs its persistence tests (or its whole suite) twice
in a fresh pytest process each: as-is (the baseline), and with
``rath.session.persistence.SessionWriter`` replaced by a subclass of
``sessionwal.SessionWriter`` whose hooks (``build_header``,
``build_trailer``, ``build_chunk_record``, ``session_file``,
``session_partial_file``) point at OpenRath's own functions, the README's
drop-in recipe. The swap is a pytest plugin (``openrath_dropin_plugin.py``,
copied to a temp dir with everything else the runs write), so the OpenRath
checkout is never modified: no edits, no caches, no bytecode. Every run also
runs ``openrath_dropin_exercise.py`` (rows and cases OpenRath's own tests
leave out, through its public writer; ``--no-exercise`` drops it), counted
apart. ``--shadow`` twins every sessionwal writer with OpenRath's own one
writing elsewhere and compares the files after each close/abandon byte for
byte (timestamps masked), their modes and the names beside them: OpenRath's
tests parse JSON and would not see a byte or a stray file.

It then prints passed / failed / errors / skipped for each run, how many
sessionwal writers the swapped run opened (so a swap that silently did not
take cannot pass), and every test whose outcome differs from the baseline
with the first line of its failure. Exit status: 0 when no test that passes
in the baseline fails with sessionwal (differences listed in ``EXPECTED``,
each with its reason, excepted) and the shadow found no mismatch, 1
otherwise, 2 on a setup problem.

Not part of CI (OpenRath is not in this repository). Setup, once:

    git clone https://github.com/qiuyaodawo/OpenRath /path/to/openrath
    python3.11 -m venv /path/to/venv   # OpenRath: >=3.10; sessionwal: >=3.11
    /path/to/venv/bin/pip install uv "maturin>=1.9.4,<2"
    cd /path/to/openrath && /path/to/venv/bin/uv export --frozen --no-hashes \\
        --no-emit-project --no-header -q > /tmp/openrath-req.txt   # its lock, dev group too
    /path/to/venv/bin/pip install -r /tmp/openrath-req.txt
    cd /path/to/sessionwal && VIRTUAL_ENV=/path/to/venv /path/to/venv/bin/maturin develop --release

Run (``--python`` is the interpreter with both installed; default: this one):

    python benches/openrath_dropin.py /path/to/openrath --python /path/to/venv/bin/python
    python benches/openrath_dropin.py /path/to/openrath --suite all      # whole suite
    python benches/openrath_dropin.py /path/to/openrath --chunks both    # also native chunks
    python benches/openrath_dropin.py /path/to/openrath --shadow --keep  # bytes vs the seed
    python benches/openrath_dropin.py /path/to/openrath --sync never -- -k lock

``--chunks native`` leaves chunk framing to sessionwal's native path (the
record shape OpenRath builds is the same); ``--sync`` gives every writer
that mode (default: sessionwal's ``close``; ``never`` is the seed's).
Arguments after ``--`` go to pytest in every run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN = Path(__file__).with_name("openrath_dropin_plugin.py")
EXERCISE = Path(__file__).with_name("openrath_dropin_exercise.py")
EXERCISE_COPY = "test_sessionwal_dropin_exercise.py"
PERSISTENCE_TESTS = ("tests/session/persistence",)
# The whole suite minus what needs services this check does not start
# (their tests skip themselves without them anyway; this keeps the run short).
NEEDS_SERVICES = "not opensandbox and not opensandbox_real and not openviking and not live_llm"
OUTCOMES = ("passed", "failed", "error", "skipped")
# Differences understood and accepted, with why; printed, but not a regression.
EXPECTED: dict[str, str] = {
    "exercise::test_a_reopened_id_loads_its_last_run_and_delete_leaves_nothing_behind": (
        "closing an id that is already closed keeps the earlier file as <id>.jsonl.~N~ "
        "(docs/safety.md; README, drop-in): OpenRath's own delete does not know that name"
    ),
}


@dataclass
class RunResult:
    label: str
    seconds: float
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> outcome
    messages: dict[str, str] = field(default_factory=dict)  # test id -> first line
    summary: str = ""
    writers_opened: int | None = None
    shadow_compared: int | None = None
    shadow_mismatches: list[dict[str, str]] = field(default_factory=list)
    shadow_dir_modes: list[list[str]] = field(default_factory=list)

    def count(self, outcome: str, exercise: bool = False) -> int:
        same = ("skipped", "xfailed") if outcome == "skipped" else (outcome,)
        return sum(
            1
            for test_id, value in self.outcomes.items()
            if value in same and is_exercise(test_id) == exercise
        )


def is_exercise(test_id: str) -> bool:
    return test_id.startswith("exercise::")


def parse_junit(path: Path, result: RunResult) -> None:
    """Outcome and first message line of every test case in a pytest junit file."""
    for case in ET.parse(path).getroot().iter("testcase"):
        # Outside the rootdir the exercise module has no classname; xunit1 gives its file.
        exercise = (case.get("file") or "").endswith(EXERCISE_COPY)
        test_id = f"{'exercise' if exercise else case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                if child.get("type") == "pytest.xfail":
                    outcome = "xfailed"  # counted with skipped, named apart in differences
                text = child.get("message") or child.text or ""
                result.messages[test_id] = text.strip().splitlines()[0] if text.strip() else ""
                if outcome != "skipped":
                    break  # a call failure outranks a teardown error on the same case
        result.outcomes[test_id] = outcome


def run_pytest(
    label: str,
    python: str,
    openrath: Path,
    workdir: Path,
    pytest_args: list[str],
    swap_env: dict[str, str] | None,
) -> RunResult:
    run_dir = workdir / label
    run_dir.mkdir()
    junit = run_dir / "junit.xml"
    stats = run_dir / "stats.json"
    env = dict(os.environ)
    path_entries = [str(openrath / "src")]
    args = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs"]
    if swap_env is not None:
        path_entries.insert(0, str(workdir / "plugin"))
        args += ["-p", PLUGIN.stem]
        env.update(swap_env, SESSIONWAL_DROPIN_STATS=str(stats))
        if env.get("SESSIONWAL_DROPIN_SHADOW"):
            env["SESSIONWAL_DROPIN_SHADOW"] = str(run_dir / "shadow")
    env["PYTHONPATH"] = os.pathsep.join([*path_entries, env.get("PYTHONPATH", "")]).rstrip(":")
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    # -c: the exercise module lives outside the checkout; keep OpenRath's ini and rootdir.
    args += ["-c", str(openrath / "pytest.ini"), "-o", "junit_family=xunit1"]
    args += [f"--junitxml={junit}", *pytest_args]
    started = time.perf_counter()
    with open(run_dir / "pytest.log", "w", encoding="utf-8") as log:
        subprocess.run(
            args, cwd=openrath, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    result = RunResult(label, time.perf_counter() - started)
    output = (run_dir / "pytest.log").read_text(encoding="utf-8", errors="replace")
    summaries = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    result.summary = summaries[-1].strip("= ") if summaries else "(no pytest summary line)"
    if not junit.exists():
        sys.exit(f"{label}: pytest wrote no report; its output:\n{output[-4000:]}")
    parse_junit(junit, result)
    if swap_env is not None:
        if not stats.exists():
            sys.exit(f"{label}: the drop-in plugin did not run; pytest output:\n{output[-4000:]}")
        plugin_stats = json.loads(stats.read_text(encoding="utf-8"))
        result.writers_opened = plugin_stats["writers_opened"]
        if swap_env.get("SESSIONWAL_DROPIN_SHADOW"):
            result.shadow_compared = plugin_stats["shadow_compared"]
            result.shadow_mismatches = plugin_stats["shadow_mismatches"]
            result.shadow_dir_modes = plugin_stats["shadow_dir_modes"]
    return result


def report(baseline: RunResult, swapped: list[RunResult]) -> int:
    """Print the counts and the differences; return the number of regressions."""
    print(
        f"{'run':<26} {'tests':<9} {'passed':>6} {'failed':>6} {'error':>6} {'skipped':>7} "
        f"{'writers':>7} {'seconds':>7}"
    )
    for run in (baseline, *swapped):
        writers = "-" if run.writers_opened is None else str(run.writers_opened)
        for exercise in (False, True):
            counts = " ".join(f"{run.count(o, exercise):>{max(6, len(o))}}" for o in OUTCOMES)
            if exercise and not any(map(is_exercise, run.outcomes)):
                continue
            which = "exercise" if exercise else "OpenRath"
            label = "" if exercise else run.label
            tail = "" if exercise else f" {writers:>7} {run.seconds:>7.1f}"
            print(f"{label:<26} {which:<9} {counts}{tail}")
    for run in (baseline, *swapped):
        print(f"  {run.label}: {run.summary}")
    regressions = 0
    for run in swapped:
        changed = set(
            test_id
            for test_id in baseline.outcomes.keys() | run.outcomes.keys()
            if baseline.outcomes.get(test_id) != run.outcomes.get(test_id)
        )
        print(f"\n{run.label}: {len(changed)} test(s) differ from the baseline")
        for test_id in sorted(changed):
            before = baseline.outcomes.get(test_id, "absent")
            after = run.outcomes.get(test_id, "absent")
            expected = EXPECTED.get(test_id)
            regressions += before == "passed" and after in ("failed", "error") and not expected
            print(f"  {test_id}: {before} -> {after}" + (" (expected)" if expected else ""))
            if test_id in run.messages:
                print(f"      {run.messages[test_id][:300]}")
            if expected:
                print(f"      expected: {expected}")
        for test_id in sorted(EXPECTED.keys() & run.outcomes.keys() - changed):
            print(f"  no longer differs: {test_id} (drop it from EXPECTED)")
        if run.shadow_compared is not None:
            print(
                f"  shadow: {run.shadow_compared} closed/abandoned files compared with the "
                f"seed's, {len(run.shadow_mismatches)} mismatch(es)"
            )
            modes = ", ".join(f"{ours} vs {seeds}" for ours, seeds in run.shadow_dir_modes)
            print(f"  shadow: directory modes, sessionwal's vs the seed's: {modes}")
            for mismatch in run.shadow_mismatches:
                print(f"    {mismatch['test']}: {mismatch['what'][:400]}")
            regressions += len(run.shadow_mismatches)
        if run.writers_opened == 0:
            print("  the swapped run opened no sessionwal writer: the swap was not exercised")
            regressions += 1
    return regressions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Arguments after -- go to pytest."
    )
    parser.add_argument("openrath", type=Path, help="an OpenRath checkout (has src/rath)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with OpenRath's dependencies, pytest and sessionwal",
    )
    parser.add_argument("--suite", choices=("persistence", "all"), default="persistence")
    parser.add_argument(
        "--chunks",
        choices=("runtime", "native", "both"),
        default="runtime",
        help="who builds chunk records in the swapped run (default: runtime)",
    )
    parser.add_argument(
        "--sync",
        choices=("never", "close", "interval", "always"),
        help="sync= for every sessionwal writer (default: sessionwal's)",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="also twin every writer with OpenRath's own and compare the files",
    )
    parser.add_argument(
        "--no-exercise",
        dest="exercise",
        action="store_false",
        help="skip openrath_dropin_exercise.py (rows and cases OpenRath's tests leave out)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, junit)")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.pytest_args = argv[split + 1 :]

    openrath = args.openrath.resolve()
    if not (openrath / "src/rath/session/persistence/writer.py").is_file():
        print(
            f"{openrath} is not an OpenRath checkout (no src/rath/session/persistence)",
            file=sys.stderr,
        )
        return 2
    probe = subprocess.run(
        [args.python, "-c", "import sessionwal, pytest; print(sessionwal.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        print(
            f"{args.python} cannot import sessionwal and pytest:\n{probe.stderr}", file=sys.stderr
        )
        return 2
    commit = subprocess.run(
        ["git", "-C", str(openrath), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"OpenRath {openrath} @ {commit or '?'}; sessionwal {probe.stdout.strip()}")

    if args.suite == "all":
        pytest_args = ["tests", "-m", NEEDS_SERVICES, *args.pytest_args]
    else:
        pytest_args = [*PERSISTENCE_TESTS, *args.pytest_args]
    workdir = Path(tempfile.mkdtemp(prefix="openrath-dropin-"))
    try:
        (workdir / "plugin").mkdir()
        shutil.copy(PLUGIN, workdir / "plugin" / PLUGIN.name)
        if args.exercise:
            shutil.copy(EXERCISE, workdir / "plugin" / EXERCISE_COPY)
            pytest_args.append(str(workdir / "plugin" / EXERCISE_COPY))
        baseline = run_pytest("baseline", args.python, openrath, workdir, pytest_args, None)
        modes = ("runtime", "native") if args.chunks == "both" else (args.chunks,)
        swapped = [
            run_pytest(
                f"sessionwal-{mode}-chunks",
                args.python,
                openrath,
                workdir,
                pytest_args,
                {
                    "SESSIONWAL_DROPIN_CHUNKS": mode,
                    "SESSIONWAL_DROPIN_SYNC": args.sync or "",
                    "SESSIONWAL_DROPIN_SHADOW": "1" if args.shadow else "",
                },
            )
            for mode in modes
        ]
        regressions = report(baseline, swapped)
    finally:
        if args.keep:
            print(f"\nlogs and junit reports kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
