"""Both native string encoders give json.dumps' bytes and errors.

2- and 4-byte strings take an AVX2 encoder where the CPU has it, and a
scalar one (with long text transcoded by CPython) elsewhere. The identity
suites in this process test whichever this machine selects; the scalar one is
re-run in a subprocess with ``SESSIONWAL_NO_AVX2=1`` so both stay tested on
any machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from sessionwal import _native

TESTS = Path(__file__).parent


def _cpu_has_avx2() -> bool | None:
    """From /proc/cpuinfo; None where that is not available."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return any(line.startswith("flags") and "avx2" in line.split() for line in cpuinfo.splitlines())


def test_vector_encoder_is_selected_exactly_where_the_cpu_has_avx2() -> None:
    has_avx2 = _cpu_has_avx2() if platform.machine() in ("x86_64", "AMD64") else False
    if has_avx2 is None:
        pytest.skip("no /proc/cpuinfo to check the CPU against")
    if os.environ.get("SESSIONWAL_NO_AVX2"):
        has_avx2 = False
    assert _native.STRING_ENCODER == ("avx2" if has_avx2 else "scalar")


def test_identity_suites_pass_with_the_scalar_encoder() -> None:
    env = {**os.environ, "SESSIONWAL_NO_AVX2": "1", "HYPOTHESIS_PROFILE": "dev"}
    probe = subprocess.run(
        [sys.executable, "-c", "from sessionwal import _native; print(_native.STRING_ENCODER)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "scalar"
    suites = [TESTS / "test_encoder_identity.py", TESTS / "test_long_strings.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *map(str, suites)],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
