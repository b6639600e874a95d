"""The native scanner against json.loads: same lines, same counts, same verdict on every line."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import sessionwal
import sessionwal.pure
from sessionwal import ChunkRow, _native

from conftest import make_session

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def python_accepts(line: bytes) -> bool:
    """What the loader accepts as one record line."""
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False


def native_accepts(line: bytes) -> bool:
    return _native.scan(line + b"\n", validate=True)["invalid"] is None


@settings(max_examples=300)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_validator_accepts_everything_json_dumps_writes(obj):
    for ensure_ascii in (False, True):
        line = json.dumps(obj, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
        assert native_accepts(line) == python_accepts(line)


# Fragments that reach every branch of the grammar when shuffled together.
TOKENS = st.sampled_from(
    [
        "{", "}", "[", "]", ":", ",", '"', "\\", " ", "\t", "\r", "\x00", "\x1f", "\x7f",
        '"a"', '"k": ', "0", "1", "-", "+", ".", "e", "E", "12.5e-3", "01", "-0",
        "true", "tru", "false", "null", "nul", "NaN", "Infinity", "-Infinity", "-NaN",
        "\\u", "\\u00e9", "\\uD83D\\uDE00", "\\ud800", "\\uzzzz", "\\n", "\\x", "\\/",
        "é", "世", "😀",
    ]
)  # fmt: skip


@given(st.lists(TOKENS, max_size=24).map("".join))
@example('{"a": 1}')
@example('{"a": [1, 2, {"b": null}]} ')
@example('{"a": "\\ud800"}')
@example('{"a": 1.}')
@example('{"a": -Infinity, "b": NaN}')
@example('{"a": "\x7f"}')
def test_validator_agrees_with_json_loads_on_arbitrary_text(text):
    line = text.encode("utf-8")
    assert native_accepts(line) == python_accepts(line), text


@settings(max_examples=400)
@given(st.dictionaries(st.text(), json_values, min_size=1, max_size=3), st.data())
def test_validator_agrees_after_a_byte_is_damaged(obj, data):
    line = bytearray(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    at = data.draw(st.integers(0, len(line) - 1))
    op = data.draw(st.sampled_from(["delete", "replace", "insert"]))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != 0x0A))
    if op == "delete":
        del line[at]
    elif op == "replace":
        line[at] = byte
    else:
        line.insert(at, byte)
    assert native_accepts(bytes(line)) == python_accepts(bytes(line)), bytes(line)


def test_deep_nesting_is_not_a_crash():
    deep = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert native_accepts(deep)
    assert not native_accepts(b'{"a": ' + b"[" * 200_000)


def test_invalid_reports_line_column_and_text():
    data = b'{"record_type": "header"}\n{"ok": 1}\n{"x": tru}\n{"y": ]}\n'
    assert _native.scan(data, validate=True)["invalid"] == (
        3,
        6,
        "expecting a value",
        b'{"x": tru}',
    )
    assert _native.scan(data)["invalid"] is None


rows = st.lists(
    st.builds(
        ChunkRow,
        st.sampled_from([*sessionwal.ChunkKind, "custom"]),
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
    max_size=12,
)


@settings(max_examples=150)
@given(rows, st.booleans(), st.binary(max_size=40).filter(lambda b: b"\n" not in b))
def test_scan_matches_a_json_loads_loop_on_written_files(chunks, close, tail):
    for writer_cls in (sessionwal.SessionWriter, sessionwal.pure.SessionWriter):
        with tempfile.TemporaryDirectory() as tmp:
            writer = writer_cls(make_session(), path=Path(tmp) / "s.jsonl")
            for i, row in enumerate(chunks):
                writer.write_chunk(i, row)
            writer.close() if close else writer.abandon()
            path = writer.path if close else writer.partial_path
            with open(path, "ab") as file:
                file.write(tail)
            data = path.read_bytes()
            for validate in (False, True):
                scanned = _native.scan(path, validate=validate)
                assert scanned == _native.scan(data, validate=validate)
        lines = data.split(b"\n")[:-1]
        records = [json.loads(line) for line in lines]
        assert scanned["size"] == len(data)
        assert scanned["complete_len"] == len(data) - len(tail)
        assert scanned["lines"] == len(records) == len(chunks) + 1 + close
        assert scanned["chunks"] == sum(r["record_type"] == "chunk" for r in records)
        assert scanned["invalid"] is None
        assert [(line, text) for line, _kind, text in scanned["events"]] == [
            (n, line)
            for n, line in enumerate(lines, 1)
            if not line.startswith(b'{"record_type": "chunk"')
        ]
        assert [kind for _, kind, _ in scanned["events"]] == ["header"] + ["trailer"] * close


def test_scan_of_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        _native.scan(tmp_path / "missing.jsonl")
    assert os.fspath(info.value.filename) == str(tmp_path / "missing.jsonl")


def test_scan_streams_lines_longer_than_its_buffer(tmp_path):
    big = {"record_type": "chunk", "index": 0, "kind": "user", "payload": {"t": "é" * 600_000}}
    lines = [json.dumps({"record_type": "header"}), json.dumps(big, ensure_ascii=False)] * 3
    data = ("\n".join(lines) + "\n").encode()
    (tmp_path / "s.jsonl").write_bytes(data)
    scanned = _native.scan(tmp_path / "s.jsonl", validate=True)
    assert (scanned["lines"], scanned["chunks"], scanned["size"]) == (6, 3, len(data))
    assert [line for line, _, _ in scanned["events"]] == [1, 3, 5]


def test_float_specials_are_valid_records():
    line = json.dumps({"a": [math.nan, math.inf, -math.inf, -0.0, 1e16, 1e-05]}).encode()
    assert native_accepts(line) and python_accepts(line)
