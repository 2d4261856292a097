"""Rules of ``alloc_many`` and ``alloc_extend`` (``linalloc._typed_bulk``) with hostile input.

A list subclass that carries a ctypes ``_type_`` label is an iterable of items,
not a ctypes array; a slot left dead by a failed constructor stays dead (and
does not stop) when many slots are taken after it.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

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


_KEPT: list[Any] = []


class _Keeping(ctypes.Structure):
    """A constructor that, given "keep", keeps the arena's newest value (its own) and raises."""

    _fields_ = [("v", ctypes.c_int64)]

    def __init__(self, *args: Any) -> None:
        if args == ("keep",):
            arena = _KEPT.pop()
            _KEPT.append(list(arena)[-1])
            del self, arena
            raise ValueError("kept")
        super().__init__(*args)


def _arena_with_a_dead_slot() -> tuple[Any, Any, Any]:
    arena = TypedArena(_Keeping, 8)
    first = arena.alloc(1)
    _KEPT[:] = [arena]
    with pytest.raises(ValueError, match="kept"):
        arena.alloc("keep")
    kept = _KEPT.pop()
    return arena, first, kept


def test_alloc_many_after_a_dead_slot_takes_the_slots_above_it() -> None:
    """A slot left dead (its failed value is still held) is not handed out again:
    ``alloc_many`` takes the slots above it and counts them."""
    arena, first, kept = _arena_with_a_dead_slot()
    many = arena.alloc_many(2)
    assert many is not None
    assert ctypes.addressof(many) == ctypes.addressof(kept) + ctypes.sizeof(_Keeping)
    assert [v.v for v in many] == [0, 0]
    assert len(arena) == 4
    del many, first, kept
    arena.reset()


def test_alloc_extend_after_a_dead_slot_takes_the_slots_above_it() -> None:
    """The same for ``alloc_extend``: the items go to the slots above the dead one."""
    arena, first, kept = _arena_with_a_dead_slot()
    array = arena.alloc_extend([_Keeping(5), _Keeping(6)])
    assert array is not None
    assert ctypes.addressof(array) == ctypes.addressof(kept) + ctypes.sizeof(_Keeping)
    assert [v.v for v in array] == [5, 6]
    assert len(arena) == 4
    del array, first, kept
    arena.reset()
