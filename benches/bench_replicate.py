"""Replication under load (issue 16): N live sessions of ``chat`` traffic at R chunks/s each.

The sessions are written for ``--duration`` seconds, then left idle for three
intervals (every line ships live) and closed (each becomes one object).

Two writer processes (runtime processes) write the sessions; one replicator
process (``sessionwal.replicate.Replicator``, as ``sessionwal replicate`` runs
it) ships them to ``file://`` or to an S3 endpoint on loopback in its own
process (moto's server, or s3s-fs with ``--store s3s``). Measured:

- lag: from a chunk's write returning (the writer's clock) to the put of the
  first object covering it returning (the replicator's clock; S3 lists an
  object once its put returned), p50 and p99;
- replicator CPU in cores (user + system time over wall time, steady state);
- bytes uploaded per byte written: live segments, and the consolidation of
  closed sessions into one object, apart.

    python benches/bench_replicate.py --sessions 50,200 --store file,s3 --duration 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WRITER = r"""
import json, os, sys, time
from pathlib import Path
from sessionwal import Session, SessionWriter
from sessionwal.bench.workloads import chat

directory, first, count, rate, duration, idle, out = sys.argv[1:]
first, count, rate, duration = int(first), int(count), float(rate), float(duration)
rows = chat(512, seed=first)
ids = [f"bench-{n:05d}" for n in range(first, first + count)]
writers = [SessionWriter(Session(id=i), path=Path(directory) / f"{i}.jsonl") for i in ids]
acks = {i: [] for i in ids}
write_ns = []
period = 1.0 / rate
start = time.monotonic()
tick = 0
while time.monotonic() - start < duration:
    for n, (sid, writer) in enumerate(zip(ids, writers)):
        row = rows[(tick * 7 + n) % len(rows)]
        t0 = time.perf_counter_ns()
        writer.write_chunk(tick, row)
        write_ns.append(time.perf_counter_ns() - t0)
        acks[sid].append((time.time(), os.stat(writer.partial_path).st_size))
    tick += 1
    delay = start + tick * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
# Sessions end after a quiet moment, so every line was shipped live first and
# the lag measures live shipping, not a burst of 1,000 simultaneous closes.
time.sleep(float(idle))
for writer in writers:
    writer.close()
write_ns.sort()
json.dump({"acks": acks, "write_us_p50": write_ns[len(write_ns) // 2] / 1000}, open(out, "w"))
"""

REPLICATOR = r"""
import json, signal, sys, threading, time
from sessionwal.replicate import Replicator

url, directory, interval, workers, out = sys.argv[1:]
events = []
lock = threading.Lock()
def shipped(s):
    with lock:
        events.append((time.time(), s.session_id, s.kind, s.end))
replicator = Replicator(
    url, directory, interval=float(interval), workers=int(workers), on_shipped=shipped
)
passes = []
one_pass = replicator.run_pass
def timed_pass(names=None):
    started = time.monotonic()
    try:
        return one_pass(names)
    finally:
        passes.append(time.monotonic() - started)
replicator.run_pass = timed_pass
signal.signal(signal.SIGTERM, lambda *a: replicator.stop())
replicator.run()
stats = replicator.stats
counters = {k: getattr(stats, k) for k in stats.__slots__}
json.dump({"events": events, "passes": passes, "stats": counters}, open(out, "w"))
"""


#: With --pin: the writers' CPU, and the CPU of everything else (replicator, S3 server).
PIN: dict[str, set[int]] = {}


def _pin(proc: subprocess.Popen[Any], role: str) -> None:
    if role in PIN:
        os.sched_setaffinity(proc.pid, PIN[role])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """An S3 server on loopback in its own process, so its CPU is not the replicator's:
    moto's (``s3``) or s3s-fs's (``s3s``: a Rust server over a directory, from
    ``cargo install s3s-fs --features binary``; its path in ``$S3S_FS``)."""

    def __init__(self, kind: str) -> None:
        self.port = _free_port()
        if kind == "s3":
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            root = tempfile.mkdtemp(prefix="bench-s3s-")
            command = [
                os.environ.get("S3S_FS", "s3s-fs"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--access-key",
                "bench",
                "--secret-key",
                "bench",
                root,
            ]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pin(self.proc, "store")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket=name)
        return f"s3://{name}/fleet"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start_writers(
    directory: Path, work: Path, sessions: int, rate: float, duration: float, idle: float = 0.0
) -> list[subprocess.Popen[bytes]]:
    half = sessions // 2
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(directory),
                str(first),
                str(count),
                str(rate),
                str(duration),
                str(idle),
                str(work / f"w{first}.json"),
            ]
        )
        for first, count in ((0, half), (half, sessions - half))
    ]
    for writer in writers:
        _pin(writer, "writers")
    return writers


def _writer_results(work: Path, half: int) -> tuple[dict[str, list[list[float]]], float]:
    acks: dict[str, list[list[float]]] = {}
    medians = []
    for first in (0, half):
        result = json.loads((work / f"w{first}.json").read_text())
        acks.update(result["acks"])
        medians.append(result["write_us_p50"])
    return acks, round(statistics.mean(medians), 2)


def _writers_only(
    directory: Path, work: Path, sessions: int, rate: float, duration: float
) -> dict[str, Any]:
    for writer in _start_writers(directory, work, sessions, rate, duration):
        writer.wait()
    acks, write_us = _writer_results(work, sessions // 2)
    return {
        "store": "none",
        "sessions": sessions,
        "chunks": sum(len(m) for m in acks.values()),
        "write_us_p50": write_us,
    }


def run_one(
    store: str,
    sessions: int,
    rate: float,
    duration: float,
    interval: float,
    workers: int,
    servers: dict[str, S3Server],
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-replicate-"))
    directory = work / "sessions"
    directory.mkdir()
    env = dict(os.environ)
    server = servers.get(store)
    if server is not None:
        url = server.bucket(f"bench-{sessions}-{int(time.time())}")
        env.update(server.env)
    else:
        url = (work / "store").as_uri()
    if store == "none":  # the writers alone: their per-chunk cost without a replicator
        return _writers_only(directory, work, sessions, rate, duration)
    replicator: subprocess.Popen[bytes] = subprocess.Popen(
        [
            sys.executable,
            "-c",
            REPLICATOR,
            url,
            str(directory),
            str(interval),
            str(workers),
            str(work / "r.json"),
        ],
        env=env,
    )
    _pin(replicator, "store")
    time.sleep(1.0)
    writers = _start_writers(directory, work, sessions, rate, duration, idle=3 * interval)
    half = sessions // 2
    # CPU over the steady middle of the run (start-up and the final consolidation excluded).
    time.sleep(min(2.0, duration / 4))
    store_pid = server.proc.pid if server is not None else None
    cpu0, wall0 = _cpu(replicator.pid), time.monotonic()
    store_cpu0 = _cpu(store_pid) if store_pid else 0.0
    time.sleep(duration - 2 * min(2.0, duration / 4))
    elapsed = time.monotonic() - wall0
    cores = (_cpu(replicator.pid) - cpu0) / elapsed
    store_cores = (_cpu(store_pid) - store_cpu0) / elapsed if store_pid else 0.0
    for writer in writers:
        writer.wait()
    # Let the replicator ship every closed session (the store lists them), then stop it.
    os.environ.update(env)
    from sessionwal.replicate import ObjectStoreClient

    listing = ObjectStoreClient(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        closed = sum(1 for meta in listing.list() if "/closed-" in meta["path"])
        if closed == sessions:
            break
        time.sleep(1.0)
    replicator.send_signal(signal.SIGTERM)
    replicator.wait(timeout=60)
    result = json.loads((work / "r.json").read_text())
    acks, write_us = _writer_results(work, half)
    shipped: dict[str, list[tuple[float, int]]] = {}
    for when, sid, _kind, end in result["events"]:
        shipped.setdefault(sid, []).append((when, end))
    lags = []
    missing = 0
    for sid, marks in acks.items():
        events = sorted(shipped.get(sid, []), key=lambda e: e[1])
        # earliest[j]: when the first of the objects ending at or after events[j]'s end landed.
        earliest = [t for t, _ in events]
        for j in range(len(events) - 2, -1, -1):
            earliest[j] = min(earliest[j], earliest[j + 1])
        j = 0
        for acked, offset in marks:
            while j < len(events) and events[j][1] < offset:
                j += 1
            if j == len(events):
                missing += 1
                continue
            lags.append(earliest[j] - acked)
    written = sum(p.stat().st_size for p in directory.iterdir())
    stats = result["stats"]
    return {
        "store": store,
        "sessions": sessions,
        "chunks": sum(len(m) for m in acks.values()),
        "lag_p50_s": round(_percentile(lags, 0.50), 3),
        "lag_p99_s": round(_percentile(lags, 0.99), 3),
        "unshipped_chunks": missing,
        "write_us_p50": write_us,
        "replicator_cores": round(cores, 3),
        "store_server_cores": round(store_cores, 3),
        "pass_p50_s": round(_percentile(result["passes"], 0.50), 3),
        "pass_p99_s": round(_percentile(result["passes"], 0.99), 3),
        "bytes_written": written,
        "live_per_written": round(stats["live_bytes"] / written, 4),
        "consolidation_per_written": round(stats["closed_bytes"] / written, 4),
        "live_objects": stats["live_objects"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="50,200,1000")
    parser.add_argument(
        "--store",
        default="file,s3",
        help="file, s3 (moto), s3s (s3s-fs), none (the writers alone, for their cost)",
    )
    parser.add_argument("--rate", type=float, default=10.0, help="chunks/s per session")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of traffic")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=16, help="the replicator's (default 16)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="writers on CPU 0, replicator and S3 server on CPU 1: the writers' cost "
        "without the two sharing a core",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.pin:
        PIN.update(writers={0}, store={1})
    servers = {kind: S3Server(kind) for kind in args.store.split(",") if kind in ("s3", "s3s")}
    try:
        rows = []
        for store in args.store.split(","):
            for sessions in (int(n) for n in args.sessions.split(",")):
                row = run_one(
                    store, sessions, args.rate, args.duration, args.interval, args.workers, servers
                )
                rows.append(row)
                print(json.dumps(row) if args.json else row, flush=True)
    finally:
        for server in servers.values():
            server.close()
    print(
        "\n| store | sessions | lag p50 | lag p99 | pass p99 | replicator cores "
        "| S3 server cores | live B/B written | consolidation B/B written | write µs p50 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["store"] == "none":
            continue
        print(
            f"| {r['store']} | {r['sessions']} | {r['lag_p50_s']} s | {r['lag_p99_s']} s "
            f"| {r['pass_p99_s']} s | {r['replicator_cores']} | {r['store_server_cores']} "
            f"| {r['live_per_written']} "
            f"| {r['consolidation_per_written']} | {r['write_us_p50']} |"
        )
    for r in rows:
        if r["store"] == "none":
            print(f"\nwriters alone, {r['sessions']} sessions: write µs p50 {r['write_us_p50']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
