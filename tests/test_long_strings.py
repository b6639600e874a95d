"""Long strings are escaped outside the GIL (rust/encode/defer.rs): same bytes, same errors.

Strings of at least 8192 code points are left out of the buffer while the
record is walked and spliced in detached. Every CPython string kind goes
through that path here, and a lone surrogate in such a string, only found
after the walk, must still write nothing and raise what the pure writer raises.
"""

from __future__ import annotations

import json

import pytest

import sessionwal
import sessionwal.pure
from sessionwal import ChunkRow
from sessionwal._native import encode_record

from conftest import make_session, read_lines

LONG = 8192
TEXTS = {
    "ascii": 'plain "quoted" \\ text\n\t' * (LONG // 8),
    "latin1": "café ÿ\x00\x1f " * (LONG // 4),
    "ucs2": "数据库 — “ok”\n" * (LONG // 4),
    "ucs4": 'emoji 😀 🇯🇵 \u2028"' * (LONG // 4),
    "exactly-at-threshold": "x" * (LONG - 1) + "é",
    "just-below-threshold": "y" * (LONG - 2) + "é",
}


def long_rows() -> list[ChunkRow]:
    rows = []
    for i, (name, text) in enumerate(TEXTS.items()):
        rows.append(ChunkRow("tool_result", {"name": name, "content": text, "n": i}))
        rows.append(ChunkRow("assistant", {text: "a long key", "list": [text, 1.5, None]}))
    return rows


def write_file(cls, path, rows, batched: bool) -> bytes:
    with cls(make_session(), path=path) as writer:
        if batched:
            writer.write_chunks(list(enumerate(rows)))
        else:
            for i, r in enumerate(rows):
                writer.write_chunk(i, r)
    return path.read_bytes()


@pytest.mark.parametrize("batched", [False, True], ids=["write_chunk", "write_chunks"])
def test_long_strings_of_every_kind_write_the_pure_bytes(tmp_path, fixed_clock, batched):
    rows = long_rows()
    pure = write_file(sessionwal.pure.SessionWriter, tmp_path / "p.jsonl", rows, batched=False)
    native = write_file(sessionwal.SessionWriter, tmp_path / "n.jsonl", rows, batched)
    assert native == pure
    assert native.count(b"\n") == len(rows) + 2


def outcome(cls, path, call) -> tuple:
    writer = cls(make_session(), path=path)
    before = path.with_name(path.name + ".__partial__").read_bytes()
    try:
        call(writer)
    except Exception as exc:
        result: tuple = (type(exc), str(exc))
    else:
        result = ("no error",)
    assert writer.partial_path.read_bytes() == before
    assert writer.chunks_written == 0
    writer.abandon()
    return result


SURROGATE_TEXTS = {
    "ucs2": "数据" * LONG + "\udc80",
    "ucs4": "😀" * LONG + "\ud800 tail",
    "start": "\udfff" + "x" * LONG,
}


@pytest.mark.parametrize("where", sorted(SURROGATE_TEXTS))
@pytest.mark.parametrize(
    "how",
    ["write_chunk", "write_chunks-list", "write_chunks-tuple", "write_chunks-generator"],
)
def test_a_lone_surrogate_in_a_long_string_writes_nothing_and_raises_like_pure(
    tmp_path, where, how
):
    bad = ChunkRow("user", {"content": SURROGATE_TEXTS[where]})
    good = ChunkRow("user", {"content": TEXTS["ucs2"]})
    items = [(0, good), (1, bad), (2, good)]

    def call(writer):
        if how == "write_chunk":
            writer.write_chunk(1, bad)
        elif how == "write_chunks-list":
            writer.write_chunks(items)
        elif how == "write_chunks-tuple":
            writer.write_chunks(tuple(items))
        else:
            writer.write_chunks(pair for pair in items)

    pure = outcome(sessionwal.pure.SessionWriter, tmp_path / "p.jsonl", call)
    native = outcome(sessionwal.SessionWriter, tmp_path / "n.jsonl", call)
    assert pure[0] is UnicodeEncodeError
    assert native == pure


def test_encoding_through_another_writer_inside_a_chunk_builder(tmp_path):
    # The builder encodes long strings on the same thread while the outer
    # record is being built: neither may end up in the other's buffer.
    side_path = tmp_path / "side.jsonl"

    def builder(index, row):
        inner = encode_record({"inner": TEXTS["ucs4"]})
        with sessionwal.SessionWriter(make_session("side"), path=side_path) as side:
            side.write_chunk(0, ChunkRow("user", {"side": TEXTS["latin1"]}))
        return {"i": index, "inner_len": len(inner), "body": row.payload}

    class Custom(sessionwal.SessionWriter):
        build_chunk_record = staticmethod(builder)

    rows = [ChunkRow("user", {"outer": TEXTS["ucs2"]}), ChunkRow("user", {"outer": "short"})]
    with Custom(make_session(), path=tmp_path / "s.jsonl") as writer:
        writer.write_chunk(0, rows[0])
        writer.write_chunks([(1, rows[1]), (2, rows[0])])
    lines = read_lines(tmp_path / "s.jsonl")[1:-1]
    expected_inner = len((json.dumps({"inner": TEXTS["ucs4"]}, ensure_ascii=False) + "\n").encode())
    assert [json.loads(line) for line in lines] == [
        {"i": 0, "inner_len": expected_inner, "body": rows[0].payload},
        {"i": 1, "inner_len": expected_inner, "body": rows[1].payload},
        {"i": 2, "inner_len": expected_inner, "body": rows[0].payload},
    ]
    side_chunk = json.loads(read_lines(side_path)[1])
    assert side_chunk["payload"] == {"side": TEXTS["latin1"]}


def test_a_record_the_fast_path_gives_up_on_drops_its_deferred_strings(tmp_path, fixed_clock):
    class Row(tuple):
        pass

    class Items(list):
        pass

    # A container subclass after a long string: the fast path defers the
    # string, then gives the whole record to json.dumps.
    rows = [
        ChunkRow("user", {"long": TEXTS["ucs4"], "row": Row((1, "a"))}),
        ChunkRow("user", {"long": TEXTS["ascii"], "fine": 1}),
        ChunkRow("user", {"a": TEXTS["ucs2"], "b": [TEXTS["latin1"], Items([2])]}),
    ]
    pure = write_file(sessionwal.pure.SessionWriter, tmp_path / "p.jsonl", rows, batched=False)
    for batched in (False, True):
        native = write_file(sessionwal.SessionWriter, tmp_path / "n.jsonl", rows, batched)
        assert native == pure
