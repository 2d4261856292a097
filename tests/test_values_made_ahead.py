"""Values made ahead for a window that outlive it keep their slots.

An arena makes the values of a window ahead of time and hands them out one by
one; a call that closes the window (``checkpoint()``, say) lets go of those not
handed out and gives their slots back. A value that outlives that (a
``__del__`` its class got after the window opened brings it back to life, or
``gc.get_objects()`` found it) keeps its slot, and the slots below it: nothing
is handed out over memory a live object reads. A type whose values take no
weak reference gets no window (one found could not be seen to outlive it).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from typing import Any

import pytest

import linalloc


def _node_type() -> Any:
    class Node(ctypes.Structure):
        _fields_ = [("v", ctypes.c_int64)]

    return Node


def _arena_and_maker(kind: str, ctype: Any) -> tuple[Any, Callable[[int], Any]]:
    """An arena whose window of ``ctype`` values is open, with values made ahead."""
    if kind.startswith("Typed"):
        arena = getattr(linalloc, kind)(ctype, 64)
        arena.alloc(v=1)  # opens a window: more values made ahead
        return arena, lambda v: arena.alloc(v=v)
    arena = getattr(linalloc, kind)(4096)

    def make(v: int) -> Any:
        value = arena.alloc(ctype)
        value.v = v
        return value

    make(1)
    make(2)  # the second opens a window of two: one made ahead
    return arena, make


KINDS = ["TypedArena", "TypedArenaLazy", "BumpArena", "BumpArenaLazy"]


def _no_alias(kept: list[Any], fresh: list[Any]) -> None:
    """No value handed out since shares memory with a kept one; each kept one reads its own."""
    mine = {ctypes.addressof(k) for k in kept}
    assert mine.isdisjoint(ctypes.addressof(f) for f in fresh)
    for f in fresh:
        f.v = -1
    assert all(k.v != -1 for k in kept)


@pytest.mark.parametrize("kind", KINDS)
def test_a_finalizer_added_after_the_window_opened_keeps_the_values_it_revives(
    kind: str,
) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    revived: list[Any] = []
    node.__del__ = lambda self: revived.append(self)
    used = arena.used
    arena.checkpoint()  # closes the window: the values made ahead die, and come back
    assert revived, "no value was made ahead"
    assert arena.used >= used + len(revived) * ctypes.sizeof(node)  # (their slots stay used)
    fresh = [make(100 + i) for i in range(8)]
    _no_alias(revived, fresh)
    with pytest.raises(BufferError):
        arena.reset()  # (they are views)
    del node.__del__
    revived.clear()
    del fresh
    gc.collect()
    arena.reset()
    assert arena.used == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_made_ahead_and_found_by_the_collector_keeps_its_slot(kind: str) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    handed = {id(v) for v in arena} if kind.startswith("Typed") else set()
    found = [o for o in gc.get_objects() if type(o) is node and id(o) not in handed]
    assert found, "no value was made ahead"
    arena.checkpoint()
    fresh = [make(100 + i) for i in range(8)]
    _no_alias(found, fresh)
    del found, fresh
    gc.collect()
    arena.reset()


@pytest.mark.parametrize("kind", KINDS)
def test_values_freed_with_the_window_give_their_slots_back(kind: str) -> None:
    node = _node_type()
    arena, make = _arena_and_maker(kind, node)
    used = arena.used
    arena.checkpoint()
    assert arena.used == used  # (``used`` never counts values made ahead)
    value = make(3)
    assert ctypes.addressof(value) - ctypes.addressof(make(4)) == -ctypes.sizeof(node)
    assert arena.used == used + 2 * ctypes.sizeof(node)


@pytest.mark.parametrize("kind", KINDS)
def test_a_type_whose_values_take_no_weak_reference_gets_no_values_made_ahead(
    kind: str,
) -> None:
    class Slotted(ctypes.Structure):
        __slots__ = ()
        _fields_ = [("v", ctypes.c_int64)]

    arena, make = _arena_and_maker(kind, Slotted)
    handed = [make(v) for v in range(5)]
    ids = {id(v) for v in handed}
    if kind.startswith("Typed"):
        ids |= {id(v) for v in arena}
    assert not [o for o in gc.get_objects() if type(o) is Slotted and id(o) not in ids]
    assert [v.v for v in handed] == list(range(5))
    del handed
    arena.reset()
