"""Random histories of session files and replicator passes (some killed part way):
after a final clean pass, a restore gives back exactly what the host holds, and
the store has no gap and no duplicate. file:// only: the S3 behaviour of each
operation is covered in test_replicate.py and test_replicate_faults.py.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replicate import assert_no_gap_no_duplicate, restored_bytes
from test_replicate_faults import Crash, CrashingClient

from sessionwal.records import valid_log
from sessionwal.replicate import ObjectStoreClient, Replicator

IDS = ("a", "b")
_runs = itertools.count()

operation = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(IDS), st.integers(1, 4)),
    st.tuples(st.just("torn"), st.sampled_from(IDS)),
    st.tuples(st.just("close"), st.sampled_from(IDS)),
    st.tuples(st.just("cut"), st.sampled_from(IDS), st.floats(0.0, 1.0)),
    st.tuples(st.just("pass"), st.none() | st.integers(0, 12)),
)


class Host:
    """A sessions directory changed the way writers, crashes and power losses change it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True)
        self.lines = itertools.count()

    def partial(self, sid: str) -> Path:
        return self.directory / f"{sid}.jsonl.__partial__"

    def line(self, sid: str) -> bytes:
        return f'{{"record_type": "chunk", "id": "{sid}", "n": {next(self.lines)}}}\n'.encode()

    def append(self, sid: str, count: int) -> None:
        path = self.partial(sid)
        if path.exists():
            # A reopening writer cuts the crash tail: the log ends at its last
            # valid record (the recovery rule, docs/durability.md).
            os.truncate(path, valid_log(path).end)
        with open(path, "ab") as f:
            if f.tell() == 0:  # a writer opening (or reopening a closed id) writes a header
                f.write(f'{{"record_type": "header", "id": "{sid}"}}\n'.encode())
            for _ in range(count):
                f.write(self.line(sid))

    def torn(self, sid: str) -> None:
        path = self.partial(sid)
        if path.exists() and path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as f:
                f.write(b'{"record_type": "chunk", "n": ')

    def close(self, sid: str) -> None:
        path = self.partial(sid)
        if path.exists() and path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as f:
                f.write(b'{"record_type": "trailer"}\n')
            os.replace(path, self.directory / f"{sid}.jsonl")

    def cut(self, sid: str, fraction: float) -> None:
        """A power loss keeps a prefix; the writer reopens and writes past it."""
        path = self.partial(sid)
        if path.exists():
            data = path.read_bytes()
            path.write_bytes(data[: int(len(data) * fraction)])
            self.append(sid, 2)

    def expected(self) -> dict[str, bytes]:
        files = {}
        for path in sorted(self.directory.iterdir()):
            data = path.read_bytes()
            if path.name.endswith(".__partial__"):
                data = data[: valid_log(path).end]  # what any reader of it reads
            if data:
                files[path.name] = data
        return files


@settings(
    max_examples=int(os.environ.get("REPLICATE_HISTORIES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(operation, min_size=1, max_size=14))
def test_random_histories_restore_what_the_host_holds(
    tmp_path: Path, history: list[tuple[object, ...]]
) -> None:
    run = tmp_path / f"run{next(_runs)}"
    host = Host(run / "sessions")
    url = (run / "store").as_uri()
    replicator = Replicator(url, host.directory, workers=1)
    for op, *args in history:
        if op == "pass":
            [crash_at] = args
            if crash_at is not None:
                client = CrashingClient(ObjectStoreClient(url), crash_at)
                replicator = Replicator(url, host.directory, workers=1, client=client)  # type: ignore[arg-type]
            try:
                assert replicator.run_pass().ok
            except Crash:
                pass
            replicator = Replicator(url, host.directory, workers=1)  # the rerun
        else:
            getattr(host, str(op))(*args)
    assert Replicator(url, host.directory, workers=1).run_pass().ok
    assert_no_gap_no_duplicate(url)
    assert restored_bytes(url, run / "restored") == host.expected()
