"""Soak: N writers in each of M processes for T seconds, with random kill -9s.

Each worker process writes chunks round-robin to its sessions (random sizes,
random ``write_chunk`` / ``write_chunks``, random sync modes) and
acknowledges every chunk on stdout once the call returned; now and then it
closes a session and starts a new one. The parent kills a random worker with
SIGKILL every ``--kill-every`` seconds on average and starts a replacement
that reopens the dead worker's sessions (appending a new header after the
torn tail, which the native writer cuts). At the end every worker is killed
and every file is checked:

- every line but a file's last is a whole JSON record;
- each writer's run (a header and its chunks) has indices 0..n-1 with
  intact payloads, and n >= the chunks acknowledged for it;
- a closed session's final file ends with its trailer.

It prints chunks acknowledged vs recovered. Not run in CI::

    python benches/soak.py --procs 4 --writers 8 --seconds 60
    python benches/soak.py --writer pure --sync never --seconds 20

``--reopen-while-listing`` runs another soak: this process reopens
``--writers`` sessions (default 16 there) round-robin as fast as it can
(open, one chunk, abandon) while two reader processes list and verify the
same directory without pause (``list_sessions`` + ``state_of`` in a loop, and
the ``sessionwal verify`` command in a loop); it prints how many opens a
reader made fail (there must be none)::

    python benches/soak.py --reopen-while-listing --seconds 60

``--power-cuts N`` runs N power cuts under powerfs (the FUSE file system of
``tests/powerfs``; needs root, ``/dev/fuse`` and the built binary), cycling
through the writer APIs and sync modes, each checked as
``tests/test_power_loss_fuse.py`` checks it (every promised chunk readable;
every crashed session reopened or repaired ends closed and intact)::

    python benches/soak.py --power-cuts 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

SYNC_MODES = ["never", "close", "interval", "always"]


# ---------------------------------------------------------------- the worker


def payload(sid: str, run: int, index: int) -> dict:
    rng = random.Random(f"{sid}/{run}/{index}")
    size = rng.choice([8, 64, 512, 2048]) if rng.random() < 0.98 else rng.randint(16, 128) << 10
    return {"sid": sid, "run": run, "i": index, "n": size, "pad": "é" * (size // 2)}


def worker(args: argparse.Namespace) -> None:
    from sessionwal import ChunkRow, Session

    if args.writer == "pure":
        from sessionwal.pure import SessionWriter
    else:
        from sessionwal import SessionWriter

    rng = random.Random(args.seed)
    out = sys.stdout.fileno()
    sessions = {}  # sid -> [writer, run, next index]

    def start(sid: str, run: int) -> None:
        sync = args.sync or rng.choice(SYNC_MODES)
        # The header names the run, so the checker can tell the runs apart
        # even when a worker died before acknowledging anything.
        writer = SessionWriter(
            Session(id=sid), sandbox_handle_id=f"run-{run}", sync=sync, sync_interval=0.05
        )
        sessions[sid] = [writer, run, 0]

    for spec in args.resume:
        sid, run = spec.rsplit(":", 1)
        start(sid, int(run))
    fresh = 0
    while len(sessions) < args.writers:
        start(f"{args.name}-{fresh}", 0)
        fresh += 1
    while True:
        sid = rng.choice(sorted(sessions))
        writer, run, index = sessions[sid]
        if rng.random() < 0.002:
            writer.close()
            os.write(out, f"closed {sid} {run} {index}\n".encode())
            del sessions[sid]
            start(f"{args.name}-{fresh}", 0)
            fresh += 1
            continue
        count = rng.randint(2, 16) if rng.random() < 0.1 else 1
        rows = [
            (index + k, ChunkRow("assistant", payload(sid, run, index + k))) for k in range(count)
        ]
        if count == 1:
            writer.write_chunk(*rows[0])
        else:
            writer.write_chunks(rows)
        sessions[sid][2] = index + count
        os.write(out, f"ack {sid} {run} {index + count}\n".encode())


# ---------------------------------------------------------------- the parent


class Soak:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args = args
        self.home = home
        self.rng = random.Random(args.seed)
        self.selector = selectors.DefaultSelector()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.buffers: dict[str, bytes] = {}
        self.owned: dict[str, set[str]] = defaultdict(set)  # worker -> open sids
        self.runs: dict[str, int] = {}  # sid -> current run (writer incarnation)
        self.acked: dict[tuple[str, int], int] = {}
        self.closed: dict[str, tuple[int, int]] = {}  # sid -> (run, chunks)
        self.stats: Counter[str] = Counter()
        self.spawned = 0

    def spawn(self, resume: list[str]) -> None:
        name = f"w{self.spawned}"
        self.spawned += 1
        cmd = [sys.executable, __file__, "--worker", "--name", name, "--writer", self.args.writer]
        cmd += ["--writers", str(self.args.writers), "--seed", str(self.rng.getrandbits(32))]
        if self.args.sync:
            cmd += ["--sync", self.args.sync]
        for sid in resume:
            self.runs[sid] += 1
            cmd += ["--resume", f"{sid}:{self.runs[sid]}"]
            self.owned[name].add(sid)
        env = {**os.environ, "SESSIONWAL_HOME": str(self.home)}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self.selector.register(proc.stdout, selectors.EVENT_READ, name)
        self.procs[name] = proc
        self.buffers[name] = b""

    def handle(self, name: str, line: str) -> None:
        what, sid, run, count = line.split()
        run_n, count_n = int(run), int(count)
        self.runs.setdefault(sid, run_n)
        if what == "ack":
            self.owned[name].add(sid)
            self.acked[(sid, run_n)] = count_n
        else:
            self.owned[name].discard(sid)
            self.closed[sid] = (run_n, count_n)
            self.stats["sessions closed"] += 1

    def drain(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.stdout is not None
        try:
            data = proc.stdout.read() or b""
        except BlockingIOError:
            data = b""
        lines = (self.buffers[name] + data).split(b"\n")
        self.buffers[name] = lines.pop()
        for line in lines:
            self.handle(name, line.decode())

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        self.selector.unregister(proc.stdout)
        self.procs[name] = proc
        os.set_blocking(proc.stdout.fileno(), True)
        self.drain(name)
        del self.procs[name]
        proc.stdout.close()
        self.stats["kills"] += 1

    def run(self) -> None:
        for _ in range(self.args.procs):
            self.spawn([])
        end = time.monotonic() + self.args.seconds
        next_kill = time.monotonic() + self.rng.expovariate(1 / self.args.kill_every)
        while time.monotonic() < end:
            timeout = max(0.0, min(next_kill, end) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                self.drain(key.data)
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    raise SystemExit(f"worker {name} died on its own: exit {proc.returncode}")
            if time.monotonic() >= next_kill:
                victim = self.rng.choice(sorted(self.procs))
                self.kill(victim)
                self.spawn(sorted(self.owned.pop(victim, set())))
                self.stats["reopens"] += 1
                next_kill = time.monotonic() + self.rng.expovariate(1 / self.args.kill_every)
        for name in list(self.procs):
            self.kill(name)

    def verify(self) -> list[str]:
        problems: list[str] = []
        sessions_dir = self.home / "sessions"
        for sid in sorted(self.runs):
            final = sessions_dir / f"{sid}.jsonl"
            if sid in self.closed and not final.exists():
                problems.append(f"{sid}: closed but no final file")
            runs: dict[int, list[dict]] = {}
            # A kill between close's rename and its acknowledgement leaves a
            # final file and, after the reopen, a new partial one: read both.
            for path in (final, sessions_dir / f"{sid}.jsonl.__partial__"):
                if path.exists():
                    problems += self.read_runs(sid, path, runs)
            for run, chunks in sorted(runs.items()):
                indices = [c["index"] for c in chunks]
                if indices != list(range(len(indices))):
                    problems.append(f"{sid} run {run}: indices not contiguous")
                if any(c["payload"] != payload(sid, run, c["index"]) for c in chunks):
                    problems.append(f"{sid} run {run}: a payload is garbled")
                self.stats["chunks recovered"] += len(chunks)
            for (acked_sid, run), acked in self.acked.items():
                if acked_sid != sid:
                    continue
                self.stats["chunks acknowledged"] += acked
                found = len(runs.get(run, []))
                if found < acked:
                    problems.append(f"{sid} run {run}: {acked} acknowledged, {found} on disk")
                    self.stats["acknowledged chunks lost"] += acked - found
            self.stats["sessions"] += 1
        return problems

    def read_runs(self, sid: str, path: Path, runs: dict[int, list[dict]]) -> list[str]:
        data = path.read_bytes()
        self.stats["bytes on disk"] += len(data)
        head, newline, tail = data.rpartition(b"\n")
        if tail:
            self.stats["torn tails"] += 1
        run = -1
        problems = []
        for number, line in enumerate(head.split(b"\n") if newline else [], 1):
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"{path.name}: line {number} is not a whole record")
                # A torn record with the next run's header glued on (the
                # seed's reopen): salvage the header so the count stays honest.
                glued = line.find(b'{"record_type": "header"')
                if glued <= 0:
                    continue
                record = json.loads(line[glued:])
            kind = record["record_type"]
            if kind == "header":
                run = int(record["sandbox_handle_id"].removeprefix("run-"))
                if run in runs:
                    problems.append(f"{path.name}: run {run} appears twice")
                runs[run] = []
            elif kind == "chunk":
                runs[run].append(record)
            elif record["final_chunk_count"] != len(runs[run]):
                problems.append(f"{path.name}: trailer {record} after {len(runs[run])} chunks")
        return problems


_LISTING_READER = """
import sys, time
from sessionwal import files, list_sessions
deadline = time.monotonic() + float(sys.argv[1])
passes = 0
while time.monotonic() < deadline:
    for info in list_sessions():
        files.state_of(info.path)
    passes += 1
print(passes)
"""


def reopen_while_listing(args: argparse.Namespace) -> int:
    """Opens refused while readers list and verify the same directory (see the module doc)."""
    from sessionwal import ChunkRow, PersistenceError, Session, sessions_dir

    if args.writer == "pure":
        from sessionwal.pure import SessionWriter
    else:
        from sessionwal import SessionWriter

    home = Path(tempfile.mkdtemp(prefix="sessionwal-soak-", dir=args.dir))
    os.environ["SESSIONWAL_HOME"] = str(home)
    writers = args.writers if args.writers != 8 else 16
    ids = [f"live-{n}" for n in range(writers)]
    for sid in ids:
        SessionWriter(Session(id=sid)).abandon()
    files_glob = " ".join(str(sessions_dir() / f"{sid}.jsonl.__partial__") for sid in ids)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", _LISTING_READER, str(args.seconds)], stdout=subprocess.PIPE
        ),
        subprocess.Popen(
            [
                "bash",
                "-c",
                f"end=$((SECONDS+{int(args.seconds)})); n=0; while [ $SECONDS -lt $end ]; do "
                f"{sys.executable} -m sessionwal verify {files_glob} >/dev/null; n=$((n+1)); "
                "done; echo $n",
            ],
            stdout=subprocess.PIPE,
        ),
    ]
    opens = refused = 0
    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            for sid in ids:
                opens += 1
                try:
                    writer = SessionWriter(Session(id=sid))
                except PersistenceError:
                    refused += 1
                    continue
                writer.write_chunk(0, ChunkRow("user", {"n": opens}))
                writer.abandon()
        passes = [int(r.communicate()[0] or 0) for r in readers]
    finally:
        for reader in readers:
            reader.kill()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"reopen while listing: {args.writer}, {writers} sessions, {args.seconds:.0f} s: "
        f"{opens} opens, {refused} refused; readers: {passes[0]} list+verify passes, "
        f"{passes[1]} `sessionwal verify` runs"
    )
    print("OK" if not refused else f"FAILED: {refused} opens refused")
    return 1 if refused else 0


def power_cuts(args: argparse.Namespace) -> int:
    """``--power-cuts``: see the module doc."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import powerfs_harness as harness

    reason = harness.unavailable()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 2
    root = Path(tempfile.mkdtemp(prefix="sessionwal-powercuts-", dir=args.dir))
    combos = [(w, s) for w in harness.WRITERS for s in harness.MODES]
    promised = 0
    tails: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    fs = harness.PowerFS(root)
    try:
        for n in range(args.power_cuts):
            writer, sync = combos[n % len(combos)]
            # A fresh home per cut keeps every check bounded by one cut's files.
            home = fs.mount / f"home-{n}"
            (home / "sessions").mkdir(parents=True)
            os.environ["SESSIONWAL_HOME"] = str(home)
            seed = args.seed * 1_000_003 + n
            kept, _note = harness.run_cut(fs, home, writer, sync, seed)
            try:
                tails += harness.check_after_cut(home, kept, seed)
            except AssertionError as exc:
                failures.append(f"{writer}/{sync} seed {seed}: {exc}")
            promised += sum(map(len, kept.values()))
            if not args.keep:
                shutil.rmtree(home, ignore_errors=True)
            if (n + 1) % 100 == 0:
                print(f"  {n + 1} cuts, {promised} chunks promised, {len(failures)} failures")
    finally:
        fs.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"power cuts: {args.power_cuts} in {time.monotonic() - started:.0f} s "
        f"({len(combos)} writer/sync combinations), {promised} chunks promised, "
        f"{len(failures)} cuts lost a promise or left a file not intact"
    )
    print(f"  crashed sessions by tail: {dict(sorted(tails.items()))}")
    for failure in failures[:20]:
        print("  FAILED:", failure)
    print("OK" if not failures else "FAILED")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=4, help="worker processes (M)")
    parser.add_argument("--writers", type=int, default=8, help="open sessions per process (N)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run (T)")
    parser.add_argument("--kill-every", type=float, default=0.5, help="mean seconds between kills")
    parser.add_argument("--writer", choices=["native", "pure"], default="native")
    parser.add_argument("--sync", choices=SYNC_MODES, help="default: random per session")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="where SESSIONWAL_HOME goes (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument(
        "--reopen-while-listing", action="store_true", help="count opens that readers make fail"
    )
    parser.add_argument("--power-cuts", type=int, help="run this many power cuts under powerfs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        worker(args)
        return 0
    if args.reopen_while_listing:
        return reopen_while_listing(args)
    if args.power_cuts:
        return power_cuts(args)
    home = Path(tempfile.mkdtemp(prefix="sessionwal-soak-", dir=args.dir))
    soak = Soak(args, home)
    started = time.monotonic()
    try:
        soak.run()
        problems = soak.verify()
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    s = soak.stats
    print(
        f"soak: {args.procs} processes x {args.writers} writers ({args.writer}, "
        f"sync={args.sync or 'random'}), {time.monotonic() - started:.0f} s, "
        f"{s['kills']} kill -9s"
    )
    for key in [
        "chunks acknowledged",
        "chunks recovered",
        "acknowledged chunks lost",
        "sessions",
        "sessions closed",
        "reopens",
        "torn tails",
        "bytes on disk",
    ]:
        print(f"  {key:26} {s[key]}")
    for problem in problems[:20]:
        print("  PROBLEM:", problem)
    print("OK" if not problems else f"FAILED: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
