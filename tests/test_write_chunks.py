"""``write_chunks``: the same bytes as one ``write_chunk`` per item, all or nothing."""

from __future__ import annotations

import json

import pytest

import sessionwal
import sessionwal.pure
from sessionwal import ChunkKind, ChunkRow

from conftest import make_session, read_lines


def rows(n: int, start: int = 0) -> list[ChunkRow]:
    kinds = list(ChunkKind)
    return [
        ChunkRow(kinds[i % len(kinds)], {"text": f'row {i} é世😀\n"q"', "i": i, "f": i / 7})
        for i in range(start, start + n)
    ]


def test_same_bytes_as_write_chunk_calls(writer_cls, tmp_path, fixed_clock):
    items = list(enumerate(rows(50)))
    with writer_cls(make_session(), path=tmp_path / "one.jsonl") as writer:
        for index, row in items:
            writer.write_chunk(index, row)
    with writer_cls(make_session(), path=tmp_path / "many.jsonl") as writer:
        writer.write_chunks(items[:20])
        writer.write_chunks(items[20:])
        assert writer.chunks_written == 50
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "many.jsonl").read_bytes()


def test_pure_and_native_batches_write_identical_files(tmp_path, fixed_clock):
    items = list(enumerate(rows(30)))
    outputs = []
    for name, cls in (("p", sessionwal.pure.SessionWriter), ("n", sessionwal.SessionWriter)):
        with cls(make_session(), path=tmp_path / f"{name}.jsonl") as writer:
            writer.write_chunks(items)
        outputs.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "make_items",
    [
        pytest.param(lambda items: iter(items), id="iterator"),
        pytest.param(lambda items: (pair for pair in items), id="generator"),
        pytest.param(lambda items: [list(pair) for pair in items], id="lists"),
        pytest.param(lambda items: tuple(items), id="tuple"),
        pytest.param(lambda items: dict(items).items(), id="dict-items"),
    ],
)
def test_iterables_of_pairs_are_accepted(writer_cls, tmp_path, make_items):
    items = list(enumerate(rows(5)))
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.write_chunks(make_items(items))
    assert writer.chunks_written == 5
    writer.close()
    chunks = [json.loads(line) for line in read_lines(writer.path)][1:-1]
    assert [c["index"] for c in chunks] == [0, 1, 2, 3, 4]


def test_empty_batch_writes_nothing(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    size = writer.partial_path.stat().st_size
    writer.write_chunks([])
    writer.write_chunks(iter(()))
    assert writer.partial_path.stat().st_size == size
    assert writer.chunks_written == 0
    writer.abandon()


class Opaque:
    pass


def circular() -> dict:
    d: dict = {}
    d["self"] = d
    return d


BAD_ROWS = {
    "unserializable": lambda: ChunkRow("user", {"x": Opaque()}),
    "circular": lambda: ChunkRow("user", circular()),
    "lone-surrogate": lambda: ChunkRow("user", {"x": "ok \udc80 bad"}),
    "no-kind": lambda: 42,
}


def outcome(writer_cls, tmp_path, name: str, items) -> tuple:
    writer = writer_cls(make_session(name), path=tmp_path / f"{name}.jsonl")
    writer.write_chunk(0, rows(1)[0])
    before = writer.partial_path.read_bytes()
    try:
        writer.write_chunks(items)
    except Exception as exc:
        error: tuple = (type(exc), str(exc))
    else:
        error = ("no error",)
    assert writer.partial_path.read_bytes() == before, "a failed batch wrote something"
    assert writer.chunks_written == 1
    writer.write_chunk(1, rows(1, 1)[0])  # still usable
    assert writer.chunks_written == 2
    writer.abandon()
    return error


@pytest.mark.parametrize("bad", sorted(BAD_ROWS))
@pytest.mark.parametrize("position", [0, 3, 9])
def test_one_bad_record_writes_nothing_and_raises_like_pure(tmp_path, bad, position):
    def items():
        batch = list(enumerate(rows(10), start=1))
        batch[position] = (position + 1, BAD_ROWS[bad]())
        return batch

    pure = outcome(sessionwal.pure.SessionWriter, tmp_path / "p", bad, items())
    native = outcome(sessionwal.SessionWriter, tmp_path / "n", bad, iter(items()))
    assert pure[0] is not str
    assert native == pure


def test_earlier_surrogate_and_later_type_error_raise_the_type_error_like_pure(tmp_path):
    # The pure writer dumps every record before it encodes the joined text.
    def items():
        return [(1, BAD_ROWS["lone-surrogate"]()), (2, BAD_ROWS["unserializable"]())]

    pure = outcome(sessionwal.pure.SessionWriter, tmp_path / "p", "x", items())
    native = outcome(sessionwal.SessionWriter, tmp_path / "n", "x", items())
    assert pure[0] is TypeError
    assert native == pure


@pytest.mark.parametrize(
    "item",
    [5, (1,), (1, 2, 3), [1], "ab", None],
    ids=["int", "1-tuple", "3-tuple", "1-list", "2-str", "none"],
)
def test_malformed_pairs_raise_pythons_unpack_error(tmp_path, item):
    batch = [(1, rows(1)[0]), item]
    pure = outcome(sessionwal.pure.SessionWriter, tmp_path / "p", "x", batch)
    native = outcome(sessionwal.SessionWriter, tmp_path / "n", "x", batch)
    assert native == pure
    assert pure[0] in (TypeError, ValueError, AttributeError)


def test_generator_that_raises_midway_writes_nothing(writer_cls, tmp_path):
    def items():
        yield 1, rows(1)[0]
        yield 2, rows(1)[0]
        raise KeyError("producer failed")

    with pytest.raises(KeyError, match="producer failed"):
        outcome_writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
        try:
            outcome_writer.write_chunks(items())
        finally:
            assert outcome_writer.chunks_written == 0
            assert len(read_lines(outcome_writer.partial_path)) == 1
            outcome_writer.abandon()


def test_write_chunks_after_close_raises(writer_cls, tmp_path):
    writer = writer_cls(make_session(), path=tmp_path / "s.jsonl")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write_chunks([(0, rows(1)[0])])


def test_custom_chunk_builder_is_used_by_batches(writer_cls, tmp_path):
    class Custom(writer_cls):
        build_chunk_record = staticmethod(lambda index, row: {"i": index, "body": row.payload})

    with Custom(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunks([(0, ChunkRow("user", {"a": 1})), (1, ChunkRow("user", {"b": 2}))])
    lines = read_lines(tmp_path / "s.jsonl")[1:-1]
    assert lines == ['{"i": 0, "body": {"a": 1}}\n', '{"i": 1, "body": {"b": 2}}\n']
