"""The chunk framing the native writer emits and the scanner recognises is the Python builders'.

``sessionwal._native.CHUNK_FRAMING`` holds the fixed bytes of a chunk line (one Rust
constant each, shared by the writer and the scanner). If ``build_chunk_record`` or
its ``json.dumps`` call changed key order, key names or separators, the native
lines would no longer be the pure writer's, and the scanner would stop counting
chunk lines by their prefix: these tests fail first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sessionwal import ChunkKind, ChunkRow, _native
from sessionwal.records import build_chunk_record

CASES = [
    (0, ChunkRow(kind=ChunkKind.USER, payload={"text": "hi"})),
    (41, ChunkRow(kind="tool_result", payload=["é", 1.5, None, {"nested": True}])),
    (2**40, ChunkRow(kind=ChunkKind.ASSISTANT, payload="line\nbreak")),
]


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def test_the_framing_pieces_are_the_ones_the_rust_writer_uses() -> None:
    assert list(_native.CHUNK_FRAMING) == ["prefix", "kind_key", "payload_key", "end"]


@pytest.mark.parametrize(("index", "row"), CASES)
def test_a_builder_line_is_the_framing_around_its_values(index: int, row: ChunkRow) -> None:
    record = build_chunk_record(index, row)
    framing = _native.CHUNK_FRAMING
    framed = (
        framing["prefix"]
        + dumps(index)
        + framing["kind_key"]
        + dumps(record["kind"])
        + framing["payload_key"]
        + dumps(row.payload)
        + framing["end"]
    )
    assert dumps(record) + b"\n" == framed


@pytest.mark.parametrize(("index", "row"), CASES)
def test_the_scanner_counts_a_builder_line_as_a_chunk(index: int, row: ChunkRow) -> None:
    line = dumps(build_chunk_record(index, row)) + b"\n"
    assert line.startswith(_native.CHUNK_FRAMING["prefix"])
    scan = _native.scan(line)
    assert (scan["chunks"], scan["events"]) == (1, [])
