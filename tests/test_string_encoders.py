"""Every native string encoder gives json.dumps' bytes and errors.

2- and 4-byte strings take an AVX-512 or AVX2 kernel where the CPU has one,
and a scalar encoder (with long text transcoded by CPython) elsewhere. The
identity suites in this process test whichever this machine selects; the
others it can run are re-run in a subprocess, capped through
``SESSIONWAL_STRING_ENCODER``, so every encoder stays tested on any machine.
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
ORDER = ["scalar", "avx2", "avx512"]
AVX512_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512_vbmi2", "popcnt"}


def _cpu_flags() -> set[str] | None:
    """From /proc/cpuinfo; None where that is not available."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _fastest_for_this_cpu() -> str | None:
    if platform.machine() not in ("x86_64", "AMD64"):
        return "scalar"
    flags = _cpu_flags()
    if flags is None:
        return None
    if AVX512_FLAGS <= flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "scalar"


def _selected_with(cap: str) -> str:
    probe = subprocess.run(
        [sys.executable, "-c", "from sessionwal import _native; print(_native.STRING_ENCODER)"],
        env={**os.environ, "SESSIONWAL_STRING_ENCODER": cap},
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()


def test_the_fastest_encoder_the_cpu_runs_is_selected() -> None:
    fastest = _fastest_for_this_cpu()
    if fastest is None:
        pytest.skip("no /proc/cpuinfo to check the CPU against")
    cap = os.environ.get("SESSIONWAL_STRING_ENCODER", "avx512")
    if cap in ORDER and ORDER.index(cap) < ORDER.index(fastest):
        fastest = cap
    assert _native.STRING_ENCODER == fastest


@pytest.mark.parametrize("cap", ["scalar", "avx2"])
def test_identity_suites_pass_with_a_capped_encoder(cap: str) -> None:
    selected = _selected_with(cap)
    if selected != cap:
        # Only reachable without AVX2, where "avx2" caps nothing.
        assert ORDER.index(selected) < ORDER.index(cap)
        pytest.skip(f"this CPU cannot run the {cap} encoder")
    if selected == _native.STRING_ENCODER:
        pytest.skip(f"{cap} is what this process already runs")
    env = {**os.environ, "SESSIONWAL_STRING_ENCODER": cap, "HYPOTHESIS_PROFILE": "dev"}
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
