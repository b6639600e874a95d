"""Every session object a runtime plausibly passes closes with the expected bytes.

Both writers share the record builders, so comparing them with each other
proves nothing here: each case is checked against fixed expected records.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace

import pytest

import sessionwal
from sessionwal import ChunkRow, Usage

from conftest import FIXED_CLOSED_AT

EXPECTED_USAGE = {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}


@dataclasses.dataclass
class DataclassUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SlotsUsage:
    __slots__ = ("completion_tokens", "prompt_tokens", "total_tokens")

    def __init__(self, prompt_tokens: int, completion_tokens: int, total_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.total_tokens = total_tokens


class PropertyUsage:
    """Like a pydantic model or an ORM row: attributes computed on access."""

    @property
    def prompt_tokens(self) -> int:
        return 12

    @property
    def completion_tokens(self) -> int:
        return 40

    @property
    def total_tokens(self) -> int:
        return 52


USAGES = {
    "none": (None, None),
    "ours": (Usage(prompt_tokens=12, completion_tokens=40), EXPECTED_USAGE),
    "dataclass": (DataclassUsage(12, 40, 52), EXPECTED_USAGE),
    "namespace": (
        SimpleNamespace(prompt_tokens=12, completion_tokens=40, total_tokens=52),
        EXPECTED_USAGE,
    ),
    "slots": (SlotsUsage(12, 40, 52), EXPECTED_USAGE),
    "properties": (PropertyUsage(), EXPECTED_USAGE),
    "dict": (
        {"total_tokens": 52, "prompt_tokens": 12, "completion_tokens": 40, "x": 1},
        EXPECTED_USAGE,
    ),
    "mapping proxy": (MappingProxyType(dict(EXPECTED_USAGE)), EXPECTED_USAGE),
    "extra attributes": (
        SimpleNamespace(prompt_tokens=1, completion_tokens=2, total_tokens=3, cost=0.5),
        {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    ),
}


def records_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("case", sorted(USAGES))
def test_usage_by_shape_writes_the_three_counts(writer_cls, fixed_clock, case):
    usage, expected = USAGES[case]
    session = SimpleNamespace(id="u", usage=usage)
    with writer_cls(session) as writer:
        writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    trailer_line = writer.path.read_bytes().splitlines()[-1]
    expected_trailer = {
        "record_type": "trailer",
        "closed_at": FIXED_CLOSED_AT.isoformat(),
        "final_chunk_count": 1,
        "cumulative_usage": expected,
    }
    assert trailer_line == json.dumps(expected_trailer, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    "usage, missing",
    [
        (SimpleNamespace(prompt_tokens=1, completion_tokens=2), "total_tokens"),
        ({"prompt_tokens": 1}, "completion_tokens or total_tokens"),
        (42, "prompt_tokens or completion_tokens or total_tokens"),
        ("12 tokens", "prompt_tokens or completion_tokens or total_tokens"),
    ],
)
def test_usage_of_another_shape_fails_close_and_keeps_the_partial_file(writer_cls, usage, missing):
    session = SimpleNamespace(id="bad-usage", usage=usage)
    writer = writer_cls(session)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    before = writer.partial_path.read_bytes()
    with pytest.raises(TypeError, match=rf"session 'bad-usage': usage .* has no {missing}"):
        writer.close()
    assert writer.partial_path.read_bytes() == before  # nothing of a trailer written
    assert not writer.path.exists()
    assert writer.closed
    # The partial file is released: the session can be reopened and closed.
    session.usage = None
    with writer_cls(session) as again:
        again.write_chunk(1, ChunkRow("user", {"n": 1}))
    assert sessionwal.load_session("bad-usage").closed


NAIVE = datetime(2026, 1, 2, 3, 4, 5, 678901)
AWARE = NAIVE.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "fields, expected",
    [
        (
            {"lineage_extras": {"a": 1, "b": [2]}, "parent_session_ids": ("p1", "p2")},
            {"lineage_extras": [["a", 1], ["b", [2]]], "parent_session_ids": ["p1", "p2"]},
        ),
        (
            {
                "lineage_extras": [("a", 1), ("b", None)],
                "parent_session_ids": dict.fromkeys(["p"]).keys(),
            },
            {"lineage_extras": [["a", 1], ["b", None]], "parent_session_ids": ["p"]},
        ),
        (
            {"lineage_extras": OrderedDict(z=0), "parent_session_ids": [7, "x"]},
            {"lineage_extras": [["z", 0]], "parent_session_ids": ["7", "x"]},
        ),
        (
            {"lineage_extras": None, "parent_session_ids": None},
            {"lineage_extras": [], "parent_session_ids": []},
        ),
        ({"created_at": NAIVE}, {"created_at": "2026-01-02T03:04:05.678901"}),
        ({"created_at": AWARE}, {"created_at": "2026-01-02T03:04:05.678901+00:00"}),
        (
            {
                "lineage_operator": "fork",
                "lineage_kind": "branch",
                "sandbox_backend": "docker",
                "sandbox_spec": {"image": "py"},
            },
            {
                "lineage_operator": "fork",
                "lineage_kind": "branch",
                "sandbox_backend": "docker",
                "sandbox_spec": {"image": "py"},
            },
        ),
    ],
)
def test_header_fields_read_by_shape(writer_cls, fields, expected):
    session = SimpleNamespace(**{"id": "h", "created_at": AWARE, **fields})
    with writer_cls(session, sandbox_handle_id="sbx-1") as writer:
        pass
    header = records_of(writer.path)[0]
    base = {
        "record_type": "header",
        "schema_version": 1,
        "id": "h",
        "created_at": AWARE.isoformat(),
        "parent_session_ids": [],
        "lineage_operator": None,
        "lineage_kind": None,
        "lineage_extras": [],
        "sandbox_backend": None,
        "sandbox_spec": None,
        "sandbox_handle_id": "sbx-1",
    }
    assert list(header) == list(base)
    assert header == {**base, **expected}
