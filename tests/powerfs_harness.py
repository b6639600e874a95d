"""Power cuts under powerfs (tests/powerfs/, a FUSE file system that keeps
unsynced writes in memory), shared by tests/test_power_loss_fuse.py and
benches/soak.py.

One cut: a worker process streams chunks into sessions on the mount (one
writer API, one sync mode) and reports each acknowledged chunk and each
closed session; at a seeded random point the file system loses power (the
model picks which unsynced pages and directory operations land: nothing, a
prefix, a random order, a NUL-extended hole), the worker is killed, power
comes back, and :func:`check_after_cut` asserts what the sync mode promised.

Run as a script, this module is that worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

POWERFS_DIR = Path(__file__).parent / "powerfs"
SYNC_INTERVAL = 0.05
#: How long before the cut an interval-mode chunk must have been acknowledged
#: for the mode to promise it (the interval, plus scheduling slack).
INTERVAL_SLACK = 0.3
WRITERS = ("write_chunk", "write_chunks", "asyncio")
MODES = ("always", "close", "interval")
CUT_MODES = ("drop", "prefix", "reorder", "holes", "random")


def powerfs_binary() -> Path:
    configured = os.environ.get("SESSIONWAL_POWERFS")
    return Path(configured) if configured else POWERFS_DIR / "target" / "release" / "powerfs"


def unavailable() -> str | None:
    """Why powerfs cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "powerfs is a Linux FUSE file system"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse: the FUSE device is missing"
    if os.geteuid() != 0:
        return "mounting powerfs needs root (it mounts with mount(2), without fusermount3)"
    if not powerfs_binary().exists():
        return (
            f"powerfs is not built ({powerfs_binary()}): run "
            "`cargo build --release --manifest-path tests/powerfs/Cargo.toml` "
            "or set SESSIONWAL_POWERFS"
        )
    return None


class PowerFS:
    """A mounted powerfs: ``root/disk`` is what survives, ``root/mnt`` the mount."""

    def __init__(self, root: Path) -> None:
        self.disk = root / "disk"
        self.mount = root / "mnt"
        self.disk.mkdir(parents=True, exist_ok=True)
        self.mount.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [str(powerfs_binary()), str(self.disk), str(self.mount)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._reply(timeout=10) != "mounted":
            self.close()
            raise RuntimeError("powerfs did not mount")

    def _reply(self, timeout: float = 30) -> str:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("powerfs did not answer")
        return self._proc.stdout.readline().strip()

    def command(self, line: str) -> str:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        reply = self._reply()
        if reply.startswith("error"):
            raise RuntimeError(f"powerfs: {reply}")
        return reply

    def cut(self, mode: str, seed: int) -> str:
        """Power goes: the model decides what landed; every operation fails until revive."""
        return self.command(f"cut {mode} {seed}")

    def revive(self) -> None:
        self.command("revive")

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if os.path.ismount(self.mount):
            subprocess.run(["umount", "-l", str(self.mount)], check=False)


# ------------------------------------------------------------------ one cut


@dataclass
class Promises:
    """What the worker reported before the cut, with arrival times."""

    #: session id -> [(chunk index, arrival time)]
    acked: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    #: session ids whose close returned
    closed: set[str] = field(default_factory=set)

    def promised(self, sync: str, cut_at: float) -> dict[str, list[int]]:
        """The chunks the sync mode promises survive a cut at ``cut_at``."""
        out: dict[str, list[int]] = {}
        for sid, acks in self.acked.items():
            if sync == "always" or sid in self.closed:
                keep = [i for i, _ in acks]
            elif sync == "interval":
                keep = [i for i, at in acks if at < cut_at - SYNC_INTERVAL - INTERVAL_SLACK]
            else:
                keep = []
            if keep:
                out[sid] = keep
        return out


def run_cut(fs: PowerFS, home: Path, writer: str, sync: str, seed: int) -> tuple[dict, str]:
    """One power cut; returns (the chunks promised, per session, and powerfs's note)."""
    rng = random.Random(seed)
    env = {**os.environ, "SESSIONWAL_HOME": str(home), "PYTHONUTF8": "1"}
    proc = subprocess.Popen(
        [sys.executable, __file__, writer, sync, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    promises = Promises()
    started = threading.Event()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read_acks() -> None:
        for line in stdout:
            if not line.endswith("\n"):
                break  # killed while reporting: that chunk was not acknowledged
            kind, sid, *rest = line.split()
            started.set()
            if kind == "ack":
                promises.acked.setdefault(sid, []).append((int(rest[0]), time.monotonic()))
            elif kind == "closed":
                promises.closed.add(sid)

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    started.wait(timeout=20)
    # Cut at a random point: after a random time of streaming.
    time.sleep(rng.uniform(0.0, 0.6))
    cut_at = time.monotonic()
    note = fs.cut(rng.choice(CUT_MODES), seed)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(timeout=10)
    stdout.close()
    fs.revive()
    return promises.promised(sync, cut_at), note


def check_after_cut(home: Path, promised: dict[str, list[int]], seed: int) -> Counter[str]:
    """Every promised chunk is readable by load_session, ls and verify (exit <= 1);
    then each crashed session is reopened (or repaired, by the seed's coin) and
    must end closed and intact, still holding every promised chunk. Returns the
    kinds of crash tail the crashed sessions had ("none", "torn", "hole", ...)."""
    import sessionwal
    from sessionwal import ChunkRow

    sessions = home / "sessions"
    env = {**os.environ, "SESSIONWAL_HOME": str(home), "PYTHONUTF8": "1"}

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sessionwal", *map(str, args)],
            capture_output=True,
            encoding="utf-8",
            env=env,
            timeout=60,
            check=False,
        )

    def indices(sid: str) -> list[int]:
        loaded = sessionwal.load_session(path=sessions / f"{sid}.jsonl")
        return [c.payload["i"] for c in loaded.chunks]

    for sid, chunks in promised.items():
        have = indices(sid)
        assert set(chunks) <= set(have), f"seed {seed}: {sid} lost {set(chunks) - set(have)}"
    listed = {
        json.loads(line)["id"]: json.loads(line)["chunk_count"]
        for line in cli("ls", "--json").stdout.splitlines()
    }
    for sid, chunks in promised.items():
        assert listed.get(sid, 0) >= len(chunks), f"seed {seed}: ls shows {listed.get(sid)}"
    paths = sorted(p for p in sessions.iterdir() if p.name.endswith((".jsonl", ".__partial__")))
    if paths:
        verify = cli("verify", *paths)
        assert verify.returncode <= 1, f"seed {seed}: {verify.stdout}"
    repair = random.Random(seed).random() < 0.3
    tails: Counter[str] = Counter()
    for partial in sorted(sessions.glob("*.jsonl.__partial__")):
        sid = partial.name.removesuffix(".jsonl.__partial__")
        final = sessions / f"{sid}.jsonl"
        if final.exists():
            continue
        log = sessionwal.records.valid_log(partial)
        tails[("no header, " if log.end == 0 else "") + (log.tail or "none")] += 1
        if repair:
            result = cli("repair", partial)
            if result.returncode == 0:
                new: list[int] = []
            else:
                # Only a file without a complete header is refused: nothing was promised.
                assert sid not in promised, f"seed {seed}: {result.stderr}"
                continue
        else:
            session = sessionwal.Session(id=sid)
            with sessionwal.SessionWriter(session, path=final, sync="close") as writer:
                writer.write_chunk(10_000, ChunkRow("user", {"i": 10_000}))
                writer.write_chunk(10_001, ChunkRow("user", {"i": 10_001}))
            new = [10_000, 10_001]
        verify = cli("verify", final)
        assert verify.returncode == 0, f"seed {seed}: {verify.stdout}"
        have = indices(sid)
        assert have[len(have) - len(new) :] == new
        assert set(promised.get(sid, [])) <= set(have), f"seed {seed}: {sid} after reopen"
    return tails


# ------------------------------------------------------------------ the worker


def _row(i: int):  # type: ignore[no-untyped-def]
    from sessionwal import ChunkRow

    # Sizes across page boundaries: some chunks span pages, some share one.
    return ChunkRow("assistant", {"i": i, "text": "x" * ((i * 7919) % 3000)})


def _say(*words: object) -> None:
    print(*words, flush=True)


def worker(writer: str, sync: str, seed: int) -> None:
    """Streams sessions of random length until killed, reporting acks and closes."""
    import sessionwal
    from sessionwal.aio import AsyncSessionWriter

    rng = random.Random(seed)
    options = {"sync": sync, "sync_interval": SYNC_INTERVAL}

    def chunk_counts() -> list[int]:
        return [rng.randint(1, 6) for _ in range(rng.randint(3, 30))]

    async def run_async() -> None:
        for n in range(1_000_000):
            sid = f"{seed}-{n}"
            w = AsyncSessionWriter(sessionwal.Session(id=sid), **options)
            i = 0
            for batch in chunk_counts():
                for _ in range(batch):
                    await w.awrite_chunk(i, _row(i))
                    i += 1
                await w.flush()
                for j in range(i - batch, i):
                    _say("ack", sid, j)
            await w.aclose()
            _say("closed", sid)

    if writer == "asyncio":
        asyncio.run(run_async())
        return
    for n in range(1_000_000):
        sid = f"{seed}-{n}"
        with sessionwal.SessionWriter(sessionwal.Session(id=sid), **options) as w:
            i = 0
            for batch in chunk_counts():
                if writer == "write_chunks":
                    w.write_chunks([(j, _row(j)) for j in range(i, i + batch)])
                    for j in range(i, i + batch):
                        _say("ack", sid, j)
                    i += batch
                else:
                    for _ in range(batch):
                        w.write_chunk(i, _row(i))
                        _say("ack", sid, i)
                        i += 1
        _say("closed", sid)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
