"""TypedArena: a huge type with no room, and len() while a failed allocation is undone."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from linalloc import TypedArena


def test_capacity_zero_of_a_huge_type_allocates_no_value_sized_memory() -> None:
    """An arena of no values of a 2**62-byte type is made: nothing value-sized is allocated."""
    huge = ctypes.c_char * 2**62
    arena = TypedArena(huge, 0)
    assert arena.capacity == 0
    assert arena.alloc() is None
    assert len(arena) == 0 and arena.used == 0
    arena.close()


def test_len_in_the_finalizer_of_a_failed_value_counts_the_dead_slot_above_it() -> None:
    """len() run by a failed value's __del__ as its allocation is undone counts each used slot."""
    box: list[Any] = []
    seen: list[int] = []

    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

        def __init__(self, *args: Any) -> None:
            if args == (8,):
                raise ValueError("inner")  # (its frame keeps self: the slot stays used, dead)
            try:
                box[0].alloc(8)
            except ValueError:
                pass
            del self  # (the frame the traceback keeps no longer holds the value)
            raise ValueError("outer")

        def __del__(self) -> None:
            if box:
                seen.append(len(box[0]))

    arena = TypedArena(Node, 8)
    box.append(arena)
    with pytest.raises(ValueError, match="outer"):
        arena.alloc(7)
    box.clear()
    # the inner value dies once its error is gone (2 slots used), the outer one
    # while the arena gives its slot back: the inner dead slot still counts
    assert seen == [2, 2]
    assert len(arena) == 2
    arena.reset()
    assert len(arena) == 0
    arena.close()
