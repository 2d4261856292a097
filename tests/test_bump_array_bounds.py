"""``alloc_array`` at its bounds (``linalloc._bump``): an array that fills the arena
exactly, and the largest count there is (zero-size types)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from linalloc import Layout, address


class Empty(ctypes.Structure):
    _fields_ = []


@pytest.mark.parametrize(
    ("ctype", "n"), [(ctypes.c_int32, 4), (ctypes.c_uint8, 16), (ctypes.c_double, 2)]
)
def test_an_array_that_fills_the_arena_exactly(bump_cls: type, ctype: type, n: int) -> None:
    arena = bump_cls(16)
    row = arena.alloc_array(ctype, n)
    assert row is not None and len(row) == n and ctypes.sizeof(row) == 16
    assert arena.used == 16
    assert arena.alloc_array(ctypes.c_uint8, 1) is None and arena.used == 16


def test_an_array_that_fills_the_rest_exactly(bump_cls: type) -> None:
    arena = bump_cls(24)
    head = arena.alloc_uninit_slice(Layout(8))
    row = arena.alloc_array(ctypes.c_int32, 4)
    assert row is not None and ctypes.addressof(row) == address(head) + 8
    assert arena.used == 24
    assert arena.alloc_array(ctypes.c_int32, 1) is None and arena.used == 24


def test_one_element_more_than_fits_is_refused(bump_cls: type) -> None:
    arena = bump_cls(16)
    assert arena.alloc_array(ctypes.c_int32, 5) is None
    assert arena.used == 0 and arena.live_views() == 0


def test_a_zero_size_array_of_the_largest_length(bump_cls: type) -> None:
    # Zero-size values take no room: any count up to sys.maxsize (the largest
    # length a ctypes array can have) fits, even in an empty arena.
    arena = bump_cls(8)
    head = arena.alloc_uninit_slice(Layout(3))
    row = arena.alloc_array(Empty, sys.maxsize)
    assert row is not None and len(row) == sys.maxsize and ctypes.sizeof(row) == 0
    assert ctypes.addressof(row) == address(head) + 3
    assert arena.used == 3
    assert arena.alloc_array(Empty, sys.maxsize + 1) is None and arena.used == 3
    empty = bump_cls(0)
    whole = empty.alloc_array(Empty, sys.maxsize)
    assert whole is not None and len(whole) == sys.maxsize and empty.used == 0
