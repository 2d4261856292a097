"""What ``BumpArena.alloc()`` asks of a simple type to decide whether its values keep
a string: the code ctypes laid out, read off the type's array of one, once.

A metaclass's ``__name__`` is the one piece of a type's own code that making an array
type of it runs (the array type's name): counting its calls counts the array types
made to decide, and the decisions made again."""

from __future__ import annotations

import ctypes
from typing import Any

from linalloc import BumpArena, _store


def _counted_type() -> tuple[Any, list[int]]:
    """A new simple type (code "i", values not windowed) whose metaclass counts the reads
    of its ``__name__``."""
    reads: list[int] = []

    class Meta(type(ctypes.c_int32)):  # type: ignore[misc]
        @property
        def __name__(cls) -> str:  # type: ignore[override]
            reads.append(1)
            return "Counted"

    class Counted(ctypes._SimpleCData, metaclass=Meta):  # type: ignore[type-arg]
        _type_ = "i"

    return Counted, reads


def _forget_array_types() -> None:
    """Fill the store's bounded cache of array types (1024) with others: through
    ``alloc_array`` of a new type, which makes one per length (none cached before);
    the cache is emptied when full."""
    filler: Any = type(ctypes.c_uint8)("Filler", (ctypes.c_uint8,), {})
    arena = BumpArena(2048)
    for n in range(1, 1100):
        made = arena.alloc_array(filler, n)
        del made
    arena.close()


def test_a_simple_type_is_decided_once_even_after_its_array_types_are_forgotten() -> None:
    """alloc() of a simple type asks nothing of it again, even once its array types are gone."""
    counted, reads = _counted_type()
    arena = BumpArena(256)
    values = [arena.alloc(counted)]  # (decides: reads the name for the array of one)
    first = len(reads)
    assert first >= 1
    values += [arena.alloc(counted) for _ in range(3)]
    _forget_array_types()
    assert (id(counted), 1) not in _store._array_types  # (forgotten: private, read here)
    values += [arena.alloc(counted) for _ in range(3)]
    assert len(reads) == first  # decided once: the array of one not made again
    assert [type(v) for v in values] == [counted] * 7 and arena.used == 28
    assert arena.live_views() == 7
    del values
    arena.reset()


def test_deciding_on_a_simple_type_makes_no_array_type_but_its_array_of_one() -> None:
    """Once the type's array of one exists (alloc_array(T, 1) made it), alloc(T) makes none."""
    counted, reads = _counted_type()
    arena = BumpArena(256)
    row = arena.alloc_array(counted, 1)  # makes the array type of one
    assert row is not None and len(reads) >= 1
    before = len(reads)
    value = arena.alloc(counted)
    assert type(value) is counted and ctypes.addressof(value) == ctypes.addressof(row) + 4
    assert len(reads) == before  # decided from that same array type: no other made
    del row, value
    arena.reset()
