"""More rules of ``alloc_extend``, iteration and ``as_array`` (``linalloc._typed_bulk``).

What ``alloc_extend`` takes for a ctypes array of its type, items that lie in
the very slots being filled, how long an iterator counts as a view, where
``as_array()`` of zero-size values lies in a buffer less aligned than them,
and what an array over values without pointers keeps once it is gone.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from linalloc import BumpArena, Layout, TypedArena, address
from linalloc._store import EagerStore


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


class _HidingType(ctypes.c_int32 * 3):  # type: ignore[misc]
    """An array of c_int32 whose instances do not show their ``_type_``."""

    def __getattribute__(self, name: str) -> Any:
        if name == "_type_":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_alloc_extend_takes_a_ctypes_array_that_hides_its_element_type_as_items(
    typed_cls: type,
) -> None:
    arena: Any = typed_cls(ctypes.c_int32, 8)
    made = arena.alloc_extend(_HidingType(4, 5, 6))
    assert made is not None and list(made) == [4, 5, 6]
    assert [v.value for v in arena] == [4, 5, 6]
    del made
    arena.close()


@pytest.mark.parametrize("form", ["array", "list of its values"])
def test_alloc_extend_copies_items_lying_in_the_slots_it_fills_as_they_were(
    typed_cls: type, form: str
) -> None:
    """A source over the arena's free slots (``from_address``: no view) is copied as
    ``memmove`` copies, not read after the slots were cleared."""
    arena: Any = typed_cls(Point, 8)
    made = arena.alloc_extend([(float(k), -float(k)) for k in range(8)])
    base = address(made)
    del made
    arena.reset()  # the slots keep their bytes until filled again
    source = (Point * 4).from_address(base + ctypes.sizeof(Point))  # slots 1 to 4
    items = source if form == "array" else list(source)
    copy = arena.alloc_extend(items)  # into slots 0 to 3
    assert copy is not None and address(copy) == base
    assert [(p.x, p.y) for p in copy] == [(1.0, -1.0), (2.0, -2.0), (3.0, -3.0), (4.0, -4.0)]
    del copy, items, source
    arena.close()


def test_an_iterator_that_yielded_every_value_counts_as_a_view_while_it_is_referenced(
    typed_cls: type,
) -> None:
    arena: Any = typed_cls(ctypes.c_int64, 8)
    for n in (1, 2, 3):
        arena.alloc(n)
    iterator = iter(arena)
    assert [v.value for v in iterator] == [1, 2, 3]
    assert arena.live_views() == 1
    with pytest.raises(BufferError, match="^cannot reset: 1 view of this arena still alive"):
        arena.reset()
    assert len(arena) == 3
    del iterator
    arena.reset()
    arena.close()


class _ShiftedStore(EagerStore):
    """A buffer whose address is 1 past a multiple of 16, less aligned than any type."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity + 32)
        self.address += (1 - self.address) % 16
        self.capacity = self.committed = self.extent = capacity


class _ShiftedArena(TypedArena):  # type: ignore[type-arg]
    _store_type = _ShiftedStore


def test_as_array_of_zero_size_values_lies_where_they_lie_in_a_less_aligned_buffer() -> None:
    empty = ctypes.c_int32 * 0
    align = ctypes.alignment(empty)
    assert ctypes.sizeof(empty) == 0 and align > 1
    arena: Any = _ShiftedArena(empty, 4)
    value = arena.alloc()
    assert address(value) % align == 0
    array = arena.as_array()
    assert len(array) == 0 and address(array) == address(value)
    del value, array
    arena.close()


def test_a_value_copied_into_as_array_of_a_type_without_pointers_is_not_kept_once_it_is_gone(
    typed_cls: type,
) -> None:
    """ctypes keeps what the copied value keeps in the array's own keep-alives: for a
    type without pointers they go with the array (the bytes were copied)."""
    arena: Any = typed_cls(Point, 4)
    arena.alloc(1.0, 2.0)
    other = BumpArena(64)
    raw = other.alloc_uninit_slice(Layout(16, 8))
    source = Point.from_buffer(raw)  # keeps `other`'s memory
    source.x, source.y = 3.0, 4.0
    del raw
    array = arena.as_array()
    array[0] = source  # a copy by value
    del source
    assert other.live_views() == 1  # kept by the array
    del array
    arena.live_views()
    assert other.live_views() == 0
    other.reset()
    assert [(p.x, p.y) for p in arena] == [(3.0, 4.0)]
    arena.close()
