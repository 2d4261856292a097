"""Rules of ``alloc_many`` and ``alloc_extend`` (``linalloc._typed_bulk``) with hostile input.

A list subclass that carries a ctypes ``_type_`` label is an iterable of items,
not a ctypes array; a slot left dead by a failed constructor stays dead (and
does not stop) when many slots are taken after it.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from test_failed_allocation_rules import _STASHING, _Stashing

from linalloc import TypedArena


class _LabelledList(list):  # type: ignore[type-arg]
    """A list that claims, in its class dict, to hold c_int32 like a ctypes array."""

    _type_ = ctypes.c_int32


def test_a_list_labelled_with_the_arena_type_is_copied_item_by_item() -> None:
    """Only a real ctypes array is copied whole: a list subclass with `_type_` is iterated."""
    arena = TypedArena(ctypes.c_int32, 8)
    array = arena.alloc_extend(_LabelledList([4, 5, 6]))
    assert array is not None
    assert list(array) == [4, 5, 6]
    assert len(arena) == 3
    del array


def _arena_with_a_dead_slot() -> tuple[Any, Any, Any]:
    """(arena, its first value, the object over the dead slot above it)."""
    arena = TypedArena(_Stashing, 8)
    kept: list[Any] = []
    _STASHING[:] = [arena, kept]
    try:
        first = arena.alloc(1)
        with pytest.raises(ValueError, match="stashed"):
            arena.alloc("iter")  # keeps its own slot's value, through the arena, and raises
    finally:
        _STASHING.clear()
    return arena, first, kept.pop()


def test_alloc_many_after_a_dead_slot_takes_the_slots_above_it() -> None:
    """A slot left dead (its failed value is still held) is not handed out again:
    ``alloc_many`` takes the slots above it and counts them."""
    arena, first, kept = _arena_with_a_dead_slot()
    many = arena.alloc_many(2)
    assert many is not None
    assert ctypes.addressof(many) == ctypes.addressof(kept) + ctypes.sizeof(_Stashing)
    assert [v.v for v in many] == [0, 0]
    assert len(arena) == 4
    del many, first, kept
    arena.reset()


def test_alloc_extend_after_a_dead_slot_takes_the_slots_above_it() -> None:
    """The same for ``alloc_extend``: the items go to the slots above the dead one."""
    arena, first, kept = _arena_with_a_dead_slot()
    array = arena.alloc_extend([_Stashing(5), _Stashing(6)])
    assert array is not None
    assert ctypes.addressof(array) == ctypes.addressof(kept) + ctypes.sizeof(_Stashing)
    assert [v.v for v in array] == [5, 6]
    assert len(arena) == 4
    del array, first, kept
    arena.reset()
