"""Stores for the replication tests: ``file://`` and a real S3 endpoint on loopback.

The S3 endpoint is moto's server (``ThreadedMotoServer``: an HTTP server on
127.0.0.1 in a thread of the test process, spoken to over the network by
obstore, and by replicator subprocesses). Its data lives in the test process,
so stopping and starting it on the same port keeps the bucket: that is the
store outage the tests play.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

obstore = pytest.importorskip("obstore", reason="obstore not installed (the 'replicate' extra)")

SECRET = "s3cr3t-never-printed-4711"
_bucket_numbers = itertools.count()


class MotoEndpoint:
    """One moto server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self) -> None:
        server_module = pytest.importorskip("moto.server", reason="moto[server] not installed")
        self._server_cls = server_module.ThreadedMotoServer
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: Any = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            server = self._server_cls(ip_address="127.0.0.1", port=self.port, verbose=False)
            try:
                server.start()
                break
            except OSError:  # the port of the server just stopped, not released yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
        }

    def create_bucket(self) -> str:
        import boto3

        name = f"sessions-{os.getpid()}-{next(_bucket_numbers)}"
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        client.close()
        return name


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[MotoEndpoint]:
    endpoint = MotoEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def s3_url(moto_endpoint: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback endpoint, with the AWS_* environment pointing at it."""
    for name, value in moto_endpoint.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{moto_endpoint.create_bucket()}/fleet"


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs against file:// and against the loopback S3 endpoint."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    return str(request.getfixturevalue("s3_url"))


def sessionwal_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m sessionwal ARGS`` with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "sessionwal", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=kwargs.pop("timeout", 60),
        **kwargs,
    )


def sessionwal_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sessionwal", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Any, timeout: float = 20.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def complete_prefix(data: bytes) -> bytes:
    """``data`` up to and including its last newline: what a restore gives back."""
    return data[: data.rfind(b"\n") + 1]
