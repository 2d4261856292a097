"""``linalloc.cast``: where the result points for each kind of source, and its refusals.

``cast(obj, typ)`` points where ``ctypes.cast(obj, typ)`` would: for a value
whose type holds an address (``c_void_p``, ``c_char_p``, ``c_wchar_p``) that is
the address it holds; for any other simple value, a Structure or a Union (which
``ctypes.cast`` refuses) it is the value's own address.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

import pytest

import linalloc
from linalloc import BumpArena, TypedArena, address


def _refusal(kind: str) -> str:
    return (
        "^"
        + re.escape(
            "cast() takes a ctypes object, a byref() of one or a memoryview, "
            f"not {kind} (ctypes.cast of an int keeps nothing alive anyway)"
        )
        + "$"
    )


@pytest.mark.parametrize(
    "obj, kind",
    [(0x1000, "int"), ("text", "str"), (None, "NoneType"), (b"\0" * 8, "bytes")],
    ids=["int", "str", "None", "bytes"],
)
def test_cast_refuses_what_is_no_ctypes_object_with_the_whole_message(
    obj: object, kind: str
) -> None:
    with pytest.raises(TypeError, match=_refusal(kind)):
        linalloc.cast(obj, ctypes.c_void_p)


def test_cast_of_a_refused_object_leaves_the_arena_free_to_reset(typed_cls: type) -> None:
    arena = typed_cls(ctypes.c_int64, 4)
    arena.alloc(3)
    with pytest.raises(TypeError, match=_refusal("int")):
        linalloc.cast(3, ctypes.POINTER(ctypes.c_int64))
    assert arena.live_views() == 0
    arena.reset()
    assert len(arena) == 0


def test_cast_of_a_c_void_p_value_points_where_it_points(typed_cls: type) -> None:
    target = BumpArena(64)
    cell = target.alloc(ctypes.c_int64)
    cell.value = 1234
    arena = typed_cls(ctypes.c_void_p, 4)
    arena.alloc(0)
    holder = arena.alloc(address(cell))
    p = linalloc.cast(holder, ctypes.POINTER(ctypes.c_int64))
    assert ctypes.cast(p, ctypes.c_void_p).value == address(cell) != address(holder)
    assert p.contents.value == 1234
    del holder
    assert arena.live_views() == 1  # p keeps the holder's memory
    as_void = linalloc.cast(list(arena)[1], ctypes.c_void_p)  # got again by iterating
    assert as_void.value == address(cell)
    del p, as_void
    arena.reset()


def test_cast_of_a_c_char_p_value_reads_the_string_it_points_to(typed_cls: type) -> None:
    text = BumpArena(64)
    name = text.alloc_copy(b"arena\0")
    arena = typed_cls(ctypes.c_char_p, 2)
    holder = arena.alloc(address(name))
    assert linalloc.cast(holder, ctypes.c_char_p).value == b"arena"
    p = linalloc.cast(holder, ctypes.c_void_p)
    assert p.value == address(name)


def test_cast_of_a_c_wchar_p_value_points_where_it_points() -> None:
    buffer = ctypes.create_unicode_buffer("wide")
    arena = TypedArena(ctypes.c_wchar_p, 2)
    holder = arena.alloc(ctypes.addressof(buffer))
    assert linalloc.cast(holder, ctypes.c_void_p).value == ctypes.addressof(buffer)
    assert linalloc.cast(holder, ctypes.c_wchar_p).value == "wide"


@pytest.mark.parametrize(
    "ctype, value",
    [(ctypes.c_int32, -7), (ctypes.c_double, 0.25), (ctypes.c_char, b"z"), (ctypes.c_bool, True)],
    ids=["c_int32", "c_double", "c_char", "c_bool"],
)
def test_cast_of_a_plain_simple_value_points_at_the_value(
    typed_cls: type, ctype: Any, value: object
) -> None:
    arena = typed_cls(ctype, 4)
    arena.alloc(value)
    held = arena.alloc(value)
    p = linalloc.cast(held, ctypes.POINTER(ctype))
    assert ctypes.cast(p, ctypes.c_void_p).value == address(held)
    assert p.contents.value == value
    p.contents.value = held.value  # writes through to the arena's slot
    del held
    assert arena.live_views() == 1
    del p
    arena.reset()
