"""The native encoder emits exactly ``json.dumps(obj, ensure_ascii=False) + "\\n"``.

``sessionwal._native.encode_record`` is the encoder the native writer uses
for every record (fast path plus Python fallback). Each test compares it
with CPython's json module: same bytes, or the same exception type and message.
"""

from __future__ import annotations

import enum
import json
import math
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sessionwal._native import encode_record

from conftest import depth_json_dumps_refuses, nested_lists


def expected(obj: object) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def outcome(fn, obj):
    try:
        return ("ok", fn(obj))
    except Exception as exc:  # the exception itself is what we compare
        return ("error", type(exc), str(exc))


def assert_identical(obj: object) -> None:
    assert outcome(encode_record, obj) == outcome(expected, obj)


class Color(str, enum.Enum):
    RED = "red"
    QUOTE = 'q"\n'


class Level(enum.IntEnum):
    LOW = 1
    HUGE = 2**70


class Ratio(float, enum.Enum):
    HALF = 0.5
    TINY = 1e-07


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class ReorderedDict(dict):
    def items(self):
        return reversed(list(super().items()))


class ReversedList(list):
    def __iter__(self):
        return reversed(list(super().__iter__()))


FLOAT_BOUNDARIES = [
    0.0,
    -0.0,
    1e16,
    1e15,
    9999999999999998.0,
    1e17,
    1e-4,
    1e-5,
    0.0001,
    0.00011,
    9.999999999999999e-05,
    1.5e-07,
    5e-324,
    2.2250738585072014e-308,
    sys.float_info.max,
    -sys.float_info.max,
    0.1,
    0.2,
    0.1 + 0.2,
    1 / 3,
    2.0**53,
    2.0**53 + 2,
    123456789012345.6,
    1e22,
    1e23,
    1.7976931348623157e308,
    math.pi,
    -math.e,
    100.0,
    1e100,
    12345678901234567890.0,
]

text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", '"', "\\", "\b\f\n\r\t", "\x00\x01\x1f\x7f", "\u2028\u2029/", "é", "世界", "😀", "ÿ"]
)
floats = (
    st.floats()
    | st.sampled_from(FLOAT_BOUNDARIES)
    | st.sampled_from([math.nan, math.inf, -math.inf])
)
ints = (
    st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**64 - 1])
)
scalars = (
    st.none()
    | st.booleans()
    | ints
    | floats
    | text
    | st.sampled_from([Color.RED, Color.QUOTE, Level.LOW, Level.HUGE, Ratio.HALF, Ratio.TINY])
    | text.map(MyStr)
    | ints.map(MyInt)
    | floats.map(MyFloat)
)
keys = text | ints | floats | st.booleans() | st.none() | st.sampled_from([Color.RED, Level.LOW])
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=40,
)


@given(values)
def test_any_value_encodes_like_json_dumps(value):
    assert_identical(value)


@given(st.dictionaries(keys, values, max_size=8))
def test_records_encode_like_json_dumps(record):
    assert_identical(record)


@given(st.text(st.characters(), max_size=60))
@example("\ud800")
@example("a\udfffb")
@example("x" * 17 + "\ud83d")
def test_any_text_including_lone_surrogates(value):
    assert_identical({"content": value})


@given(st.floats())
def test_float_repr_layout(value):
    assert_identical([value, -value])


@pytest.mark.parametrize("value", FLOAT_BOUNDARIES)
def test_float_boundaries(value):
    assert_identical({"v": value, "neg": -value, value: "as key"})


@pytest.mark.parametrize("code_point", [*range(0x00, 0x80), 0x2028, 0x2029, 0xFEFF, 0x10FFFF])
def test_escapes_of_every_ascii_and_special_code_point(code_point):
    assert_identical({chr(code_point): chr(code_point) * 3})


def test_non_finite_floats_as_values_and_keys():
    assert_identical({math.nan: math.nan, math.inf: math.inf, -math.inf: -math.inf})


def test_big_ints_and_the_digit_limit():
    assert_identical({"big": 10**4000, "neg": -(10**300)})
    assert_identical({"too_big": 10**5000})  # ValueError from int.__repr__, as in Python


@pytest.mark.parametrize(
    "value",
    [
        {"x": {1, 2}},
        {"x": object()},
        {"x": b"bytes"},
        {("tuple", "key"): 1},
        {"x": [1, 2, frozenset()]},
        {"x": 1j},
    ],
    ids=["set", "object", "bytes", "tuple-key", "nested-frozenset", "complex"],
)
def test_unsupported_types_raise_pythons_type_error(value):
    assert_identical(value)
    with pytest.raises(TypeError):
        encode_record(value)


def test_cycles_raise_pythons_value_error():
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    assert_identical(cyclic)
    with pytest.raises(ValueError, match="Circular reference detected"):
        encode_record(cyclic)


@pytest.mark.parametrize("depth", [1, 150, 199, 200, 201, 400])
def test_deep_nesting_within_the_recursion_limit(depth):
    value: object = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    assert_identical(value)


# Past the recursion limit each CPython differs (3.11 refuses, 3.12 encodes
# 1,100 levels but not 5,000, 3.13 both): the encoder follows the running one.
@pytest.mark.parametrize(
    "depth",
    [sys.getrecursionlimit() + 100, 5_000, 2 * depth_json_dumps_refuses()],
    ids=["limit+100", "5000", "twice-json-refuses"],
)
def test_nesting_past_the_recursion_limit_encodes_or_raises_like_json_dumps(depth):
    assert_identical(nested_lists(depth))


def test_nesting_too_deep_for_json_dumps_raises_recursion_error():
    with pytest.raises(RecursionError):
        encode_record(nested_lists(2 * depth_json_dumps_refuses()))


def test_container_subclasses_go_through_their_overrides():
    assert_identical({"d": ReorderedDict(a=1, b=2), "l": ReversedList([1, 2, 3])})
    assert encode_record(ReversedList([1, 2])) == b"[2, 1]\n"


def test_scalar_subclasses_render_by_value():
    assert encode_record([MyStr("s"), MyInt(7), MyFloat(1e16), Level.HUGE, Ratio.TINY]) == (
        b'["s", 7, 1e+16, 1180591620717411303424, 1e-07]\n'
    )


def test_bool_is_not_an_int_and_colliding_keys_are_all_kept():
    record = {True: 1, "true": 2, 1.5: 3, "1.5": 4, None: 5, "null": 6, 7: 7, "7": 8}
    assert_identical(record)
    assert encode_record(record).count(b'"true"') == 2
    assert encode_record([True, False, None]) == b"[true, false, null]\n"
