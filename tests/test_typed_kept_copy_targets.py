"""A struct a drop callback copies out by value keeps its pointers' targets, across later drops."""

from __future__ import annotations

import ctypes
import gc
import weakref
from typing import Any

from linalloc import TypedArena


class Target(ctypes.c_int64):
    pass


class Node(ctypes.Structure):
    _fields_ = [("p", ctypes.POINTER(Target)), ("v", ctypes.c_int64)]


class Holder(ctypes.Structure):
    _fields_ = [("node", Node)]


def test_a_copy_made_in_a_stopped_reset_keeps_its_target_after_a_later_rewind_and_close() -> None:
    """A copy of a value a stopped reset dropped keeps its target past a rewind and close()."""
    holders: list[Any] = []

    def drop(value: Any) -> None:
        if value.v == 1 and not holders:
            holder = Holder()
            holder.node = value  # by value: shares the slot array's _objects
            holders.append(holder)
            raise KeyboardInterrupt

    arena = TypedArena(Node, 8, drop=drop)
    arena.alloc().v = 0
    v1 = arena.alloc()
    v1.v = 1
    target = Target(42)
    alive = weakref.ref(target)
    v1.p = ctypes.pointer(target)  # kept by the first part's slot array
    del v1, target
    # two more regions, each over a part of its own (the first part, which keeps
    # a target, is not reused)
    first = arena.checkpoint()
    gone = arena.alloc()
    del gone
    arena.rewind(first)
    v2 = arena.alloc()
    v2.v = 2
    v2.p = ctypes.pointer(Target(5))
    del v2
    second = arena.checkpoint()
    gone = arena.alloc()
    del gone
    arena.rewind(second)
    try:
        arena.reset()  # drops 2, then 1: the callback copies 1 out and stops
    except KeyboardInterrupt:
        pass
    assert len(arena) == 3 and len(holders) == 1
    arena.rewind(first)  # drops nothing more (slot 2 was dropped): frees slot 2
    assert len(arena) == 2
    arena.close()  # the first part goes
    gc.collect()
    assert alive() is not None
    assert holders[0].node.p.contents.value == 42
