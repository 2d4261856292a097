"""Where ``alloc(ctype)`` values come from (``linalloc._bump``, the module docstring):
elements of one ctypes array per type and offset ("rows") of the arena's buffer,
at most 256 rows a buffer (a row may hold a single value); past that, a value of
its own made with ``from_buffer``. Either way the value lives where the bump
pointer puts it, is counted as a view and is usable."""

from __future__ import annotations

import ctypes
from typing import Any


def byte_struct(i: int) -> Any:
    return type(f"B{i}", (ctypes.Structure,), {"_fields_": [("b", ctypes.c_uint8)]})


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_int32)]


def from_a_row(value: Any) -> bool:
    base = value._b_base_
    return isinstance(base, ctypes.Array) and ctypes.addressof(value) >= ctypes.addressof(base)


def test_a_buffer_keeps_at_most_256_rows(bump_cls: type) -> None:
    arena = bump_cls(1024)
    types = [byte_struct(i) for i in range(258)]
    values = [arena.alloc(t) for t in types]
    assert all(v is not None for v in values)
    assert [from_a_row(v) for v in values] == [True] * 256 + [False, False]
    assert [type(v) for v in values] == types
    for i, v in enumerate(values):
        v.b = i
    # one byte each, one after the other: the values past the rows are no different
    base = ctypes.addressof(values[0])
    assert [ctypes.addressof(v) - base for v in values] == list(range(258))
    assert [v.b for v in values] == [i % 256 for i in range(258)]
    assert arena.used == 258 and arena.live_views() == 258
    # a type that has a row keeps taking its values from it
    again = arena.alloc(types[0])
    assert again is not None and from_a_row(again)
    del values, again, v
    assert arena.live_views() == 0
    arena.reset()


def test_a_row_of_one_value(bump_cls: type) -> None:
    # The buffer holds a single Pair at offset 0: its row has one element.
    arena = bump_cls(8)
    only = arena.alloc(Pair)
    assert only is not None and from_a_row(only) and len(only._b_base_) == 1
    only.a, only.b = 1, 2
    assert arena.used == 8 and arena.live_views() == 1
    assert arena.alloc(Pair) is None
    where = ctypes.addressof(only)
    del only
    arena.reset()
    # at offset 4 of a 12-byte buffer the row also holds one element
    wide = bump_cls(12)
    first = wide.alloc_array(ctypes.c_int32, 1)
    pair = wide.alloc(Pair)
    assert pair is not None and from_a_row(pair) and len(pair._b_base_) == 1
    assert ctypes.addressof(pair) == ctypes.addressof(first) + 4 and wide.used == 12
    pair.a, pair.b = 3, 4
    assert (pair.a, pair.b) == (3, 4) and wide.live_views() == 2
    assert where == ctypes.addressof(arena.alloc(Pair))
