"""The benchmark's workload generators: deterministic, realistic sizes, valid JSON.

A benchmark whose rows change between runs, or drift away from the sizes
docs/performance.md names, measures something else than it claims; these
tests pin the generators (not the timings, which are no test's business).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest

from sessionwal.bench.workloads import WORKLOADS, chat, deltas, large
from sessionwal.model import ChunkKind, ChunkRow


def _line(index: int, row: ChunkRow) -> bytes:
    """The chunk line as the writers encode it (README, "File format")."""
    kind = row.kind.value if isinstance(row.kind, ChunkKind) else row.kind
    record = {"record_type": "chunk", "index": index, "kind": kind, "payload": row.payload}
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _avg_line(rows: list[ChunkRow]) -> float:
    return sum(len(_line(i, r)) for i, r in enumerate(rows)) / len(rows)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [value]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_seed_same_rows_other_seed_other_rows(name: str) -> None:
    n = 4 if name == "large" else 300
    first, again = WORKLOADS[name](n, 7), WORKLOADS[name](n, 7)
    assert first == again
    assert [_line(i, r) for i, r in enumerate(first)] == [_line(i, r) for i, r in enumerate(again)]
    assert WORKLOADS[name](n, 8) != first


@pytest.mark.parametrize("name", sorted(WORKLOADS))
@pytest.mark.parametrize("n", [0, 1, 5, 129])
def test_exact_row_count_and_kinds(name: str, n: int) -> None:
    rows = WORKLOADS[name](n, 0)
    assert len(rows) == n
    assert all(isinstance(r, ChunkRow) and isinstance(r.kind, ChunkKind) for r in rows)
    assert all(isinstance(r.payload, dict) for r in rows)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_record_is_strict_json_and_valid_utf8(name: str) -> None:
    rows = WORKLOADS[name](8 if name == "large" else 400, 3)
    for i, row in enumerate(rows):
        text = json.dumps(row.payload, ensure_ascii=False, allow_nan=False)
        assert json.loads(text) == row.payload
        _line(i, row).decode("utf-8")  # no lone surrogate: the native encoder must accept it


def test_chat_lines_average_about_one_kilobyte() -> None:
    rows = chat(3000, 0)
    assert 600 <= _avg_line(rows) <= 1600
    for seed in (1, 2):
        assert 600 <= _avg_line(chat(1000, seed)) <= 1600


def test_chat_is_shaped_like_an_agent_conversation() -> None:
    rows = chat(2000, 5)
    kinds = {r.kind for r in rows}
    assert {ChunkKind.SYSTEM, ChunkKind.USER, ChunkKind.ASSISTANT, ChunkKind.TOOL_RESULT} <= kinds
    seen_calls: set[str] = set()
    call_counts = set()
    for row in rows:
        payload, content = row.payload, row.payload["content"]
        if row.kind is ChunkKind.USER:
            assert payload["role"] == "user"
            assert 20 <= len(content) <= 300
        elif row.kind is ChunkKind.ASSISTANT:
            assert payload["role"] == "assistant"
            assert 50 <= len(content) <= 800
            assert set(payload["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
            call_counts.add(len(payload["tool_calls"]))
            for call in payload["tool_calls"]:
                assert set(call) == {"id", "name", "arguments"}
                assert isinstance(call["arguments"], dict)
                seen_calls.add(call["id"])
        elif row.kind is ChunkKind.TOOL_RESULT:
            assert payload["tool_call_id"] in seen_calls
            assert 100 <= len(content) <= 3000
    assert call_counts == {0, 1, 2}


def test_chat_mixes_scripts_and_escapes() -> None:
    text = "".join(s for r in chat(500, 0) for s in _strings(r.payload))
    assert any(ch.isascii() and ch.isalpha() for ch in text)
    assert any("LATIN" in unicodedata.name(ch, "") and not ch.isascii() for ch in text)
    assert any(
        "CJK" in unicodedata.name(ch, "") or "HIRAGANA" in unicodedata.name(ch, "") for ch in text
    )
    assert any(ord(ch) >= 0x1F300 for ch in text)  # emoji, outside the BMP
    for needed in ('"', "\\", "\n", "\t"):
        assert needed in text


def test_chat_sprinkles_every_json_scalar_type() -> None:
    values = [v for r in chat(300, 0) for v in _scalars(r.payload)]
    types = {type(v) for v in values}
    assert {str, int, float, bool, type(None)} <= types


def test_deltas_are_small_token_deltas() -> None:
    rows = deltas(5000, 0)
    assert 100 <= _avg_line(rows) <= 250
    assert all(1 <= len(r.payload["delta"]) <= 24 for r in rows)
    assert [r.payload["index"] for r in rows] == list(range(len(rows)))
    assert {r.payload["finish_reason"] for r in rows[:-1]} == {None}
    assert max(len(_line(i, r)) for i, r in enumerate(rows)) < 400


def test_large_rows_are_about_64_kib() -> None:
    for row in large(6, 0):
        size = len(row.payload["content"].encode("utf-8"))
        assert 60 * 1024 <= size <= 72 * 1024
    small = large(3, 0, size=4096)
    assert all(3500 <= len(r.payload["content"].encode("utf-8")) <= 5000 for r in small)
