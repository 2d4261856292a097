"""What a type checker sees of linalloc: checked by ``mypy --strict`` in test_typing.py.

Nothing here runs at import time; the functions are only type-checked.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional

from linalloc import BumpArena, BumpArenaLazy, Layout, TypedArena, TypedArenaLazy, address

if TYPE_CHECKING:
    from typing_extensions import assert_type, reveal_type


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def typed_arenas() -> None:
    arena = TypedArena(Point, 100)
    assert_type(arena, TypedArena[Point])
    value = arena.alloc(1.0, 2.0)
    reveal_type(value)
    assert_type(value, Optional[Point])
    assert_type(arena.alloc_raw((3.0, 4.0)), Optional[Point])
    assert_type(iter(arena), Iterator[Point])
    assert_type(arena.ctype, type[Point])
    if value is not None:
        assert_type(value, Point)  # after the None check: a Point

    lazy = TypedArenaLazy(Point, 1 << 30)
    assert_type(lazy, TypedArenaLazy[Point])
    assert_type(lazy.alloc(), Optional[Point])
    assert_type(lazy.committed, int)
    assert_type(lazy.trim(), int)
    assert_type(lazy.last_os_error_code, Optional[int])

    numbers = TypedArena(ctypes.c_int64, 10, drop=lambda v: print(v.value))
    assert_type(numbers.alloc(5), Optional[ctypes.c_int64])


def bump_arenas() -> None:
    arena = BumpArena(1024)
    assert_type(arena.alloc(ctypes.c_uint64), Optional[ctypes.c_uint64])
    assert_type(arena.alloc_uninit_slice(Layout(16, 8)), Optional[memoryview])
    assert_type(arena.used, int)
    lazy = BumpArenaLazy(1 << 40)
    assert_type(lazy.alloc(Point), Optional[Point])
    assert_type(lazy.committed, int)
    view = lazy.alloc_uninit_slice(Layout.new(ctypes.c_double))
    if view is not None:
        assert_type(address(view), int)
