"""A struct copied by value out of a value keeps what its pointers point to, whenever it is made.

ctypes gives such a copy the source array's whole ``_objects`` dict: the
entries that keep a pointer's target alive are shared with it. The arena
leaves its own links out of a count but never deletes them, so a copy made
at any moment (by a finalizer during the collection a refusal runs, by a drop
callback, after a rewind or a refused allocation) still holds the target:
the call that would free it is refused, or the memory is held, until the
copy is gone.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

import pytest

from linalloc import TypedArena

ARENA_KINDS = ["BumpArena", "BumpArenaLazy", "TypedArena", "TypedArenaLazy"]


class Node(ctypes.Structure):
    pass


Node._fields_ = [("value", ctypes.c_int64), ("next", ctypes.POINTER(Node))]


class Holder(ctypes.Structure):
    """Memory outside the arena that a Node is copied into by value."""

    _fields_ = [("node", Node)]


def _arena(kind: str, **kwargs: Any) -> Any:
    import linalloc

    cls = getattr(linalloc, kind)
    return cls(Node, 16, **kwargs) if kind.startswith("Typed") else cls(1024)


def _node(arena: Any, value: int) -> Any:
    if isinstance(arena, TypedArena):
        return arena.alloc(value)
    node = arena.alloc(Node)
    node.value = value
    return node


def _link(arena: Any) -> Any:
    """Two values, the first pointing at the second; returns the first."""
    first, second = _node(arena, 1), _node(arena, 2)
    first.next = ctypes.pointer(second)
    return first


def _never_aliased(arena: Any, copy: Holder) -> None:
    """New values never land where the copy's pointer points (if the arena hands any out)."""
    target = ctypes.addressof(copy.node.next.contents)
    try:
        fresh = [_node(arena, 100 + i) for i in range(4)]
    except BufferError:
        return
    assert all(ctypes.addressof(v) != target for v in fresh)
    assert copy.node.next.contents.value == 2


@pytest.mark.parametrize("kind", ARENA_KINDS)
def test_copy_made_by_a_finalizer_during_the_refusals_collection(kind: str) -> None:
    arena = _arena(kind)
    saved: list[Holder] = []

    class Finalized:
        def __init__(self, node: Any) -> None:
            self.node = node
            self.cycle = self

        def __del__(self) -> None:
            copy = Holder()
            copy.node = self.node  # (by value: shares the array's keep-alive dict)
            saved.append(copy)

    Finalized(_link(arena))  # (garbage in a cycle: collected by the reset's collection)
    with pytest.raises(BufferError):
        arena.reset()
    assert len(saved) == 1 and saved[0].node.next.contents.value == 2
    _never_aliased(arena, saved[0])
    saved.clear()
    gc.collect()
    arena.reset()
    assert arena.used == 0


@pytest.mark.parametrize("kind", ARENA_KINDS)
def test_copy_made_after_an_accepted_rewind(kind: str) -> None:
    arena = _arena(kind)
    first = _link(arena)
    cp = arena.checkpoint()
    later = _link(arena)  # a link inside the memory the rewind frees
    del later
    arena.rewind(cp)
    copy = Holder()
    copy.node = first
    del first
    with pytest.raises(BufferError, match="cannot reset"):
        arena.reset()
    _never_aliased(arena, copy)
    del copy
    arena.reset()


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_copy_made_by_a_drop_callback_holds_the_freed_memory(kind: str) -> None:
    saved: list[Holder] = []

    def drop(value: Any) -> None:
        if value.value == 1:
            copy = Holder()
            copy.node = value
            saved.append(copy)

    arena = _arena(kind, drop=drop)
    _link(arena)
    arena.reset()  # (accepted: the drops ran; the memory is held while the copy lives)
    assert len(saved) == 1
    with pytest.raises(BufferError, match="freed by reset"):
        arena.alloc(3)
    _never_aliased(arena, saved[0])
    saved.clear()
    assert arena.alloc(3) is not None


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_copy_made_after_a_refused_allocation_holds_the_memory(kind: str) -> None:
    kept: dict[int, Any] = {}

    def drop(value: Any) -> None:
        kept[value.value] = value
        if value.value == 1:  # (dropped last: link it to the other kept value)
            value.next = ctypes.pointer(kept[2])

    arena = _arena(kind, drop=drop)
    arena.alloc(1)
    arena.alloc(2)
    arena.reset()
    del kept[2]
    with pytest.raises(BufferError, match="freed by reset"):
        arena.alloc(3)  # (counts the held memory, leaving the link out)
    copy = Holder()
    copy.node = kept.pop(1)
    gc.collect()
    with pytest.raises(BufferError, match="freed by reset"):
        arena.alloc(3)
    _never_aliased(arena, copy)
    del copy
    assert arena.alloc(3) is not None


# -- what a count puts back --------------------------------------------------------


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_count_leaves_the_arenas_own_entries_as_they_were(kind: str) -> None:
    """An entry that holds no memory (the arrays watched for keep-alives) is not touched."""
    arena = _arena(kind)
    first = _node(arena, 1)
    array = arena.as_array()
    del array  # (its watch entry in the slot array is now empty)
    cp = arena.checkpoint()
    later = _node(arena, 2)
    with pytest.raises(BufferError):
        arena.rewind(cp)  # (a count: entries are taken out and put back)
    del later
    arena.rewind(cp)
    array = arena.as_array()  # watched again: the entry must still be a dict
    array[0].value = 5
    del array
    assert len(arena) == 1 and first.value == 5


@pytest.mark.parametrize("kind", ["TypedArena", "TypedArenaLazy"])
def test_a_link_put_back_after_a_rewind_does_not_hold_the_freed_part(kind: str) -> None:
    """A link got through an array made after a checkpoint, to memory before it."""
    arena = _arena(kind)
    first, second = _node(arena, 1), _node(arena, 2)
    cp = arena.checkpoint()
    _node(arena, 3)
    array = arena.as_array()  # (made from the part of the memory after cp)
    first.next = ctypes.pointer(array[1])  # -> second, before cp
    del array
    arena.rewind(cp)
    assert first.next.contents.value == 2
    copy = Holder()
    copy.node = first
    del first, second
    with pytest.raises(BufferError):
        arena.reset()  # (the copy's pointer keeps the memory)
    del copy
    arena.reset()
    assert len(arena) == 0
