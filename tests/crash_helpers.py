"""Shared pieces of the crash tests: parsing a WAL file the way a strict
reader would, deterministic payloads a child can write and the parent can
check byte for byte, and a child-process runner."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

WRITER_IMPORTS = {
    "native": "from sessionwal import SessionWriter",
    "pure": "from sessionwal.pure import SessionWriter",
}


def split_wal(data: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The complete lines as records, and the torn tail after the last newline.

    Every complete line must be one JSON object: a torn or garbled line
    anywhere but at the very end raises.
    """
    head, newline, tail = data.rpartition(b"\n")
    if not newline:
        return [], data
    records = []
    for number, line in enumerate((head + newline).splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"line {number} is not a whole record: {line[:80]!r}") from exc
    return records, tail


def payload(seed: int, index: int) -> dict[str, Any]:
    """The payload of chunk ``index``: mostly small, sometimes large enough
    that one ``write(2)`` of it can be cut short by a kill."""
    rng = random.Random(seed * 1_000_003 + index)
    size = rng.choice([10, 100, 1000, 4000]) if rng.random() < 0.7 else rng.randint(64, 1024) << 10
    return {"i": index, "text": 'é世😀"\\\n' + "x" * size}


def check_segment(records: list[dict[str, Any]], seed: int) -> int:
    """Asserts one writer's records: a header, then chunks 0..n-1 with the
    payloads ``payload(seed, i)``, then at most a trailer. Returns n."""
    assert records, "no header"
    assert records[0]["record_type"] == "header"
    chunks = [r for r in records[1:] if r["record_type"] == "chunk"]
    assert [c["index"] for c in chunks] == list(range(len(chunks))), "indices not contiguous"
    for chunk in chunks:
        assert chunk["payload"] == payload(seed, chunk["index"]), "payload garbled"
    rest = records[1 + len(chunks) :]
    assert [r["record_type"] for r in rest] in ([], ["trailer"]), "records after the trailer"
    if rest:
        assert rest[0]["final_chunk_count"] == len(chunks)
    return len(chunks)


def run_python(code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter with the installed sessionwal."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **kwargs,
    )


def popen_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args], **kwargs)


def tree(root: Path) -> dict[str, bytes | None]:
    """Everything under ``root``: file contents, ``None`` for directories."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out
