"""View accounting rules: a count puts each keep-alive entry it took out back under its own key.

A count takes out the keep-alive entries that hold only the arena's memory and
puts them back before it returns, each under the key ctypes stored it under:
two entries of one dict never collapse into one, so a struct copied by value
out of a value later still keeps what every pointer of that value points to.
"""

from __future__ import annotations

import ctypes

import pytest

from linalloc import TypedArena


class Cell(ctypes.Structure):
    pass


class Pair(ctypes.Structure):
    """A pointer to a Cell, nested in a Cell (a second keep-alive key)."""

    _fields_ = [("p", ctypes.POINTER(Cell))]


Cell._fields_ = [("next", ctypes.POINTER(Cell)), ("pair", Pair)]


class Outer(ctypes.Structure):
    """Memory outside the arena that a Cell is copied into by value."""

    _fields_ = [("cell", Cell)]


def test_two_links_of_one_value_both_come_back_after_a_count() -> None:
    """Rule: after a count, a by-value copy keeps every link of the value it was copied from."""
    arena = TypedArena(Cell, 8)
    before = arena.alloc()
    cp = arena.checkpoint()
    first, target = arena.alloc(), arena.alloc()
    assert before is not None and first is not None and target is not None
    first.next = ctypes.pointer(target)  # (after the checkpoint: a count puts it back there)
    first.pair.p = ctypes.pointer(before)  # (before it: put back over the first region)
    address = ctypes.addressof(target)
    assert arena.live_views() == 3  # (the links are left out: the three values)
    assert arena.live_views() == 3
    outside = Outer()
    outside.cell = first  # (by value: shares the slot array's keep-alive dict)
    del first, target
    with pytest.raises(BufferError, match="^cannot rewind to this checkpoint: 1 view "):
        arena.rewind(cp)  # (the copy's ``next`` points at ``target``'s memory)
    assert ctypes.addressof(outside.cell.next.contents) == address
    del outside
    arena.rewind(cp)
    assert len(arena) == 1
