"""A full disk and a file-size limit, hit in the middle of a record.

Native writer only: the seed (and so the pure writer) has no rollback; its
buffered text file keeps the unwritten bytes and may land a record whose
``write_chunk`` raised. The native writer cuts a failed record back to its
start, raises the ``OSError``, and stays usable.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from crash_helpers import run_python, split_wal

import sessionwal
from sessionwal import ChunkRow

from conftest import make_session

RECORD = ChunkRow("assistant", {"text": "x" * 3000})

EFBIG_CHILD = """
import json, os, resource, sys
from sessionwal import ChunkRow, Session, SessionWriter

path, mode, room = sys.argv[1], sys.argv[2], int(sys.argv[3])
row = ChunkRow("assistant", {"text": "x" * 3000})
writer = SessionWriter(Session(id="fsize"), path=path)
line = len(json.dumps({"record_type": "chunk", "index": 0, "kind": "assistant",
                       "payload": row.payload}, ensure_ascii=False)) + 1
# Room for three records and `room` bytes of the fourth.
limit = os.path.getsize(writer.partial_path) + 3 * line + room
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
acked = 0
try:
    for i in range(10):
        if mode == "batch" and i == 2:
            writer.write_chunks([(2, row), (3, row)])
            acked += 2
        else:
            writer.write_chunk(i, row)
            acked += 1
except OSError as exc:
    size = os.path.getsize(path + ".__partial__")
    print(json.dumps({"acked": acked, "errno": exc.errno, "size": size}))
if mode == "abandon":
    writer.abandon()
else:
    try:
        writer.close()
        print(json.dumps({"closed": True}))
    except OSError as exc:
        print(json.dumps({"closed": False, "errno": exc.errno}))
    writer.close()  # idempotent, even after a failed close
"""


def run_efbig(tmp_path: Path, mode: str, room: int) -> tuple[list[dict], Path]:
    path = tmp_path / "s.jsonl"
    done = run_python(EFBIG_CHILD, str(path), mode, str(room))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], path


@pytest.mark.parametrize("mode", ["chunk", "batch"])
def test_efbig_mid_record_rolls_back_and_close_still_fits(tmp_path, mode):
    (failure, closed), path = run_efbig(tmp_path, mode, room=1500)
    assert failure["errno"] == errno.EFBIG
    expected = 3 if mode == "chunk" else 2
    assert failure["acked"] == expected
    assert closed == {"closed": True}
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    chunks = [r for r in records if r["record_type"] == "chunk"]
    assert [c["index"] for c in chunks] == list(range(expected))
    assert records[-1]["record_type"] == "trailer"
    assert records[-1]["final_chunk_count"] == expected


def test_efbig_then_abandon_leaves_complete_lines(tmp_path):
    (failure, *rest), path = run_efbig(tmp_path, "abandon", room=1500)
    assert failure["errno"] == errno.EFBIG and rest == []
    partial = path.with_name(path.name + ".__partial__")
    data = partial.read_bytes()
    assert len(data) == failure["size"], "abandon wrote nothing"
    records, tail = split_wal(data)
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header", "chunk", "chunk", "chunk"]
    assert not path.exists()


def test_efbig_on_the_trailer_fails_close_and_keeps_the_partial_file(tmp_path):
    (failure, closed), path = run_efbig(tmp_path, "chunk", room=20)
    assert failure["errno"] == errno.EFBIG
    assert closed == {"closed": False, "errno": errno.EFBIG}
    assert not path.exists(), "no rename without a whole trailer"
    records, tail = split_wal(path.with_name(path.name + ".__partial__").read_bytes())
    assert tail == b"", "the torn trailer was cut back"
    assert [r["record_type"] for r in records] == ["header", "chunk", "chunk", "chunk"]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs, unmounted afterwards; skips where mounting is not allowed."""
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) on this machine")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {mounted.stderr.strip()}"
        )
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


class BigUsage:
    """A trailer too large to fit in whatever room a full disk has left."""

    def as_record(self) -> dict:
        return {"padding": "u" * 64 * 1024}


def fill(directory: Path) -> Path:
    """Takes every byte left on the file system; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (512, 64, 1):
            while True:
                try:
                    out.write(b"\0" * size)
                except OSError:
                    break
    return filler


def write_until_full(writer, start: int = 0) -> int:
    big = ChunkRow("tool_result", {"output": "o" * 64 * 1024})
    i = start
    with pytest.raises(OSError) as info:
        while True:
            writer.write_chunk(i, big)
            i += 1
    assert info.value.errno == errno.ENOSPC
    return i


def test_enospc_mid_record_rolls_back_and_the_writer_recovers(small_tmpfs):
    path = small_tmpfs / "s.jsonl"
    writer = sessionwal.SessionWriter(make_session(), path=path)
    acked = write_until_full(writer)
    assert acked > 5
    records, tail = split_wal(writer.partial_path.read_bytes())
    assert tail == b""
    assert check_segment_indices(records) == acked
    # A small record still fits where the big one did not, right after the last line.
    writer.write_chunk(acked, ChunkRow("user", {"text": "small"}))
    writer.close()
    records, tail = split_wal(path.read_bytes())
    assert tail == b"" and records[-1]["final_chunk_count"] == acked + 1


def test_enospc_on_the_trailer_keeps_the_partial_file_and_a_reopen_appends(small_tmpfs):
    path = small_tmpfs / "s.jsonl"
    session = make_session(usage=BigUsage())
    writer = sessionwal.SessionWriter(session, path=path)
    acked = write_until_full(writer)
    filler = fill(small_tmpfs)
    with pytest.raises(OSError) as info:
        writer.close()
    assert info.value.errno == errno.ENOSPC
    writer.close()
    assert not path.exists()
    records, tail = split_wal(writer.partial_path.read_bytes())
    assert tail == b"", "the torn trailer was cut back"
    assert check_segment_indices(records) == acked
    filler.unlink()
    again = sessionwal.SessionWriter(make_session(), path=path)
    again.close()
    kinds = [r["record_type"] for r in split_wal(path.read_bytes())[0]]
    assert kinds == ["header"] + ["chunk"] * acked + ["header", "trailer"]


def test_enospc_in_a_batch_writes_none_of_it(small_tmpfs):
    path = small_tmpfs / "s.jsonl"
    writer = sessionwal.SessionWriter(make_session(), path=path)
    before = writer.partial_path.read_bytes()
    rows = [(i, ChunkRow("tool_result", {"output": "o" * 100_000})) for i in range(20)]
    with pytest.raises(OSError) as info:
        writer.write_chunks(rows)
    assert info.value.errno == errno.ENOSPC
    assert writer.partial_path.read_bytes() == before
    assert writer.chunks_written == 0
    writer.write_chunks(rows[:2])
    writer.abandon()
    records, _ = split_wal(writer.partial_path.read_bytes())
    assert check_segment_indices(records) == 2


def check_segment_indices(records: list[dict]) -> int:
    """Header then chunks 0..n-1; returns n."""
    assert records[0]["record_type"] == "header"
    indices = [r["index"] for r in records[1:]]
    assert indices == list(range(len(indices)))
    return len(indices)
