"""The replicator killed at any point, and the store going away: no gap, no duplicate.

A crash is played two ways: in process, by a store client that raises at the
N-th point of a run (before or after each store operation: every point a
``kill -9`` could hit as far as the store can tell), for every N; and for
real, by ``kill -9`` of a ``sessionwal replicate`` process at random moments.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from replicate_fixtures import (
    SECRET,
    MotoEndpoint,
    moto_endpoint,
    s3_url,
    sessionwal_cli,
    sessionwal_popen,
    store_url,
    wait_until,
)
from test_replicate import assert_no_gap_no_duplicate, chunk, layout, open_writer, restored_bytes

from sessionwal.replicate import ObjectStoreClient, Replicator

__all__ = ["moto_endpoint", "s3_url", "store_url"]  # fixtures, re-exported for pytest


class Crash(BaseException):
    """Stands for the process dying: nothing in the replicator catches it."""


class CrashingClient:
    """Passes operations to ``inner`` and dies at crash point ``crash_at``.

    Point 2k is just before operation k reaches the store, point 2k+1 just
    after it did (and before the replicator learned it had).
    """

    def __init__(self, inner: ObjectStoreClient, crash_at: int) -> None:
        self.inner = inner
        self.display = inner.display
        self.crash_at = crash_at
        self.point = 0

    def _at(self) -> None:
        if self.point == self.crash_at:
            raise Crash
        self.point += 1

    def _call(self, name: str, *args: Any) -> Any:
        self._at()
        value = getattr(self.inner, name)(*args)
        self._at()
        return value

    def list(self, prefix: str | None = None) -> Any:
        return self._call("list", prefix)

    def put(self, key: str, data: Any) -> None:
        self._call("put", key, data)

    def delete(self, keys: list[str]) -> None:
        self._call("delete", keys)


def _history(sessions: Path) -> list[Any]:
    """Three stages of local files; the replicator makes one pass after each."""
    writers: dict[str, Any] = {}

    def stage0() -> None:
        writers["a"] = open_writer(sessions, "a", 3)
        writers["b"] = open_writer(sessions, "b", 2)
        open_writer(sessions, "c", 4).close()

    def stage1() -> None:
        for i in range(3, 6):
            writers["a"].write_chunk(i, chunk(i))
        writers["b"].close()

    def stage2() -> None:
        writers["a"].close()
        open_writer(sessions, "d", 1).abandon()

    return [stage0, stage1, stage2]


def test_replicator_killed_at_every_point_then_rerun(store_url: str, tmp_path: Path) -> None:
    crash_at = 0
    while True:
        run = tmp_path / f"run{crash_at}"
        sessions = run / "sessions"
        url = store_url.rstrip("/") + f"/run{crash_at}"
        client = CrashingClient(ObjectStoreClient(url), crash_at)
        replicator = Replicator(url, sessions, workers=1, client=client)  # type: ignore[arg-type]
        crashed = False
        for stage in _history(sessions):
            stage()
            try:
                assert replicator.run_pass().ok
            except Crash:
                crashed = True
                # The rerun: a new process knows only what the store lists.
                replicator = Replicator(url, sessions, workers=1)
                assert replicator.run_pass().ok
        assert_no_gap_no_duplicate(url)
        assert {sid: sorted(gens) for sid, gens in layout(url).items()} == {
            sid: [1] for sid in "abcd"
        }, f"crash point {crash_at}: a spurious generation"
        assert restored_bytes(url, run / "restored") == {
            p.name: p.read_bytes() for p in sorted(sessions.iterdir())
        }, f"crash point {crash_at}"
        if not crashed:
            break  # past the last point of the whole history
        crash_at += 1
    assert crash_at > 10  # the history does reach that many store operations


def test_replicator_kill9_at_random_moments_then_rerun(store_url: str, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    stop = threading.Event()

    def traffic() -> None:
        writers = [open_writer(sessions, f"w{n}", 1) for n in range(4)]
        i = 1
        while not stop.is_set():
            for n, writer in enumerate(writers):
                writer.write_chunk(i, chunk(i))
                if i % 40 == n * 10:  # sessions close now and then; new ones start
                    writer.close()
                    writers[n] = open_writer(sessions, f"w{n}-{i}", 1)
            i += 1
            time.sleep(0.002)
        for writer in writers:
            writer.close()

    writer_thread = threading.Thread(target=traffic)
    writer_thread.start()
    try:
        for _ in range(5):
            proc = sessionwal_popen(
                "replicate", store_url, "--dir", str(sessions), "--interval", "0.02", "-q"
            )
            time.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
    finally:
        stop.set()
        writer_thread.join()
    final = sessionwal_cli("replicate", store_url, "--dir", str(sessions), "--once")
    assert final.returncode == 0, (seed, final.stderr)
    assert_no_gap_no_duplicate(store_url)
    assert all(list(gens) == [1] for gens in layout(store_url).values()), seed
    assert restored_bytes(store_url, tmp_path / "restored") == {
        p.name: p.read_bytes() for p in sorted(sessions.iterdir())
    }, seed


def test_store_stopped_and_restarted_mid_stream(
    moto_endpoint: MotoEndpoint, s3_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    replicator = Replicator(s3_url, sessions, interval=0.05, timeout=2.0)
    replicator.start()
    writers = [open_writer(sessions, f"s{n}", 1) for n in range(3)]
    try:
        for i in range(1, 20):
            for writer in writers:
                writer.write_chunk(i, chunk(i))
            time.sleep(0.01)
        wait_until(lambda: len(layout(s3_url)) == 3)
        moto_endpoint.stop()
        try:
            for i in range(20, 60):  # written while the store is gone
                for writer in writers:
                    writer.write_chunk(i, chunk(i))
            writers[0].close()
            time.sleep(1.5)  # several failed passes, backing off
        finally:
            moto_endpoint.start()

        def caught_up() -> bool:
            files = {p.name: p.read_bytes() for p in sessions.iterdir()}
            target = tmp_path / f"restored-{time.monotonic_ns()}"
            return restored_bytes(s3_url, target) == files

        wait_until(caught_up, timeout=40, step=0.5)
    finally:
        replicator.stop(timeout=10)
        for writer in writers:
            writer.close()
    assert_no_gap_no_duplicate(s3_url)


def test_store_outage_does_not_stop_a_once_run_that_recovers(
    moto_endpoint: MotoEndpoint, s3_url: str, tmp_path: Path
) -> None:
    sessions = tmp_path / "sessions"
    count = 3
    for n in range(count):
        open_writer(sessions, f"o{n}", 2).close()
    moto_endpoint.stop()
    proc = sessionwal_popen(
        "replicate", s3_url, "--dir", str(sessions), "--once", "--timeout", "30"
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the store comes back once the sidecar has failed
            seen.append(line)
            if "retrying" in line:
                break
    finally:
        moto_endpoint.start()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(seen) + err
    assert any("retrying" in line for line in seen)
    assert sorted(layout(s3_url)) == [f"o{n}" for n in range(count)]


def test_continuous_mode_logs_a_missing_bucket_and_ships_once_it_exists(
    moto_endpoint: MotoEndpoint, s3_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = tmp_path / "sessions"
    open_writer(sessions, "early", 2).close()
    bucket = f"late-{time.monotonic_ns()}"
    url = f"s3://{bucket}/fleet"
    replicator = Replicator(url, sessions, interval=0.05, timeout=2.0)
    with caplog.at_level(logging.WARNING, logger="sessionwal.replicate"):
        replicator.start()
        try:
            wait_until(lambda: any("NoSuchBucket" in r.getMessage() for r in caplog.records))
            import boto3

            boto3.client("s3", endpoint_url=moto_endpoint.url).create_bucket(Bucket=bucket)
            wait_until(lambda: "early" in layout(url), timeout=40, step=0.2)
        finally:
            replicator.stop(timeout=10)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_bad_credentials_are_one_line_and_exit_2(tmp_path: Path) -> None:
    """Against a moto server that checks signatures (its own process, auth on)."""
    pytest.importorskip("moto.server", reason="moto[server] not installed")
    sessions = tmp_path / "sessions"
    open_writer(sessions, "x", 1).close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _listening(port), timeout=30)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }
        run = sessionwal_cli(
            "replicate", "s3://some-bucket/p", "--dir", str(sessions), "--once", env=env
        )
    finally:
        server.terminate()
        server.wait()
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("sessionwal:")]
    assert len(errors) == 1, run.stderr
    assert "InvalidAccessKeyId" in errors[0] or "403" in errors[0], errors[0]
    assert SECRET not in run.stderr + run.stdout


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def test_sigterm_exits_0_within_seconds_while_the_store_hangs(tmp_path: Path) -> None:
    """A store that accepts connections and never answers: SIGTERM still ends the
    sidecar promptly, with status 0 (the put cut short was never written)."""
    sessions = tmp_path / "sessions"
    open_writer(sessions, "stuck", 2).close()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "sessionwal", "replicate", "s3://b/p", "--dir", str(sessions)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            assert "replicating" in proc.stderr.readline()  # it runs; the store hangs
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            _, err = proc.communicate(timeout=8)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 6
    assert "did not answer within 3 s" in err
    assert SECRET not in err
