"""Hostile payloads: the pure writer's exception (type and message), nothing
written for that record, and the writer still usable afterwards."""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import split_wal

from sessionwal import ChunkRow

from conftest import WRITERS, depth_json_dumps_refuses, make_session


def cycle_dict() -> dict:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def cycle_list() -> dict:
    items: list[Any] = [1]
    items.append(items)
    return {"items": items}


def deep(depth: int) -> dict:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return {"deep": value}


class Exploding:
    """A row whose payload attribute raises."""

    kind = "assistant"

    @property
    def payload(self) -> dict:
        raise KeyError("payload went away")


HOSTILE: dict[str, tuple[Callable[[], Any], type[BaseException]]] = {
    "lone surrogate": (lambda: ChunkRow("user", {"text": "ok \ud800 no"}), UnicodeEncodeError),
    "surrogate key": (lambda: ChunkRow("user", {"\udfff": 1}), UnicodeEncodeError),
    "surrogate kind": (lambda: ChunkRow("\ud83d", {}), UnicodeEncodeError),
    "object": (lambda: ChunkRow("user", {"x": object()}), TypeError),
    "set": (lambda: ChunkRow("user", {"x": {1, 2}}), TypeError),
    "bytes": (lambda: ChunkRow("user", {"x": b"raw"}), TypeError),
    "tuple key": (lambda: ChunkRow("user", {(1, 2): "x"}), TypeError),
    "dict cycle": (lambda: ChunkRow("user", cycle_dict()), ValueError),
    "list cycle": (lambda: ChunkRow("user", cycle_list()), ValueError),
    "too deep": (lambda: ChunkRow("user", deep(2 * depth_json_dumps_refuses())), RecursionError),
    "payload raises": (Exploding, KeyError),
}


def outcome(call: Callable[[], object]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


def attempt(cls: type, path: Path, how: str, row: Any) -> tuple[type[BaseException], str]:
    """Opens a writer, fails one record, then proves the writer still works."""
    writer = cls(make_session(), path=path)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    before = writer.partial_path.read_bytes()
    if how == "write_chunk":
        result = outcome(lambda: writer.write_chunk(1, row))
    else:
        good = ChunkRow("user", {"n": "good"})
        result = outcome(lambda: writer.write_chunks([(1, good), (2, row), (3, good)]))
    assert writer.partial_path.read_bytes() == before, "bytes written for a failed record"
    assert writer.chunks_written == 1
    writer.write_chunk(1, ChunkRow("user", {"n": 1}))
    writer.close()
    records, tail = split_wal(path.read_bytes())
    assert tail == b""
    assert [r["record_type"] for r in records] == ["header", "chunk", "chunk", "trailer"]
    assert records[-1]["final_chunk_count"] == 2
    return result


@pytest.mark.parametrize("how", ["write_chunk", "write_chunks"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_record_raises_like_pure_and_writes_nothing(tmp_path, case, how):
    make_row, expected = HOSTILE[case]
    results = {
        name: attempt(cls, tmp_path / f"{name}.jsonl", how, make_row())
        for name, cls in WRITERS.items()
    }
    if how == "write_chunks" and expected is UnicodeEncodeError:
        # The pure writer encodes the joined batch, so its position counts
        # from the batch's first byte; the native one's from the record's.
        results = {
            name: (t, re.sub(r"position \d+", "position N", m)) for name, (t, m) in results.items()
        }
    assert results["native"] == results["pure"]
    assert issubclass(results["native"][0], expected), results


def test_a_writer_dropped_after_a_hostile_record_releases_its_file(tmp_path, writer_cls):
    """A runtime that gives up on a writer after an unencodable record and
    drops it: the file is closed (no ResourceWarning), the lock released, the
    records written so far stay in the partial file."""
    path = tmp_path / "s.jsonl"
    writer = writer_cls(make_session(), path=path)
    writer.write_chunk(0, ChunkRow("user", {"n": 0}))
    with pytest.raises(TypeError):
        writer.write_chunk(1, ChunkRow("user", {"x": object()}))
    partial = writer.partial_path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del writer
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    records, tail = split_wal(partial.read_bytes())
    assert tail == b"" and [r["record_type"] for r in records] == ["header", "chunk"]
    writer_cls(make_session(), path=path).close()  # the lock is free


def test_hostile_trailer_leaves_the_partial_file_like_pure(tmp_path):
    class BadUsage:
        def as_record(self) -> dict:
            return {"tokens": {1, 2}}

    results = {}
    for name, cls in WRITERS.items():
        path = tmp_path / f"{name}.jsonl"
        writer = cls(make_session(usage=BadUsage()), path=path)
        writer.write_chunk(0, ChunkRow("user", {"n": 0}))
        results[name] = outcome(writer.close)
        writer.close()  # idempotent
        assert not path.exists()
        records, tail = split_wal(writer.partial_path.read_bytes())
        assert tail == b"" and [r["record_type"] for r in records] == ["header", "chunk"]
        with pytest.raises(RuntimeError, match="closed"):
            writer.write_chunk(1, ChunkRow("user", {}))
    assert results["native"] == results["pure"]
    assert results["native"][0] is TypeError


def test_hostile_header_raises_like_pure_and_leaves_no_lock(tmp_path):
    results = {}
    for name, cls in WRITERS.items():
        path = tmp_path / f"{name}.jsonl"
        session = make_session(sandbox_spec={"handle": object()})
        results[name] = outcome(lambda cls=cls, path=path, s=session: cls(s, path=path))
        # Like the seed: the empty partial file stays, and the lock is released.
        assert path.with_name(path.name + ".__partial__").read_bytes() == b""
        cls(make_session(), path=path).close()
    assert results["native"] == results["pure"]
    assert results["native"][0] is TypeError


def test_a_mutating_payload_cannot_tear_a_record(tmp_path):
    """One dict, mutated between calls: each record holds the dict as it
    was when its call was made, encoded whole before its single write."""
    results = {}
    for name, cls in WRITERS.items():
        path = tmp_path / f"{name}.jsonl"
        writer = cls(make_session(), path=path)
        payload: dict[str, Any] = {}
        for i in range(50):
            payload[f"k{i}"] = "v" * i
            writer.write_chunk(i, ChunkRow("user", payload))
        writer.close()
        records, _ = split_wal(path.read_bytes())
        results[name] = [len(r["payload"]) for r in records[1:-1]]
    assert results["native"] == results["pure"] == list(range(1, 51))
