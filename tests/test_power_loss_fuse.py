"""Power cuts under powerfs, a FUSE file system that keeps unsynced writes in
memory (see tests/powerfs_harness.py): for each sync mode and each writer
API, seeded random cuts, then every chunk the mode promised is readable by
``load_session``, ``ls`` and ``verify``, and a crashed session reopened (or
repaired) ends closed and intact. ``benches/soak.py --power-loss`` runs
thousands of such cuts.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from pathlib import Path

import powerfs_harness as harness
import pytest

#: Cuts per (writer, sync mode) in the test suite; the soak runs thousands. CI
#: runs the suite once per CPython: the full count on the first, one cut per
#: combination on the others (their "ci-light" profile), to stay in budget.
_LIGHT = os.environ.get("HYPOTHESIS_PROFILE") == "ci-light"
CUTS = int(os.environ.get("SESSIONWAL_POWER_CUTS", "1" if _LIGHT else "4"))


@pytest.fixture
def powerfs(tmp_path: Path):
    reason = harness.unavailable()
    if reason is not None:
        # CI builds powerfs and sets this: there, a missing piece is a failure.
        if os.environ.get("SESSIONWAL_REQUIRE_POWERFS"):
            pytest.fail(f"SESSIONWAL_REQUIRE_POWERFS is set, but {reason}")
        pytest.skip(reason)
    fs = harness.PowerFS(tmp_path / "powerfs")
    try:
        yield fs
    finally:
        fs.close()


@pytest.mark.parametrize("sync", harness.MODES)
@pytest.mark.parametrize("writer", harness.WRITERS)
def test_promised_chunks_survive_power_cuts(powerfs, monkeypatch, writer, sync):
    home = powerfs.mount / "home"
    (home / "sessions").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("SESSIONWAL_HOME", str(home))
    promised_total = 0
    tails: Counter[str] = Counter()
    for n in range(CUTS):
        seed = zlib.crc32(f"{writer}/{sync}/{n}".encode())
        promised, note = harness.run_cut(powerfs, home, writer, sync, seed)
        tails += harness.check_after_cut(home, promised, seed)
        promised_total += sum(map(len, promised.values()))
        print(f"{writer}/{sync} seed {seed}: {note}")
    print(f"{writer}/{sync}: {CUTS} cuts, {promised_total} chunks promised, tails {dict(tails)}")
    if sync != "interval":
        # The test has teeth only if the mode promised something to keep.
        assert promised_total > 0
