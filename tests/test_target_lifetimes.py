"""Pointer targets kept for values dropped at collection, and for arrays over held
memory: each lives exactly as long as something that needs it (surviving mutants of
``_slots.Dropper`` and ``_typed_bulk._settle``).

A target is a Python subclass of a ctypes type, so that a weak reference shows when it
dies. The collector clears weak references to what it finds unreachable even if a
finalizer brings it back: a test holds a target strongly across such a collection.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any
from weakref import ref


class Target(ctypes.c_int64):
    """A pointer target that takes a weak reference (a Python subclass)."""


class Node(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int64), ("p", ctypes.POINTER(Target))]


class _Owner:
    """Owns a typed arena of Nodes whose drop callback (its bound method, a cycle)
    keeps nothing; its ``__del__`` brings it, and the arena, back to life."""

    def __init__(self, kind: type, revived: list[Any]) -> None:
        self.arena = kind(Node, 16, drop=self.release)
        self.revived = revived
        self.log: list[int] = []

    def release(self, value: Any) -> None:
        self.log.append(value.n)

    def __del__(self) -> None:
        self.revived.append(self)


def test_targets_of_values_dropped_at_collection_and_kept_by_none_go_with_a_reset(
    typed_cls: type,
) -> None:
    """A drop callback at collection that keeps no value keeps no pointer target: once
    the revived arena lets its slot arrays' keep-alives go (a reset), the targets die
    (the dropper carries nothing more once no value was kept)."""
    revived: list[Any] = []
    owner = _Owner(typed_cls, revived)
    held = [Target(k) for k in (1, 2, 3)]  # (reachable: the collection clears no weak ref)
    for k, target in zip((1, 2, 3), held):
        owner.arena.alloc(k).p = ctypes.pointer(target)
    watch = [ref(target) for target in held]
    del owner, target
    gc.collect()
    (owner,) = revived
    assert owner.log == [3, 2, 1]
    held.clear()
    assert [w() is not None for w in watch] == [True] * 3  # (kept by the slot arrays)
    owner.arena.reset()
    gc.collect()
    assert [w() for w in watch] == [None] * 3
    owner.arena.close()


def test_a_pointer_stored_through_an_array_over_held_memory_dies_with_the_held_memory(
    typed_cls: type,
) -> None:
    """An array a drop callback made while a rewind freed its memory spans slots that
    stay (below the position) and held ones (from the position on): once it and the
    kept value are gone, the target stored through it at a slot that stays lives on
    with the value there, the one stored at the position dies with the held memory
    (its keep-alive is not moved to the slot array the arena hands that slot out of)."""
    kept: list[Any] = []

    def drop(value: Any) -> None:
        kept.append(value)
        if value.n == 2:
            kept.append(arena.as_array())  # slots 0 and 1: the count is 2 here

    arena = typed_cls(Node, 16, drop=drop)
    arena.alloc(0)
    checkpoint = arena.checkpoint()
    arena.alloc(1)
    arena.alloc(2)
    arena.rewind(checkpoint)  # position 1: slot 1 and up are held
    array = kept[1]
    assert [node.n for node in array] == [0, 1] and len(arena) == 1
    targets = [Target(10), Target(11)]
    array[0].p = ctypes.pointer(targets[0])  # below the position: stays
    array[1].p = ctypes.pointer(targets[1])  # at the position: held
    watch = [ref(target) for target in targets]
    del targets, array
    kept.clear()
    gc.collect()
    assert [w() is not None for w in watch] == [True, True]  # (not counted yet)
    value = arena.alloc(7)  # a count: the held memory is let go; slot 1 handed out again
    assert value is not None and value.n == 7 and not value.p
    del value
    gc.collect()
    assert watch[1]() is None
    assert watch[0]() is not None
    assert [node.p.contents.value if node.p else None for node in arena] == [10, None]
    arena.close()
