"""Layout: construction, validation, value semantics."""

from __future__ import annotations

import copy
import ctypes
import pickle
import sys
from typing import Any

import pytest
from conftest import stable_id

from linalloc import Layout


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class Mixed(ctypes.Structure):
    _fields_ = [("a", ctypes.c_char), ("b", ctypes.c_int32), ("c", ctypes.c_int16)]


class Either(ctypes.Union):
    _fields_ = [("i", ctypes.c_int64), ("d", ctypes.c_double), ("c", ctypes.c_char * 3)]


CTYPES: list[Any] = [
    ctypes.c_char,
    ctypes.c_int8,
    ctypes.c_int16,
    ctypes.c_int32,
    ctypes.c_int64,
    ctypes.c_double,
    ctypes.c_longdouble,
    ctypes.c_void_p,
    ctypes.c_bool,
    Point,
    Mixed,
    Either,
    ctypes.c_int32 * 5,
    ctypes.POINTER(Point),
]

NOT_INTS: list[Any] = [True, False, 1.0, 2.5, "8", b"8", None, [8], 8j]
NOT_CTYPES: list[Any] = [int, float, object, None, 8, "c_int", ctypes.c_int(3), Point(), ctypes]


# -- construction ---------------------------------------------------------------


def test_default_align_is_one() -> None:
    layout = Layout(24)
    assert (layout.size, layout.align) == (24, 1)


@pytest.mark.parametrize(
    ("size", "align"), [(0, 1), (1, 1), (24, 8), (3, 16), (0, 4096), (1 << 40, 1 << 20)]
)
def test_size_and_align(size: int, align: int) -> None:
    layout = Layout(size, align)
    assert layout.size == size and layout.align == align
    same = Layout.from_size_align(size, align)
    assert (same.size, same.align) == (size, align)
    assert type(same) is Layout


def test_int_subclass_accepted() -> None:
    class MyInt(int):
        pass

    layout = Layout(MyInt(16), MyInt(8))
    assert (layout.size, layout.align) == (16, 8)


@pytest.mark.parametrize("ctype", CTYPES, ids=lambda t: t.__name__)
def test_new_uses_sizeof_and_alignment(ctype: Any) -> None:
    layout = Layout.new(ctype)
    assert layout.size == ctypes.sizeof(ctype)
    assert layout.align == ctypes.alignment(ctype)


@pytest.mark.parametrize("ctype", CTYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_array(ctype: Any, n: int) -> None:
    layout = Layout.array(ctype, n)
    assert layout.size == ctypes.sizeof(ctype) * n
    assert layout.align == ctypes.alignment(ctype)
    assert layout.size == ctypes.sizeof(ctype * n)


def test_largest_valid_layouts() -> None:
    assert Layout(sys.maxsize).size == sys.maxsize
    top = sys.maxsize + 1  # a power of two
    assert Layout(top // 2, top // 2).size == top // 2
    assert Layout(0, top).align == top  # size 0 rounds up to 0


# -- bad input --------------------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_INTS, ids=repr)
def test_non_int_size_or_align_is_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        Layout(bad)
    with pytest.raises(TypeError):
        Layout(8, bad)
    with pytest.raises(TypeError):
        Layout.from_size_align(bad, 8)
    with pytest.raises(TypeError):
        Layout.from_size_align(8, bad)


@pytest.mark.parametrize("align", [0, 3, -1, -8, 6, 12, 24, 100, (1 << 40) + 1])
def test_align_not_power_of_two_is_value_error(align: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Layout(8, align)
    with pytest.raises(ValueError, match="power of two"):
        Layout.from_size_align(8, align)


@pytest.mark.parametrize("size", [-1, -8, -(1 << 70)])
def test_negative_size_is_value_error(size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        Layout(size, 8)
    with pytest.raises(ValueError, match="size"):
        Layout.from_size_align(size, 1)


@pytest.mark.parametrize(
    ("size", "align"),
    [
        (sys.maxsize, 2),  # rounds up to maxsize + 1
        (sys.maxsize - 6, 8),
        (sys.maxsize + 1, 1),
        (1, sys.maxsize + 1),  # a power of two, but rounds 1 up past maxsize
        (1 << 100, 1),
    ],
)
def test_rounded_size_beyond_maxsize_is_value_error(size: int, align: int) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Layout(size, align)
    with pytest.raises(ValueError, match="maxsize"):
        Layout.from_size_align(size, align)


@pytest.mark.parametrize("bad", NOT_CTYPES, ids=stable_id)
def test_new_and_array_refuse_non_ctypes(bad: Any) -> None:
    with pytest.raises(TypeError):
        Layout.new(bad)
    with pytest.raises(TypeError):
        Layout.array(bad, 3)


@pytest.mark.parametrize("n", [-1, -100])
def test_array_negative_n_is_value_error(n: int) -> None:
    with pytest.raises(ValueError):
        Layout.array(ctypes.c_int32, n)


@pytest.mark.parametrize("n", [True, 2.0, "3", None])
def test_array_non_int_n_is_type_error(n: Any) -> None:
    with pytest.raises(TypeError):
        Layout.array(ctypes.c_int32, n)


def test_array_too_large_is_value_error() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Layout.array(ctypes.c_int64, sys.maxsize // 4)


# -- value semantics --------------------------------------------------------------


def test_immutable() -> None:
    layout = Layout(16, 8)
    with pytest.raises(AttributeError):
        layout.size = 32  # type: ignore[misc]
    with pytest.raises(AttributeError):
        layout.align = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        layout._size = 32  # type: ignore[misc]
    with pytest.raises(AttributeError):
        layout.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        del layout._size
    assert (layout.size, layout.align) == (16, 8)


def test_equality_and_hash() -> None:
    a = Layout(16, 8)
    b = Layout.from_size_align(16, 8)
    assert a == b and not (a != b)
    assert hash(a) == hash(b)
    assert a != Layout(16, 4)
    assert a != Layout(8, 8)
    assert Layout(8, 8) != Layout(8, 16)
    assert Layout.new(ctypes.c_int64 * 2) == Layout.array(ctypes.c_int64, 2)
    assert a != (16, 8)
    assert a != 16
    assert len({a, b, Layout(16, 4), Layout(16, 8)}) == 2
    assert {a: "x"}[Layout(16, 8)] == "x"


def test_repr() -> None:
    layout = Layout(24, 8)
    assert repr(layout) == "Layout(size=24, align=8)"
    assert repr(Layout(0)) == "Layout(size=0, align=1)"
    assert eval(repr(layout), {"Layout": Layout}) == layout


def test_pickle_and_copy_round_trip() -> None:
    layout = Layout(40, 4)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(layout, protocol))
        assert back == layout and type(back) is Layout
    assert copy.copy(layout) == layout
    assert copy.deepcopy(layout) == layout
